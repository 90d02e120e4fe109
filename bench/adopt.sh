#!/bin/bash
# bench/adopt.sh: what a restart of khd costs with its nodes running (issue
# 18, item 2).  A facility of N ct nodes (ADOPT_NODES, 32), all allocated
# (private domains of 2 nodes) and booted with the busybox appliance.
# Measured, RUNS times (5) each, in the same run:
#  - peer: kill -9 of khd with the nodes in the monitor (not booted), and
#    the time until the next khd serves (khd returns when it does);
#  - adopt: the same with the nodes running: the next khd takes over every
#    node (console from the holder, processes checked, fabric and meter).
# Prints the medians and their ratio.  Usage (root): bench/adopt.sh
set -eu
cd "$(dirname "$0")/.."
BIN=${BIN:-build/bin}
case "$BIN" in /*) ;; *) BIN=$PWD/$BIN ;; esac
N=${ADOPT_NODES:-32}
RUNS=${RUNS:-5}
export PATH=$BIN:$PATH
D=$(mktemp -d /tmp/kh-bench-adopt-XXXXXX)
trap 'khd -d "$D" --stop-nodes >/dev/null 2>&1; rm -rf "$D"' EXIT
export KH_SOCKET=$D/khd.sock
khd -d "$D" --nodes "$N" </dev/null >/dev/null 2>&1
tests/lib/mkbusybox.sh "$D/app.cpio.gz" >/dev/null
CONS=()
for _ in $(seq $((N / 2))); do
	CONS+=("$(khget -c pw alice 2 | head -n1 | cut -d@ -f1)")
done
ms() { echo $(($(date +%s%N) / 1000000)); }
median() { sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
# (khd runs outside any $(...): the helpers it starts keep its stdout.)
restart() { # append the ms from kill -9 to the next khd serving to $1
	local pid t0
	pid=$(head -n1 "$D/khd.lock")
	kill -9 "$pid"
	while kill -0 "$pid" 2>/dev/null && ! grep -q '^Z' <(ps -o stat= -p "$pid" 2>/dev/null); do sleep 0.01; done
	t0=$(ms)
	khd -d "$D" </dev/null >/dev/null 2>&1
	echo $(($(ms) - t0)) >>"$1"
}
for _ in $(seq "$RUNS"); do restart "$D/peer"; done
peer=$(median <"$D/peer")
for c in "${CONS[@]}"; do
	{ printf 'mrw $ramfsaddr %d\n' "$(stat -c %s "$D/app.cpio.gz")"; cat "$D/app.cpio.gz"; echo 'run kboot'; } |
		khcon -c pw alice --timeout 60 --until "appliance up on" --count 2 "$c" >/dev/null
done
running=$(khctl nodes | awk '$2 == "running"' | wc -l)
for _ in $(seq "$RUNS"); do restart "$D/adopt"; done
adopt=$(median <"$D/adopt")
after=$(khctl nodes | awk '$2 == "running"' | wc -l)
adopted=$(grep -c 'adopted from an earlier khd' "$D/khd.log")
echo "nodes=$N running=$running after=$after adopted_total=$adopted runs=$RUNS"
echo "restart_ms peer(no node running)=$peer adopt(all running)=$adopt ratio=$(awk -v a="$adopt" -v p="$peer" 'BEGIN {printf "%.2f", a / p}')"
echo "per_node_ms=$(awk -v a="$adopt" -v p="$peer" -v n="$N" 'BEGIN {printf "%.2f", (a - p) / n}')"

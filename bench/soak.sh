#!/bin/bash
# bench/soak.sh: khd under a long load (issue 18, item 5).  A facility of
# 64 ct nodes with its fabric; first idle, then for SOAK_SECS (600) 200
# principals allocating 1..3 nodes and releasing them at once
# (tests/tools/khload.py churn), while another principal runs the khget
# program (one node, then khctl release) as a user would, and queries
# (ping, nodes) on new connections.  Prints requests served, the p50 and
# p99 of both idle and under load, and khd's RSS and open descriptors
# before and after.
# Usage (root): bench/soak.sh   (env: BIN=build/bin SOAK_SECS=600 CLIENTS=200)
set -eu
cd "$(dirname "$0")/.."
BIN=${BIN:-build/bin}
case "$BIN" in /*) ;; *) BIN=$PWD/$BIN ;; esac
SECS=${SOAK_SECS:-600}
CLIENTS=${CLIENTS:-200}
OUT=${BENCH_OUT:-bench/results}
mkdir -p "$OUT"
export PATH=$BIN:$PATH
KHLOAD=$PWD/tests/tools/khload.py
D=$(mktemp -d /tmp/kh-bench-soak-XXXXXX)
cleanup() {
	local pid
	pid=$(head -n1 "$D/khd.lock" 2>/dev/null || true)
	if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then
		while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
	fi
	rm -rf "$D"
}
trap cleanup EXIT
khd -d "$D" --nodes 64
export KH_SOCKET=$D/khd.sock
PID=$(head -n1 "$D/khd.lock")
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$PID/status"; }
fds() { ls "/proc/$PID/fd" | wc -l; }
field() { grep -o "$1=[0-9.]*" | cut -d= -f2; }

# The churn's principals exist first: creating one is an Argon2id hash
# (done off khd's loop), not what a soak measures.
python3 "$KHLOAD" churn --clients "$CLIENTS" --secs 3 >/dev/null 2>&1 || true
rss0=$(rss)
fd0=$(fds)
idle=$(python3 "$KHLOAD" khget --secs 10 --user soakprobe)
qidle=$(python3 "$KHLOAD" probe --secs 5)
python3 "$KHLOAD" churn --clients "$CLIENTS" --secs "$SECS" >"$D/churn" 2>&1 &
CH=$!
sleep 2
python3 "$KHLOAD" probe --secs $((SECS - 4)) >"$D/qbusy" &
busy=$(python3 "$KHLOAD" khget --secs $((SECS - 4)) --user soakprobe)
wait $!
qbusy=$(cat "$D/qbusy")
wait "$CH" || true
sleep 1
rss1=$(rss)
fd1=$(fds)
churn=$(grep '^churn' "$D/churn")
served=$(( $(field allocations <<<"$churn") * 2 + $(field nonodes <<<"$churn") ))
echo "soak: $CLIENTS principals for $SECS s on 64 nodes: $churn"
echo "requests served (gets and releases): $served ($((served / SECS))/s)"
printf 'khget (the program, one node), idle:       p50 %s ms, p99 %s ms (%s runs)\n' \
	"$(field p50_ms <<<"$idle")" "$(field p99_ms <<<"$idle")" "$(field n <<<"$idle")"
printf 'khget (the program, one node), under load: p50 %s ms, p99 %s ms (%s runs, %s errors)\n' \
	"$(field p50_ms <<<"$busy")" "$(field p99_ms <<<"$busy")" "$(field n <<<"$busy")" "$(field errors <<<"$busy")"
printf 'queries (ping, nodes on a new connection), idle:       p50 %s ms, p99 %s ms\n' \
	"$(field p50_ms <<<"$qidle")" "$(field p99_ms <<<"$qidle")"
printf 'queries (ping, nodes on a new connection), under load: p50 %s ms, p99 %s ms, max %s ms (%s errors)\n' \
	"$(field p50_ms <<<"$qbusy")" "$(field p99_ms <<<"$qbusy")" "$(field max_ms <<<"$qbusy")" "$(field errors <<<"$qbusy")"
echo "khd RSS: $rss0 kB before, $rss1 kB after; open descriptors: $fd0 before, $fd1 after"
printf '{"secs": %s, "clients": %s, "served": %s, "idle": "%s", "busy": "%s", "qidle": "%s", "qbusy": "%s", "rss": [%s, %s], "fds": [%s, %s]}\n' \
	"$SECS" "$CLIENTS" "$served" "$idle" "$busy" "$qidle" "$qbusy" "$rss0" "$rss1" "$fd0" "$fd1" >"$OUT/soak.json"

#!/bin/bash
# bench/boot.sh: boot N nodes through khd (issue 3), the way a principal
# does: one khget of N nodes, one broadcast load of a 3 MB busybox
# appliance on the channel, then "run kboot"; timed until every node's
# /init has said it runs.  In the same run, bench/boot/run.sh starts N
# containers with crun from the same kind of root (and N ct nodes straight
# through the backend, without khd).  Medians of REPEATS runs.
# Usage (root): bench/boot.sh [N...]   (default: 100 1000)
set -eu
cd "$(dirname "$0")/.."
BIN=${BIN:-build/bin}
REPEATS=${REPEATS:-3}
SIZES=${*:-100 1000}
OUT=${BENCH_OUT:-bench/results}
mkdir -p "$OUT"
W=$(mktemp -d /tmp/kh-bench-kboot-XXXXXX)
D=
stopkhd() {
	[ -n "$D" ] || return 0
	pid=$(head -n1 "$D/khd.lock" 2>/dev/null || true)
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
	rm -rf "$D"
	D=
}
trap 'stopkhd; rm -rf "$W"' EXIT

# The appliance: busybox, 1 MB of other files, an /init that says so.
printf '#!/bin/sh\necho init-running\nexec sleep 2147483647\n' >"$W/init"
tests/lib/mkbusybox.sh "$W/app.cpio" "$W/init"
mkdir -p "$W/root/lib"
(cd "$W/root" && gunzip -c "$W/app.cpio" | cpio -id --quiet)
head -c 1048576 /dev/urandom >"$W/root/lib/payload"
(cd "$W/root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) >"$W/app3.cpio"
APP=$W/app3.cpio
SIZE=$(stat -c %s "$APP")
echo "appliance: $SIZE bytes (plain newc cpio)"

ms() { echo $(( ($2 - $1) / 1000000 )); }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

for N in $SIZES; do
	D=$(mktemp -d /tmp/kh-bench-kboot-d-XXXXXX)
	export KH_SOCKET=$D/khd.sock
	"$BIN"/khd -d "$D" --nodes "$N"
	CON=$("$BIN"/khget -c pw bench "$N" | head -n1 | cut -d@ -f1)
	boots=()
	loads=()
	for r in $(seq "$REPEATS"); do
		t0=$(date +%s%N)
		{ printf 'mrw $ramfsaddr %d\n' "$SIZE"; cat "$APP"; echo 'echo loaded-$?'; } |
			"$BIN"/khcon -c pw bench --timeout 120 --until loaded-0 --count "$N" "$CON" >/dev/null
		t1=$(date +%s%N)
		echo 'run kboot' |
			"$BIN"/khcon -c pw bench --timeout 120 --until init-running --count "$N" "$CON" >/dev/null
		t2=$(date +%s%N)
		loads+=("$(ms "$t0" "$t1")")
		boots+=("$(ms "$t1" "$t2")")
		"$BIN"/khctl reset -c pw bench "$CON"
		sleep 1
	done
	lb=$(printf '%s\n' "${loads[@]}" | median)
	bb=$(printf '%s\n' "${boots[@]}" | median)
	printf 'khd: %4d nodes: broadcast load of %d bytes median %5d ms (runs: %s)\n' "$N" "$SIZE" "$lb" "${loads[*]}"
	printf 'khd: %4d nodes: run kboot until every /init runs median %5d ms (runs: %s)\n' "$N" "$bb" "${boots[*]}"
	echo "{\"n\":$N,\"load_ms\":$lb,\"boot_ms\":$bb}" >"$OUT/kboot-$N.json"
	stopkhd
done

echo "== peer, same run: bench/boot/run.sh (ct backend alone, and crun)"
REPEATS=$REPEATS bench/boot/run.sh $SIZES

#!/bin/bash
# bench/meter.sh: what the sampler costs khd (issue 7).  khd samples every
# allocated node once a second (cgroup counters, interface counters, one
# ledger record per principal, one transaction); its own figures come from
# the OpenMetrics endpoint (kh_meter_tick_seconds: count and sum, max).
#   A: N nodes in the monitor, N principals of one node each (N records a tick)
#   B: N nodes booted, one principal (N cgroups and N interfaces read a tick)
# Peer, same run: N plain SQLite inserts in one transaction (WAL,
# synchronous=NORMAL, the same file system), median of 20.
# Usage (root): bench/meter.sh [N]   (default 1000; SECS=15 sampling per phase)
set -eu
cd "$(dirname "$0")/.."
BIN=${BIN:-build/bin}
N=${1:-1000}
SECS=${SECS:-15}
OUT=${BENCH_OUT:-bench/results}
PORT=${PORT:-$((30000 + RANDOM % 20000))}
PY=/usr/bin/python3
mkdir -p "$OUT"
W=$(mktemp -d /tmp/kh-bench-meter-XXXXXX)
D=
stopkhd() {
	[ -n "$D" ] || return 0
	pid=$(head -n1 "$D/khd.lock" 2>/dev/null || true)
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
	rm -rf "$D"
	D=
}
trap 'stopkhd; rm -rf "$W"' EXIT

startkhd() {
	D=$(mktemp -d /tmp/kh-bench-meter-d-XXXXXX)
	export KH_SOCKET=$D/khd.sock
	"$BIN"/khd -d "$D" --nodes "$N" --metrics-port "$PORT"
}
# metric NAME: its value now
metric() { curl -sf "http://127.0.0.1:$PORT/metrics" | awk -v n="$1" '$1 == n {print $2}'; }
# sample LABEL: mean and max tick over SECS seconds
sample() {
	local c0 s0 c1 s1
	sleep 2
	c0=$(metric kh_meter_tick_seconds_count)
	s0=$(metric kh_meter_tick_seconds_sum)
	r0=$(metric kh_meter_read_seconds_total)
	sleep "$SECS"
	c1=$(metric kh_meter_tick_seconds_count)
	s1=$(metric kh_meter_tick_seconds_sum)
	r1=$(metric kh_meter_read_seconds_total)
	nodes=$(metric kh_meter_nodes)
	mean=$(awk -v a="$s0" -v b="$s1" -v x="$c0" -v y="$c1" 'BEGIN { printf "%.2f", (b - a) / (y - x) * 1000 }')
	max=$(awk -v m="$(metric kh_meter_tick_max_seconds)" 'BEGIN { printf "%.2f", m * 1000 }')
	ticks=$((c1 - c0))
	read=$(awk -v a="$r0" -v b="$r1" -v x="$c0" -v y="$c1" 'BEGIN { printf "%.2f", (b - a) / (y - x) * 1000 }')
	printf '%s: %d nodes sampled, %d ticks: mean %s ms a tick (reading counters %s ms), max %s ms\n' \
		"$1" "$nodes" "$ticks" "$mean" "$read" "$max"
}

echo "== A: $N nodes in the monitor, $N principals"
startkhd
t0=$(date +%s%N)
for i in $(seq "$N"); do "$BIN"/khget -c pw "p$i" 1 >/dev/null; done
t1=$(date +%s%N)
echo "($N khgets: $(( (t1 - t0) / 1000000 )) ms)"
sample A
a_mean=$mean
a_read=$read
a_max=$max
stopkhd

echo "== B: $N nodes booted, one principal"
printf '#!/bin/sh\necho init-running\nexec sleep 2147483647\n' >"$W/init"
tests/lib/mkbusybox.sh "$W/app.cpio.gz" "$W/init"
startkhd
CON=$("$BIN"/khget -c pw bench "$N" | head -n1 | cut -d@ -f1)
{ printf 'mrw $ramfsaddr %d\n' "$(stat -c %s "$W/app.cpio.gz")"; cat "$W/app.cpio.gz"; echo 'echo loaded-$?'; } |
	"$BIN"/khcon -c pw bench --timeout 120 --until loaded-0 --count "$N" "$CON" >/dev/null
echo 'run kboot' | "$BIN"/khcon -c pw bench --timeout 300 --until init-running --count "$N" "$CON" >/dev/null
sample B
b_mean=$mean
b_read=$read
b_max=$max
stopkhd

echo "== peer: $N SQLite inserts in one transaction"
peer=$($PY - "$W/peer.db" "$N" <<'EOF'
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
n = int(sys.argv[2])
db.execute("PRAGMA journal_mode=WAL")
db.execute("PRAGMA synchronous=NORMAL")
db.execute("CREATE TABLE t(principal TEXT, seq INTEGER, t0 INTEGER, t1 INTEGER, line TEXT, PRIMARY KEY(principal, seq)) WITHOUT ROWID")
line = "r p1 1 1700000000000 1700000001000 node-time:ct1=1000 " + "0" * 64
times = []
for r in range(20):
    t = time.perf_counter()
    db.execute("BEGIN")
    for i in range(n):
        db.execute("INSERT INTO t VALUES(?,?,?,?,?)", ("p%d" % i, r + 1, 0, 0, line))
    db.execute("COMMIT")
    times.append(time.perf_counter() - t)
times.sort()
print("%.2f" % (times[len(times) // 2] * 1000))
EOF
)
echo "peer: $N inserts in one transaction: median $peer ms"
printf '{"n":%d,"monitor_principals_tick_ms":%s,"monitor_principals_read_ms":%s,"monitor_principals_tick_max_ms":%s,"running_one_principal_tick_ms":%s,"running_one_principal_read_ms":%s,"running_one_principal_tick_max_ms":%s,"sqlite_inserts_ms":%s}\n' \
	"$N" "$a_mean" "$a_read" "$a_max" "$b_mean" "$b_read" "$b_max" "$peer" >"$OUT/meter-$N.json"

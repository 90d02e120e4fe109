#!/bin/bash
# bench/ebb.sh: libebb and ebbkv (issue 16, docs/ebb.md), with their peers
# in the same run:
#   1. an EBB call on a hit against a plain function call (ns);
#   2. counter increments per second on 2 cores: the counter EBB against
#      one shared atomic counter and a mutex;
#   3. ebbkv on one node against Debian's memcached, both under memcaslap
#      (same load: 2 threads, 16 connections, 90% gets, 1 KB values), in
#      turn, several rounds: medians and ratios;
#   4. ebbkv's growth timeline under that load (NodeAllocator "local":
#      nodes are processes on this host): need more -> node up -> keys
#      moved -> first request served with the new node in the table.
# Usage: bench/ebb.sh [SECONDS]   (memcaslap's run time, default 10;
#        ROUNDS=N for part 3's rounds, default 5)
set -eu
cd "$(dirname "$0")/.."
BIN=${BIN:-build/bin}
T=${1:-10}
R=${ROUNDS:-5}
W=$(mktemp -d /tmp/kh-bench-ebb-XXXXXX)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$W"' EXIT
free_port() {
	local p
	for _ in $(seq 50); do
		p=$((20000 + RANDOM % 20000))
		ss -Hltn "sport = :$p" | grep -q . || ss -Hltn "sport = :$((p + 1))" | grep -q . ||
			{ echo "$p"; return; }
	done
}
wait_port() { for _ in $(seq 100); do ss -Hltn "sport = :$1" | grep -q . && return; sleep 0.05; done; }
load() { memcaslap -s "127.0.0.1:$1" -t "${T}s" -T 2 -c 16 -v 0.1 2>&1; }
tps() { awk '/^Run time/ {for (i = 1; i <= NF; i++) if ($i == "TPS:") print $(i + 1)}'; }

echo "== 1. an EBB call on a hit (ns per call, 100M calls)"
build/bench/ebbbench hit 100000000 | awk '{printf "  EBB hit (ebb_rep + add): %s ns   plain call (noinline, same add): %s ns\n", $2, $4}'

echo "== 2. increments per second on 2 cores (M/s, 20M each core)"
build/bench/ebbbench count 20000000 | awk '{printf "  %-8s %s M/s\n", $1, $2}'

echo "== 3. one node under memcaslap ($R rounds of ${T} s, 2 threads, 16 connections, 10% sets, 1 KB; the servers in turn in each round)"
# ebbkv keeps each core's loop on its own CPU (libebb's pin); memcached
# does not, so it runs twice: as shipped, and with its two worker threads
# pinned the same way by hand (the peer that differs only in code).
cpus=($(taskset -pc $$ | sed 's/.*: //' | tr ',' '\n' | awk -F- '{if (NF == 2) for (i = $1; i <= $2; i++) print i; else print $1}'))
pin_workers() {
	local i=0 t
	for t in $(ls "/proc/$1/task" | sort -n); do
		[ "$(cat "/proc/$1/task/$t/comm")" = mc-worker ] || continue
		taskset -pc "${cpus[i % ${#cpus[@]}]}" "$t" >/dev/null
		i=$((i + 1))
	done
}
one() { # NAME: one server under the load; its TPS, misses, failed verifications to $W/NAME.*
	local name=$1 p
	p=$(free_port)
	case $name in
	mc | mcpin) memcached -u nobody -p "$p" -l 127.0.0.1 -t 2 -m 256 -U 0 & ;;
	kv) "$BIN/ebbkv" -p "$p" -l 127.0.0.1 -t 2 2>>"$W/kv1.log" & ;;
	kvnopin) "$BIN/ebbkv" -p "$p" -l 127.0.0.1 -t 2 --no-pin 2>>"$W/kv1.log" & ;;
	esac
	pids+=($!)
	wait_port "$p"
	[ "$name" = mcpin ] && pin_workers "${pids[-1]}"
	local o c0 c1
	c0=$(awk '{print $14 + $15}' "/proc/${pids[-1]}/stat")
	o=$(load "$p")
	c1=$(awk '{print $14 + $15}' "/proc/${pids[-1]}/stat")
	kill "${pids[-1]}"
	wait "${pids[-1]}" 2>/dev/null || true
	tps <<<"$o" >>"$W/$name.tps"
	awk '/^get_misses/ {m = $2} /^verify_failed/ {v = $2} END {print m + 0, v + 0}' <<<"$o" >>"$W/$name.bad"
	# the server's CPU (user + system) per request, in us: less noisy
	# than requests per second when other programs share the CPUs
	awk -v c=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" '/^Run time/ {for (i = 1; i <= NF; i++) if ($i == "Ops:") print c * 1e6 / hz / $(i + 1)}' <<<"$o" >>"$W/$name.cpu"
	tps <<<"$o"
}
median() { sort -g | awk '{a[NR] = $1} END {m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; print (m >= 100) ? int(m) : sprintf("%.2f", m)}'; }
for r in $(seq "$R"); do
	printf '  round %d: memcached 1.6 -t 2: %s   memcached, workers pinned: %s   ebbkv -t 2: %s   ebbkv --no-pin: %s ops/s\n' \
		"$r" "$(one mc)" "$(one mcpin)" "$(one kv)" "$(one kvnopin)"
done
mc=$(median <"$W/mc.tps")
mcp=$(median <"$W/mcpin.tps")
kv=$(median <"$W/kv.tps")
kvn=$(median <"$W/kvnopin.tps")
printf '  medians: memcached %s, memcached pinned %s, ebbkv %s, ebbkv --no-pin %s ops/s\n' "$mc" "$mcp" "$kv" "$kvn"
awk -v a="$kv" -v b="$mc" -v c="$mcp" -v d="$kvn" 'BEGIN {printf "  ratios: ebbkv/memcached %.2fx, ebbkv/memcached pinned %.2fx, ebbkv --no-pin/memcached %.2fx\n", a / b, a / c, d / b}'
printf '  server CPU per request (us, medians): memcached %s, memcached pinned %s, ebbkv %s, ebbkv --no-pin %s\n' \
	"$(median <"$W/mc.cpu")" "$(median <"$W/mcpin.cpu")" "$(median <"$W/kv.cpu")" "$(median <"$W/kvnopin.cpu")"
for n in mc mcpin kv kvnopin; do
	awk -v n="$n" '{m += $1; v += $2} END {printf "  %s: get_misses %d, verify_failed %d (all rounds)\n", n, m, v}' "$W/$n.bad"
done

echo "== 4. growth under that load (--grow 2000 req/s per node, up to 3 nodes; local nodes)"
P3=$(free_port)
"$BIN/ebbkv" -p "$P3" -l 127.0.0.1 -t 2 --msg "127.0.0.1:$((P3 + 1))" --grow 2000 --shrink 300 \
	--max-nodes 3 2>"$W/kv2.log" &
pids+=($!)
wait_port "$P3"
g=$(load "$P3")
sleep 4
kill "${pids[-1]}"
grep -E 'grow:|shrink:' "$W/kv2.log" | sed 's/^ebbkv: /  /'
printf '  under load: %s ops/s, get_misses %s, verify_failed %s\n' "$(tps <<<"$g")" \
	"$(awk '/^get_misses/ {print $2}' <<<"$g")" "$(awk '/^verify_failed/ {print $2}' <<<"$g")"

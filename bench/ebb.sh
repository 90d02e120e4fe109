#!/bin/bash
# bench/ebb.sh: libebb and ebbkv (issue 16, docs/ebb.md), with their peers
# in the same run:
#   1. an EBB call on a hit against a plain function call (ns);
#   2. counter increments per second on 2 cores: the counter EBB against
#      one shared atomic counter and a mutex;
#   3. ebbkv on one node against Debian's memcached, both under memcaslap
#      (same load: 2 threads, 16 connections, 90% gets, 1 KB values);
#   4. ebbkv's growth timeline under that load (NodeAllocator "local":
#      nodes are processes on this host): need more -> node up -> keys
#      moved -> first request served with the new node in the table.
# Usage: bench/ebb.sh [SECONDS]   (memcaslap's run time, default 10)
set -eu
cd "$(dirname "$0")/.."
BIN=${BIN:-build/bin}
T=${1:-10}
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

echo "== 3. one node under memcaslap (${T} s, 2 threads, 16 connections, 10% sets, 1 KB)"
P=$(free_port)
memcached -u nobody -p "$P" -l 127.0.0.1 -t 2 -m 256 -U 0 &
pids+=($!)
wait_port "$P"
m=$(load "$P")
kill "${pids[-1]}"
P2=$(free_port)
"$BIN/ebbkv" -p "$P2" -l 127.0.0.1 -t 2 2>"$W/kv1.log" &
pids+=($!)
wait_port "$P2"
e=$(load "$P2")
kill "${pids[-1]}"
printf '  memcached 1.6 (-t 2): %s ops/s   ebbkv (-t 2, one node): %s ops/s   (get_misses %s, verify_failed %s)\n' \
	"$(tps <<<"$m")" "$(tps <<<"$e")" "$(awk '/^get_misses/ {print $2}' <<<"$e")" \
	"$(awk '/^verify_failed/ {print $2}' <<<"$e")"

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

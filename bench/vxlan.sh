#!/bin/bash
# bench/vxlan.sh: a domain across hosts (issue 17 item 3).  Two "hosts"
# (network namespaces on an underlay: veths on a bridge in a third one, MTU
# 9100), each running its own fabric (tests/fabhost, the real src/fabric);
# nodes 0 and 1 of one private domain (MTU 9000) on host 1, node 2 on host
# 2, the domain spanning both (VXLAN, VNI = netid).  iperf3 TCP (one
# stream, SECS s) and ping round trips (200 echoes every 2 ms, median)
# node 0 -> node 2 (across hosts) against node 0 -> node 1 (one host) in
# the same run, alternating, REPEATS rounds; medians of the rounds.
# Usage (root): bench/vxlan.sh   (env: BIN=build/bin REPEATS=5 SECS=5)
set -eu
cd "$(dirname "$0")/.."
BIN=${BIN:-build/bin}
case "$BIN" in /*) ;; *) BIN=$PWD/$BIN ;; esac
FABHOST=$BIN/../tests/fabhost
REPEATS=${REPEATS:-5}
SECS=${SECS:-5}
PINGS=200
AFF=
[ "$(nproc)" -ge 2 ] && AFF="-A 0,1"
OUT=${BENCH_OUT:-bench/results}
mkdir -p "$OUT"
NS=khbvx$$
W=$(mktemp -d /tmp/kh-bench-vx-XXXXXX)
SERVERS=()
cleanup() {
	local s n
	for s in "${SERVERS[@]}"; do kill "$s" 2>/dev/null || true; done
	for i in 1 2; do [ -n "${FIN[i]:-}" ] && { echo free >&"${FIN[i]}"; exec {FIN[i]}>&-; } 2>/dev/null || true; done
	wait 2>/dev/null || true
	for n in $(ip netns list | awk -v p="$NS-" 'index($1, p) == 1 {print $1}'); do ip netns del "$n"; done
	rm -rf "$W"
}
trap cleanup EXIT
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

declare -a FIN FOUT
ip netns add "$NS-u"
ip -n "$NS-u" link add br0 type bridge
ip -n "$NS-u" link set br0 up
for i in 1 2; do
	ip netns add "$NS-h$i"
	ip -n "$NS-u" link add "u$i" mtu 9100 type veth peer name ul mtu 9100 netns "$NS-h$i"
	ip -n "$NS-u" link set "u$i" master br0 up
	ip -n "$NS-h$i" link set lo up
	ip -n "$NS-h$i" link set ul up
	ip -n "$NS-h$i" addr add "10.201.0.$i/24" dev ul
	mkfifo "$W/in$i" "$W/out$i"
	nsenter --net="/run/netns/$NS-h$i" "$FABHOST" <"$W/in$i" >"$W/out$i" 2>"$W/log$i" &
	exec {FIN[i]}>"$W/in$i" {FOUT[i]}<"$W/out$i"
done
fh() {
	local i=$1 r
	shift
	echo "$*" >&"${FIN[i]}"
	read -r r <&"${FOUT[i]}"
	[ "$r" = ok ] || { echo "vxlan: host $i: $*: $r" >&2; exit 1; }
}
for i in 1 2; do
	fh "$i" new "$(printf '%08x' $((RANDOM * 65536 + RANDOM + i)))" 0
	fh "$i" underlay "10.201.0.$i" 0
done
fh 1 node 0 3 "/run/netns/$NS-n0"
fh 1 node 1 3 "/run/netns/$NS-n1"
fh 2 node 2 3 "/run/netns/$NS-n2"
fh 1 span 3 10.201.0.2
fh 2 span 3 10.201.0.1
fh 1 nodes 3 2@10.201.0.2
fh 2 nodes 3 0@10.201.0.1 1@10.201.0.1

for n in 1 2; do
	ip netns exec "$NS-n$n" iperf3 -s -p 5201 >/dev/null 2>&1 &
	SERVERS+=($!)
done
sleep 0.5
ADDR=([1]=10.0.48.2 [2]=10.0.48.3)
for r in $(seq "$REPEATS"); do
	order="1 2"
	[ $((r % 2)) = 0 ] && order="2 1"
	for n in $order; do
		ip netns exec "$NS-n0" iperf3 -J $AFF -t "$SECS" -c "${ADDR[n]}" -p 5201 >"$W/ip.json"
		python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"] / 1e9)' "$W/ip.json" >>"$W/tcp.$n"
		ip netns exec "$NS-n0" busybox ping -c "$PINGS" -i 0.002 "${ADDR[n]}" |
			sed -n 's/.*time=\([0-9.]*\) ms/\1/p' | median | awk '{print $1 * 1000}' >>"$W/rtt.$n"
	done
done
t1=$(median <"$W/tcp.1") t2=$(median <"$W/tcp.2") r1=$(median <"$W/rtt.1") r2=$(median <"$W/rtt.2")
printf 'node -> node TCP, Gbit/s: one host %.2f, across hosts %.2f (ratio %.2f)\n' "$t1" "$t2" "$(awk -v a="$t2" -v b="$t1" 'BEGIN {print a / b}')"
printf 'round trip, us: one host %.0f, across hosts %.0f (ratio %.2f)\n' "$r1" "$r2" "$(awk -v a="$r2" -v b="$r1" 'BEGIN {print a / b}')"
printf '{"rounds": %d, "secs": %d, "tcp_gbps_local": %s, "tcp_gbps_vxlan": %s, "rtt_us_local": %s, "rtt_us_vxlan": %s}\n' \
	"$REPEATS" "$SECS" "$t1" "$t2" "$r1" "$r2" >"$OUT/vxlan.json"

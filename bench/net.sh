#!/bin/bash
# bench/net.sh: the fabric's data path and wiring cost (issue 4).  iperf3 TCP
# and UDP throughput and ping round trips between two booted ct nodes of one
# private domain (macvlan -> macvlan on one segment) and from the host to an
# external node (uplink macvlan -> macvlan), each against a bare veth pair measured in
# the same run, alternating; then the time of khget 1000 (plain and -x) on an
# 1100-node facility.  iperf3 and ping (the host's busybox) run from the host
# inside the nodes' network namespaces (nsenter -n): the appliance has no
# iperf3, and the path measured is the fabric's, which the nodes' software uses.
# Usage (root): bench/net.sh   (env: BIN=build/bin REPEATS=5 SECS=5 WIRE_RUNS=10;
# WIRE_RUNS=0 leaves the wiring cost out)
set -eu
cd "$(dirname "$0")/.."
BIN=${BIN:-build/bin}
case "$BIN" in /*) ;; *) BIN=$PWD/$BIN ;; esac
REPEATS=${REPEATS:-5}
SECS=${SECS:-5}
WIRE_RUNS=${WIRE_RUNS:-10}
PINGS=200
AFF=
[ "$(nproc)" -ge 2 ] && AFF="-A 0,1"
OUT=${BENCH_OUT:-bench/results}
mkdir -p "$OUT"
# Names and addresses of the peers: 198.18.0.0/15 is reserved for
# benchmarks (RFC 2544), so it clashes with nothing of the host's.
P=khbnet$$
W=$(mktemp -d /tmp/kh-bench-net-XXXXXX)
D=
SERVERS=()

stopkhd() {
	[ -n "$D" ] || return 0
	local pid
	pid=$(head -n1 "$D/khd.lock" 2>/dev/null || true)
	if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then
		while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
	fi
	rm -rf "$D"
	D=
}
stopservers() {
	local s
	for s in "${SERVERS[@]}"; do kill "$s" 2>/dev/null || true; done
	for s in "${SERVERS[@]}"; do wait "$s" 2>/dev/null || true; done
	SERVERS=()
}
cleanup() {
	stopservers
	stopkhd
	ip netns del "${P}a" 2>/dev/null || true
	ip netns del "${P}b" 2>/dev/null || true
	ip netns del "${P}x" 2>/dev/null || true
	ip link del "${P}h" 2>/dev/null || true
	rm -rf "$W"
}
trap cleanup EXIT

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ms() { awk -v d=$(($2 - $1)) 'BEGIN {printf "%.1f\n", d / 1e6}'; } # ms T0 T1 (ns)

# serve NS: a persistent iperf3 server inside NS (a command prefix: empty
# for the host, "nsenter --net=..." or "nsenter -t PID -n"), ready on return.
serve() {
	local ns=$1
	$ns iperf3 -s -p 5201 >/dev/null 2>&1 &
	SERVERS+=($!)
	for _ in $(seq 100); do
		[ -n "$($ns ss -Htln 'sport = :5201')" ] && return 0
		sleep 0.05
	done
	echo "net: iperf3 server did not start in '$ns'" >&2
	return 1
}

# iperf NS ARGS...: one iperf3 client run inside NS, JSON on stdout.  A run
# right after another may find the server still closing it: retry once.
iperf() {
	local ns=$1
	shift
	$ns iperf3 -J "$@" >"$W/iperf.json" 2>/dev/null || {
		sleep 1
		$ns iperf3 -J "$@" >"$W/iperf.json"
	}
	cat "$W/iperf.json"
}

# measure NAME NS IP MTU: TCP and UDP from NS to IP; each figure is
# appended to $W/NAME.{tcp,udp,loss} (Gbit/s, Gbit/s, %).
measure() {
	local name=$1 ns=$2 ip=$3 mtu=$4 j
	j=$(iperf "$ns" -c "$ip" -t "$SECS")
	jq -e '.end.sum_received.bits_per_second / 1e9' <<<"$j" >>"$W/$name.tcp"
	# UDP: no rate limit (-b 0); one datagram per frame, the size iperf3
	# itself picks (the TCP MSS, MTU - 52).  Received rate and loss.  Unless
	# sender and receiver have a core each and the receiver a 4 MB buffer,
	# half the datagrams die in the receiver's socket queue while the
	# sender holds its core: that measures the scheduler, not the path.
	j=$(iperf "$ns" -c "$ip" -t "$SECS" -u -b 0 -l $((mtu - 52)) -w 4M $AFF)
	jq -e '.end.sum_received.bits_per_second / 1e9' <<<"$j" >>"$W/$name.udp"
	jq -e '.end.sum_received.lost_percent' <<<"$j" >>"$W/$name.loss"
}

# pings NAME NS IP: 200 ICMP echoes (answered by the peer's kernel), one
# every 2 ms; their times (ms) are appended to $W/NAME.pings.
pings() {
	$2 busybox ping -c "$PINGS" -i 0.002 "$3" | sed -n 's/.*time=\([0-9.]*\) ms/\1/p' >>"$W/$1.pings"
}

# rtt: round trips of SUBJ and PEER in 5 alternating batches of 200, so that
# both see the same moment of the machine (0.4 s apart, not 10 s); the
# median of each one's 1000 times, in microseconds, to $W/NAME.rtt.
rtt() {
	local k
	: >"$W/${SUBJ[0]}.pings"
	: >"$W/${PEER[0]}.pings"
	for k in 1 2 3 4 5; do
		pings "${PEER[@]:0:3}"
		pings "${SUBJ[@]:0:3}"
	done
	median <"$W/${SUBJ[0]}.pings" | awk '{print $1 * 1000}' >>"$W/${SUBJ[0]}.rtt"
	median <"$W/${PEER[0]}.pings" | awk '{print $1 * 1000}' >>"$W/${PEER[0]}.rtt"
}

# pair: measure SUBJ and PEER (arrays of measure's arguments) REPEATS
# times, alternating which goes first, so that drifting noise on the shared
# machine hits both alike.
pair() {
	local s=${SUBJ[0]} p=${PEER[0]} r
	for r in $(seq "$REPEATS"); do
		if [ $((r % 2)) -eq 1 ]; then
			measure "${PEER[@]}"
			measure "${SUBJ[@]}"
		else
			measure "${SUBJ[@]}"
			measure "${PEER[@]}"
		fi
		rtt
		printf '  run %d: %s tcp %.2f udp %.2f rtt %s us | %s tcp %.2f udp %.2f rtt %s us\n' "$r" \
			"$s" "$(tail -n1 "$W/$s.tcp")" "$(tail -n1 "$W/$s.udp")" "$(tail -n1 "$W/$s.rtt")" \
			"$p" "$(tail -n1 "$W/$p.tcp")" "$(tail -n1 "$W/$p.udp")" "$(tail -n1 "$W/$p.rtt")"
	done
}

# report LABEL SUBJECT PEER JSON: medians, ratios against the targets.
report() {
	local label=$1 s=$2 p=$3 json=$4 k
	declare -A m
	for k in tcp udp loss rtt; do
		m[s$k]=$(median <"$W/$s.$k")
		m[p$k]=$(median <"$W/$p.$k")
	done
	printf '%s: TCP  %6.2f Gbit/s  peer %6.2f  ratio %.2f (target >= 0.90)\n' "$label" \
		"${m[stcp]}" "${m[ptcp]}" "$(awk -v a="${m[stcp]}" -v b="${m[ptcp]}" 'BEGIN {print a / b}')"
	printf '%s: UDP  %6.2f Gbit/s  peer %6.2f  ratio %.2f (target >= 0.90); loss %.2f%% peer %.2f%%\n' \
		"$label" "${m[sudp]}" "${m[pudp]}" "$(awk -v a="${m[sudp]}" -v b="${m[pudp]}" 'BEGIN {print a / b}')" \
		"${m[sloss]}" "${m[ploss]}"
	printf '%s: RTT  %6.1f us      peer %6.1f  ratio %.2f (target <= 1.20)\n' "$label" \
		"${m[srtt]}" "${m[prtt]}" "$(awk -v a="${m[srtt]}" -v b="${m[prtt]}" 'BEGIN {print a / b}')"
	jq -n --arg s "$s" --arg p "$p" --argjson secs "$SECS" \
		--argjson st "$(jq -s . "$W/$s.tcp")" --argjson su "$(jq -s . "$W/$s.udp")" \
		--argjson sl "$(jq -s . "$W/$s.loss")" --argjson sr "$(jq -s . "$W/$s.rtt")" \
		--argjson pt "$(jq -s . "$W/$p.tcp")" --argjson pu "$(jq -s . "$W/$p.udp")" \
		--argjson pl "$(jq -s . "$W/$p.loss")" --argjson pr "$(jq -s . "$W/$p.rtt")" \
		'def med: sort | .[(length - 1) / 2 | floor];
		{seconds: $secs,
		 subject: {name: $s, tcp_gbps: $st, udp_gbps: $su, udp_loss_pct: $sl, rtt_us: $sr},
		 peer: {name: $p, tcp_gbps: $pt, udp_gbps: $pu, udp_loss_pct: $pl, rtt_us: $pr},
		 median: {tcp_ratio: (($st | med) / ($pt | med)), udp_ratio: (($su | med) / ($pu | med)),
			  rtt_ratio: (($sr | med) / ($pr | med))}}' >"$OUT/$json"
}

# The peers: a bare veth pair between two namespaces, MTU 9000 as the
# internal domains; and host <-> namespace, MTU 1500 as the external one.
ip netns add "${P}a"
ip netns add "${P}b"
ip netns add "${P}x"
ip link add va netns "${P}a" type veth peer name vb netns "${P}b"
ip link add "${P}h" type veth peer name vx netns "${P}x"
ip -n "${P}a" link set va mtu 9000 up
ip -n "${P}b" link set vb mtu 9000 up
ip link set "${P}h" mtu 1500 up
ip -n "${P}x" link set vx mtu 1500 up
for n in a b x; do ip -n "$P$n" link set lo up; done
ip -n "${P}a" addr add 198.18.1.1/24 dev va
ip -n "${P}b" addr add 198.18.1.2/24 dev vb
ip addr add 198.18.2.1/24 dev "${P}h"
ip -n "${P}x" addr add 198.18.2.2/24 dev vx
NSA="nsenter --net=/run/netns/${P}a"
NSB="nsenter --net=/run/netns/${P}b"
NSX="nsenter --net=/run/netns/${P}x"

# The subjects: a facility of 3 nodes; two in alice's private domain, one
# with -x (eth0 external); a busybox appliance booted on all three.
# Every facility's external domain has the same gateway address (the
# host's end of the uplink), so a khd started while another facility holds
# it gets no uplink: wait for the other one to go (up to 5 minutes).
GW=10.0.31.254
for i in $(seq 300); do
	other=$(ip -4 -o addr show | awk -v gw="$GW" 'index($4, gw "/") == 1 {print $2; exit}')
	[ -z "$other" ] && break
	[ "$i" -eq 1 ] && echo "net: waiting for the facility on $other to stop (it holds $GW)"
	[ "$i" -eq 300 ] && { echo "net: $other still holds $GW: stop that khd first" >&2; exit 1; }
	sleep 1
done
D=$(mktemp -d /tmp/kh-bench-net-d-XXXXXX)
export KH_SOCKET=$D/khd.sock
"$BIN"/khd -d "$D" --nodes 3
FAC=$("$BIN"/khctl info | head -n1 | awk '{print $4}')
printf '#!/bin/sh\necho net-node-up\nexec sleep 2147483647\n' >"$W/init"
tests/lib/mkbusybox.sh "$W/app.cpio.gz" "$W/init"
boot() { # boot COUNT [KHGET-OPTIONS]: allocate, load, boot; prints the ranks.
	local n=$1 out con
	shift
	out=$("$BIN"/khget -c pw alice "$@" "$n")
	con=$(head -n1 <<<"$out" | cut -d@ -f1)
	{ printf 'mrw $ramfsaddr %d\n' "$(stat -c %s "$W/app.cpio.gz")"; cat "$W/app.cpio.gz"; echo 'run kboot'; } |
		"$BIN"/khcon -c pw alice --timeout 60 --until net-node-up --count "$n" "$con" >/dev/null
	sed -n 's/^nodes: //p' <<<"$out"
}
read -r R0 R1 < <(boot 2)
read -r RX < <(boot 1 -x)
nodepid() { # the first process of node RANK (any: they share its netns)
	local f pid
	for f in "/sys/fs/cgroup/pids/kh-$FAC/n$1/cgroup.procs" \
		$(find /sys/fs/cgroup -maxdepth 6 -path "*/kh-$FAC/n$1/cgroup.procs" 2>/dev/null); do
		# cgroup files have no size: read, do not test -s.
		pid=$(head -n1 "$f" 2>/dev/null || true)
		[ -n "$pid" ] && { echo "$pid"; return 0; }
	done
	echo "net: no process found for node $1 of facility $FAC" >&2
	return 1
}
N0="nsenter -t $(nodepid "$R0") -n"
N1="nsenter -t $(nodepid "$R1") -n"
NX="nsenter -t $(nodepid "$RX") -n"
ip4() { $1 ip -4 -o addr show dev "$2" | awk '{split($4, a, "/"); print a[1]}'; }
IP1=$(ip4 "$N1" eth0)
IPX=$(ip4 "$NX" eth0)
mtu() { $1 ip -o link show dev "$2" | sed 's/.* mtu \([0-9]*\) .*/\1/'; } # not /sys: the host's
MTU1=$(mtu "$N1" eth0)
MTUX=$(mtu "$NX" eth0)
UP=$("$BIN"/khctl info | sed -n 's/^fabric uplink=\([^ ]*\).*/\1/p')
if [ "$UP" = none ] || ! ip route get "$IPX" | grep -q " dev $UP "; then
	echo "net: the host does not reach the external node through this facility's uplink ($UP)" >&2
	exit 1
fi
echo "net: nodes $R0 -> $R1 ($IP1, MTU $MTU1) in one private domain; host -> node $RX ($IPX, MTU $MTUX) external"
echo "net: $REPEATS runs of $SECS s each, subject and peer alternating; iperf3 $(iperf3 --version | awk 'NR==1 {print $2}')"

serve "$NSB"
serve "$N1"
serve "$NSX"
serve "$NX"
# Warm up each path once (neighbour entries, first-use allocations).
$NSA iperf3 -c 198.18.1.2 -t 1 >/dev/null
$N0 iperf3 -c "$IP1" -t 1 >/dev/null
iperf3 -c 198.18.2.2 -t 1 >/dev/null
iperf3 -c "$IPX" -t 1 >/dev/null

SUBJ=(node "$N0" "$IP1" "$MTU1")
PEER=(veth "$NSA" 198.18.1.2 9000)
pair
report "net: node->node" node veth net-node.json
SUBJ=(ext "" "$IPX" "$MTUX")
PEER=(hostveth "" 198.18.2.2 1500)
pair
report "net: host->ext node" ext hostveth net-ext.json
stopservers
stopkhd

# Wiring cost: khget 1000 of 1100 nodes, plain (one private domain) and
# with -x, released in between.  khd prepares every free node's namespace,
# and as many namespaces with eth0 already in the external domain, in the
# background (fabric_node_prepare, fabric_pool_fill); an allocation uses
# them up, so each timed khget waits, untimed, until all are prepared
# again: a facility at rest.  The release and the
# re-preparation are timed too.
prepared() { "$BIN"/khctl info | sed -n 's/^fabric .* prepared=\([0-9]*\).*/\1/p'; }
# namespaces made ahead with eth0 in the external domain (for khget -x)
prepared_x() { "$BIN"/khctl info | sed -n 's/^fabric .*prepared-x=\([0-9]*\).*/\1/p'; }
settle() { # until every node is prepared, and as many for -x (no-op without the fabric)
	local i n
	for i in $(seq 1200); do
		n=$(prepared)
		[ -z "$n" ] || { [ "$n" -ge 1100 ] && [ "$(prepared_x)" -ge 1100 ]; } && return 0
		sleep 0.05
	done
	echo "wire: only $n of 1100 nodes prepared after 60 s" >&2
	return 1
}
wire() { # wire LABEL [KHD-OPTIONS]: one facility, both khgets, medians.
	local label=$1 flag r t0 t1 t2 t3 out con
	shift
	D=$(mktemp -d /tmp/kh-bench-net-d-XXXXXX)
	export KH_SOCKET=$D/khd.sock
	t0=$(date +%s%N)
	"$BIN"/khd -d "$D" --nodes 1100 "$@"
	t1=$(date +%s%N)
	settle
	t2=$(date +%s%N)
	if [ -n "$(prepared)" ]; then
		printf 'wire: %-9s khd --nodes 1100 ready in %.0f ms, every node prepared %.0f ms later\n' \
			"$label" "$(ms "$t0" "$t1")" "$(ms "$t1" "$t2")"
	fi
	out=$("$BIN"/khget -c pw alice 1) # the principal (slow hash) and its domain
	"$BIN"/khctl release -c pw alice "$(head -n1 <<<"$out" | cut -d@ -f1)"
	for flag in "" -x; do
		: >"$W/get" && : >"$W/rel" && : >"$W/prep"
		for r in $(seq 0 "$WIRE_RUNS"); do
			settle
			t0=$(date +%s%N)
			out=$("$BIN"/khget $flag -c pw alice 1000)
			t1=$(date +%s%N)
			con=$(head -n1 <<<"$out" | cut -d@ -f1)
			"$BIN"/khctl release -c pw alice "$con"
			t2=$(date +%s%N)
			settle
			t3=$(date +%s%N)
			if [ "$r" -gt 0 ]; then # run 0 warms up
				ms "$t0" "$t1" >>"$W/get"
				ms "$t1" "$t2" >>"$W/rel"
				ms "$t2" "$t3" >>"$W/prep"
			fi
		done
		printf 'wire: %-9s khget %-2s 1000 of 1100 nodes: median %7.1f ms (runs: %s)\n' \
			"$label" "$flag" "$(median <"$W/get")" "$(paste -sd' ' "$W/get")"
		printf 'wire: %-9s    then release median %7.1f ms' "$label" "$(median <"$W/rel")"
		[ -z "$(prepared)" ] || printf ', every free node prepared again %.0f ms later' "$(median <"$W/prep")"
		echo
		jq -n --arg l "$label" --arg f "khget ${flag:+$flag }1000" --argjson g "$(jq -s . "$W/get")" \
			--argjson r "$(jq -s . "$W/rel")" --argjson p "$(jq -s . "$W/prep")" \
			'{khd: $l, khget: $f, khget_ms: $g, release_ms: $r, reprepare_ms: $p}' \
			>"$OUT/net-wire-$label$flag.json"
	done
	stopkhd
}
[ "$WIRE_RUNS" -gt 0 ] || exit 0
wire fabric
if "$BIN"/khd --help 2>&1 | grep -q -- --no-fabric; then
	wire no-fabric --no-fabric
else
	echo "wire: khd has no --no-fabric: compare with the pre-fabric khget 1000 in bench/RESULTS.md"
fi

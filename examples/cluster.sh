#!/bin/bash
# examples/cluster.sh: a facility of N hosts on this one machine
# (docs/hosts.md).  Each host is a network namespace with its own agent
# (khagent: its nodes, its fabric, its consoles), all joined by a veth
# underlay (a bridge in one more namespace, MTU 9100 so VXLAN carries the
# domains' 9000).  The front end (khd: the protocol, channels, metering,
# the ledger) runs here, with its state in PostgreSQL started in a scratch
# directory (initdb and pg_ctl as nobody, no system service).
#
#   examples/cluster.sh up N [NODES_PER_HOST]   start; prints what to export
#   examples/cluster.sh down                    stop; leaves nothing behind
#   examples/cluster.sh status                  the hosts as khd sees them
#
# KH_CLUSTER (default /tmp/kh-cluster) is the cluster's directory; its
# "env" file holds KH_SOCKET.  KH_KHD_ARGS: more options for the front
# end's khd (e.g. --ssh-port 2222).  Root only (namespaces, cgroups).
set -eu
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${KH_BIN:-$ROOT/build/bin}
C=${KH_CLUSTER:-/tmp/kh-cluster}

die() { echo "cluster.sh: $*" >&2; exit 1; }

down() {
	[ -d "$C" ] || return 0
	local tag
	tag=$(cat "$C/tag" 2>/dev/null || true)
	if [ -f "$C/front/khd.lock" ]; then
		pid=$(head -n1 "$C/front/khd.lock" 2>/dev/null || true)
		if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then
			for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
		fi
	fi
	for f in "$C"/h*/agent.pid; do
		[ -f "$f" ] || continue
		pid=$(cat "$f")
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
		kill -9 "$pid" 2>/dev/null || true
	done
	[ -d "$C/pg" ] && tests/lib/pgcluster.sh stop "$C/pg" >/dev/null 2>&1 || true
	if [ -n "$tag" ]; then
		for ns in $(ip netns list | awk '{print $1}' | grep "^$tag-" || true); do
			ip netns del "$ns" 2>/dev/null || true
		done
		ip link del "$tag-f" 2>/dev/null || true
	fi
	for m in $(awk -v c="$C" '$2 ~ "^"c {print $2}' /proc/mounts | sort -r); do
		umount -l "$m" 2>/dev/null || true
	done
	rm -rf "$C"
}

up() {
	local n=$1 per=${2:-16}
	case "$n" in '' | *[!0-9]*) die "up takes a number of hosts (1..32)" ;; esac
	[ "$n" -ge 1 ] && [ "$n" -le 32 ] || die "up takes a number of hosts (1..32)"
	case "$per" in '' | *[!0-9]*) die "nodes per host: a number" ;; esac
	[ "$(id -u)" = 0 ] || die "run as root (namespaces, cgroups)"
	[ -x "$BIN/khd" ] && [ -x "$BIN/khagent" ] || die "build first: make"
	[ -e "$C" ] && die "$C exists: examples/cluster.sh down first"
	mkdir -p "$C"
	# A tag and an underlay subnet of this cluster's own, so that clusters
	# (and tests) side by side do not meet.
	local id=$((RANDOM % 200 + 20))
	local tag=khc$id net=10.$((RANDOM % 50 + 200)).$id
	echo "$tag" >"$C/tag"
	trap 'echo "cluster.sh: up failed; tearing down" >&2; down' ERR
	# The underlay: a bridge in its own namespace, a veth to each host
	# and one to the front end here.
	ip netns add "$tag-u"
	ip -n "$tag-u" link add br0 type bridge
	ip -n "$tag-u" link set br0 up mtu 9100
	ip link add "$tag-f" mtu 9100 type veth peer name f netns "$tag-u"
	ip -n "$tag-u" link set f master br0 mtu 9100 up
	ip addr add "$net.1/24" dev "$tag-f"
	ip link set "$tag-f" up
	head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$C/key"
	echo >>"$C/key"
	chmod 600 "$C/key"
	# PostgreSQL, for the front end's state.
	local conn
	conn=$(tests/lib/pgcluster.sh start "$C/pg")
	mkdir -p "$C/front"
	{
		echo "state postgresql:$conn"
		echo "cluster_key $C/key"
		echo "type ct1 cpus=1 mem=256M count=$per"
		echo "policy limits ${KH_PLACE:-pack}"
		echo "placement hints=yes"
	} >"$C/front/khd.conf"
	for i in $(seq 1 "$n"); do
		local ns=$tag-h$i ip=$net.$((i + 1))
		ip netns add "$ns"
		ip link add "$tag-v$i" mtu 9100 type veth peer name u0 netns "$ns"
		ip link set "$tag-v$i" netns "$tag-u"
		ip -n "$tag-u" link set "$tag-v$i" master br0 mtu 9100 up
		ip -n "$ns" addr add "$ip/24" dev u0
		ip -n "$ns" link set u0 mtu 9100 up
		ip -n "$ns" link set lo up
		ip -n "$ns" route add default via "$net.1"
		mkdir -p "$C/h$i"
		# nsenter, not ip netns exec: that one remounts /sys, and with it
		# the cgroup hierarchies the agent needs.
		nsenter --net="/run/netns/$ns" setsid "$BIN/khagent" -d "$C/h$i" --listen "$ip:7405" \
			--key "$C/key" --name "h$i" </dev/null >"$C/h$i/agent.out" 2>&1 &
		echo $! >"$C/h$i/agent.pid"
		echo "host h$i $ip:7405" >>"$C/front/khd.conf"
	done
	for i in $(seq 1 "$n"); do
		for _ in $(seq 100); do
			grep -q listening "$C/h$i/agent.out" && break
			kill -0 "$(cat "$C/h$i/agent.pid")" 2>/dev/null || die "host h$i: $(cat "$C/h$i/agent.out")"
			sleep 0.05
		done
	done
	# (khd's spawner, made before khd daemonizes, keeps the stderr it was
	# started with: a file, so that a caller reading ours sees it end)
	# shellcheck disable=SC2086 # KH_KHD_ARGS: more options for khd, split
	"$BIN/khd" -d "$C/front" ${KH_KHD_ARGS:-} >/dev/null 2>"$C/front/khd.err" ||
		die "khd: $(cat "$C/front/khd.err")"
	export KH_SOCKET=$C/front/khd.sock
	# Ready when every agent has said hello.
	for _ in $(seq 200); do
		[ "$("$BIN/khctl" info 2>/dev/null | grep -c "^host .* state=up")" = "$n" ] && break
		sleep 0.05
	done
	echo "export KH_SOCKET=$KH_SOCKET" >"$C/env"
	trap - ERR
	echo "export KH_SOCKET=$KH_SOCKET"
	echo "# $n hosts of $per ct1 nodes; state in PostgreSQL ($C/pg); down: $0 down" >&2
}

case "${1:-}" in
up) up "${2:-}" "${3:-16}" ;;
down) down ;;
status)
	[ -f "$C/env" ] || die "no cluster at $C"
	. "$C/env"
	"$BIN/khctl" info | grep "^host " || true
	;;
*) echo "usage: $0 up N [NODES_PER_HOST] | down | status" >&2; exit 2 ;;
esac

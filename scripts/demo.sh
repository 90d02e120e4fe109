#!/bin/bash
# make demo: the README's main job.  Start an embedded facility on a
# scratch directory, run the paper's Listing 1 with 1 and then 100 web
# servers (examples/webfarm.sh) as its principal, show the bill, stop the
# facility, and check that nothing is left behind: no process, mount,
# cgroup, network namespace, interface or nftables table of it.
set -eu
cd "$(dirname "$0")/.."
PATH=$PWD/build/bin:$PATH
D=$(mktemp -d /tmp/kh-demo-XXXXXX)
export KH_SOCKET=$D/khd.sock KH_USER=${USER:-demo} KH_CRED=demo-secret
NODES=120

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
ms() { echo $((($(date +%s%N) - $1) / 1000000)); }
# Network namespaces held by processes (as their own or by an open fd):
# netns_held PID... (default: every process).
netns_held() {
	local p
	for p in ${@:-/proc/[0-9]*}; do
		p=/proc/${p#/proc/}
		ls -l "$p/ns/net" "$p/fd/" "$p"/task/*/ns/net 2>/dev/null
	done | grep -o 'net:\[[0-9]*\]' | sort -u
}
stop_khd() {
	local pid
	pid=$(head -n1 "$D/khd.lock" 2>/dev/null || true)
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
	return 0
}
trap 'stop_khd; rm -rf "$D"' EXIT

step khd -d "$D" --nodes $NODES
t=$(date +%s%N)
khd -d "$D" --nodes $NODES --host "$(hostname)"
echo "(serving after $(ms "$t") ms)"
khctl info
FAC=$(khctl info | awk 'NR == 1 {print $4}')
if grep -q 'already has 10.0.31.254' "$D/khd.log"; then
	echo "Another facility on this host holds the external domain's uplink (docs/fabric.md);"
	echo "stop it and run make demo again."
	exit 1
fi

step "examples/webfarm.sh   (the paper's Listing 1: 1 web server, then 100)"
t=$(date +%s%N)
examples/webfarm.sh
echo "(the whole example took $(ms "$t") ms)"

if command -v khbill >/dev/null && khbill --help >/dev/null 2>&1; then
	step "khbill usage $KH_USER   (what the example used, metered by khd)"
	khbill usage "$KH_USER" || true
fi

# The facility's network namespaces: the fabric's and one per node, all
# held by khd (and by the nodes' processes).
ns_ours=$(netns_held "$(head -n1 "$D/khd.lock")" | grep -vxF "$(readlink /proc/self/ns/net)")
step "stopping khd (SIGTERM)"
t=$(date +%s%N)
stop_khd
echo "(stopped in $(ms "$t") ms)"

# What a facility makes, and must not leave: its processes (nodes, the
# spawner), mounts under DIR, node cgroups kh-<facility>, the uplink
# kh<facility>, the NAT table, network namespaces.
left=()
for _ in $(seq 50); do # the kernel frees namespaces a moment later
	new=$(comm -12 <(echo "$ns_ours") <(netns_held))
	[ -z "$new" ] && break
	sleep 0.1
done
[ -n "$new" ] && left+=("network namespaces: $(echo $new)")
p=$(pgrep -f "$D" || true)
[ -n "$p" ] && left+=("processes: $(echo $p)")
m=$(grep -c " $D" /proc/mounts || true)
[ "$m" != 0 ] && left+=("$m mounts under $D")
cg=$(find /sys/fs/cgroup -maxdepth 3 -type d -name "kh-$FAC" 2>/dev/null || true)
[ -n "$cg" ] && left+=("cgroups: $cg")
ip link show "kh$FAC" >/dev/null 2>&1 && left+=("interface kh$FAC")
nft list table ip "kh$FAC" >/dev/null 2>&1 && left+=("nftables table ip kh$FAC")
rm -rf "$D"
if [ ${#left[@]} -gt 0 ]; then
	printf 'left behind: %s\n' "${left[@]}"
	exit 1
fi
echo "left behind: nothing (no process, mount, cgroup, network namespace, interface or nftables table of facility $FAC)"
echo
echo "More: examples/intranet.sh and examples/servers.sh (docs/examples.md), khdo (docs/khdo.md),"
echo "ssh con<C>@host (docs/channels.md), metering and bills (docs/metering.md)."

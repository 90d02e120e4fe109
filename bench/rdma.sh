#!/bin/bash
# bench/rdma.sh: the one-sided memory device (issue 12) against its peers,
# all in the same run, alternating, REPEATS rounds:
#   - khrdma bench: node B reads and writes node A's region (one-sided);
#   - memcpy in one process (the physical limit), in node B;
#   - process_vm_readv from another process, in node B;
#   - TCP request/response of the same sizes, node B to node A over their
#     domain's Ethernet.
# Clients run on core 0, the engine and the TCP server on core 1 (a cross-
# core wake-up costs tens of microseconds here: the figures are for a
# polling engine and a polling client, as the device is built to run).
# Last, the engine's CPU while regions are exposed and nobody operates.
# The programs run inside the nodes (nsenter into all of a node's
# namespaces; the rdma appliance holds khrdma and rdmapeer).
# Usage (root): bench/rdma.sh   (env: BIN=build/bin REPEATS=5 QUICK=1)
set -eu
cd "$(dirname "$0")/.."
BIN=${BIN:-build/bin}
case "$BIN" in /*) ;; *) BIN=$PWD/$BIN ;; esac
BUILD=$(dirname "$BIN")
REPEATS=${REPEATS:-5}
Q=${QUICK:+--quick}
OUT=${BENCH_OUT:-bench/results}
mkdir -p "$OUT"
export PATH=$BIN:$PATH
W=$(mktemp -d /tmp/kh-bench-rdma-XXXXXX)
D=$W/fac
cleanup() {
	local pid
	pid=$(head -n1 "$D/khd.lock" 2>/dev/null || true)
	if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then
		while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
	fi
	rm -rf "$W"
}
trap cleanup EXIT

khappliance -q -o "$W/app.cpio.gz" -r appliances/rdma -f "$BUILD/bench/rdmapeer=/usr/bin/rdmapeer"
khd -d "$D" --nodes 4
export KH_SOCKET=$D/khd.sock
blk=$(khget -c pw bench 2)
khdo -c pw bench loadramdisk "$W/app.cpio.gz" <<<"$blk" >/dev/null
khdo -c pw bench --until 'appliance up' write 'run kboot' <<<"$blk" >/dev/null
IPA=$(awk '/^nodeinfo: 0 / {print $4}' <<<"$blk")
FAC=$(khctl info | head -n1 | awk '{print $4}')
HOSTNS=$(readlink /proc/self/ns/net)
node_pid() { # a process of node R (in its own namespaces)
	local p
	for p in $(cat /sys/fs/cgroup/*/kh-"$FAC"/n"$1"/cgroup.procs /sys/fs/cgroup/kh-"$FAC"/n"$1"/cgroup.procs 2>/dev/null); do
		[ "$(readlink "/proc/$p/ns/net" 2>/dev/null)" != "$HOSTNS" ] && { echo "$p"; return; }
	done
}
PA=$(node_pid 0)
PB=$(node_pid 1)
inA() { nsenter -t "$PA" -a -- "$@"; }
inB() { nsenter -t "$PB" -a -- "$@"; }

inA khrdma expose eth0 2M --fill 65 >"$W/key" &
disown
for _ in $(seq 100); do grep -q '^key' "$W/key" 2>/dev/null && break; sleep 0.05; done
KEY=$(awk '{print $2}' "$W/key")
ENG=$(pgrep -P "$(head -n1 "$D/khd.lock")" -f '^kh-rdma-engine' | head -n1)
taskset -pc 1 "$ENG" >/dev/null
inA taskset -c 1 rdmapeer tcpserve 7777 >"$W/tcpserve" &
disown
for _ in $(seq 100); do grep -q serving "$W/tcpserve" 2>/dev/null && break; sleep 0.05; done

# fig FILE WHAT: the number of one figure ("read 200 B median" -> 0.41).
fig() { awk -v w="$2" 'index($0, w) == 1 {for (i = 1; i <= NF; i++) if ($i == "median" || $i == "bandwidth") {print $(i + 1); exit}}' "$1"; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

for r in $(seq "$REPEATS"); do
	inB taskset -c 0 khrdma bench eth0 "$IPA" "$KEY" $Q >"$W/rdma.$r"
	inB taskset -c 0 rdmapeer memcpy $Q >"$W/memcpy.$r"
	inB taskset -c 0 rdmapeer pvr $Q >"$W/pvr.$r"
	inB taskset -c 0 rdmapeer tcpclient "$IPA" 7777 $Q >"$W/tcp.$r"
	echo "round $r: rdma read 200 B $(fig "$W/rdma.$r" "read 200 B") us," \
		"tcp $(fig "$W/tcp.$r" "read 200 B") us; 64 KB rdma $(fig "$W/rdma.$r" "read 64 KB bandwidth") GB/s," \
		"memcpy $(fig "$W/memcpy.$r" "read 64 KB bandwidth") GB/s"
done

med() { for r in $(seq "$REPEATS"); do fig "$W/$1.$r" "$2"; done | median; }
echo
echo "medians of $REPEATS rounds:"
printf '%-26s %10s %10s %10s %10s\n' "" rdma memcpy pvr tcp
for w in "read 200 B" "read 1 KB"; do
	printf '%-26s %10s %10s %10s %10s\n' "$w median (us)" "$(med rdma "$w")" "$(med memcpy "$w")" \
		"$(med pvr "$w")" "$(med tcp "$w")"
done
for w in "read 64 KB bandwidth" "read 1024 KB bandwidth"; do
	printf '%-26s %10s %10s %10s %10s\n' "$w (GB/s)" "$(med rdma "$w")" "$(med memcpy "$w")" \
		"$(med pvr "$w")" "$(med tcp "$w")"
done
echo "rdma alone (medians):"
for w in "read 8 B" "write 8 B" "write 200 B" "write 1 KB" "read 64 KB median" "write 64 KB median" "cas 8 B" \
	"fadd 8 B" "write 64 KB bandwidth" "write 1024 KB bandwidth"; do
	printf '  %-22s %s\n' "$w" "$(med rdma "$w")"
done

R200=$(med rdma "read 200 B")
T200=$(med tcp "read 200 B")
R1K=$(med rdma "read 1 KB")
T1K=$(med tcp "read 1 KB")
B64=$(med rdma "read 64 KB bandwidth")
M64=$(med memcpy "read 64 KB bandwidth")
B1M=$(med rdma "read 1024 KB bandwidth")
M1M=$(med memcpy "read 1024 KB bandwidth")

# The idle device: regions exposed, nobody operating, for 3 s.
sleep 1
c0=$(awk '{print $14 + $15}' "/proc/$ENG/stat")
sleep 3
c1=$(awk '{print $14 + $15}' "/proc/$ENG/stat")
IDLE=$((c1 - c0))

echo
awk -v r=$R200 -v t=$T200 -v r1=$R1K -v t1=$T1K -v b=$B64 -v m=$M64 -v b1=$B1M -v m1=$M1M -v idle=$IDLE 'BEGIN {
	printf "read 200 B: %.2f us (target <= 1 us; the paper'"'"'s hardware: 1.7 us)\n", r
	printf "TCP round trip / one-sided read: 200 B %.0fx, 1 KB %.0fx (target >= 20x)\n", t / r, t1 / r1
	printf "64 KB reads: %.0f%% of memcpy (target >= 80%%); 1 MB: %.0f%%\n", 100 * b / m, 100 * b1 / m1
	printf "idle engine: %d clock ticks of CPU in 3 s\n", idle
}'
cat >"$OUT/rdma.json" <<EOF
{"repeats": $REPEATS, "read_200B_us": $R200, "read_1KB_us": $R1K, "tcp_200B_us": $T200, "tcp_1KB_us": $T1K,
 "read_64KB_GBps": $B64, "memcpy_64KB_GBps": $M64, "read_1MB_GBps": $B1M, "memcpy_1MB_GBps": $M1M,
 "pvr_200B_us": $(med pvr "read 200 B"), "pvr_64KB_GBps": $(med pvr "read 64 KB bandwidth"), "idle_ticks_3s": $IDLE}
EOF

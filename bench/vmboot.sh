#!/bin/bash
# bench/vmboot.sh: boot N vm nodes through khd (issue 14) as a principal
# does (one khget, khdo loadkernel and loadramdisk of a Debian cloud kernel
# and a busybox appliance, then "run kboot" on the channel), timed from
# "run kboot" until every guest's /init has said it runs.  The peer, in the
# same run and alternating with it: N qemu-system-x86_64 -kernel -initrd
# started by hand with the same machine, accelerator, memory, firmware
# and command line, timed from their start to the same line.  khd runs
# with --no-fabric (the same QEMU command line as the peer, no NIC) and
# then with its domains (one virtio-net on a macvtap per node).  The peer's
# QEMUs run in a CPU cgroup of the same shape as the nodes' (one group for
# the N, each QEMU in its own child with the type's 1-CPU quota): a loaded
# host gives a facility's nodes together one share of the CPU, as it would
# give a bare QEMU started by hand in such a group, where N QEMUs in the
# root group would get N shares (PEER_CGROUP=0: the root group, as a
# shell starts them).  Also: khd's own CPU time per boot over the same
# window (/proc/PID/schedstat), and its wall time inside a boot request
# (its log).  Medians of REPEATS runs.
# Usage (root): bench/vmboot.sh [N...]   (default: 1 8)
set -eu
cd "$(dirname "$0")/.."
BIN=${BIN:-build/bin}
REPEATS=${REPEATS:-3}
SIZES=${*:-1 8}
KERNEL=${KH_VM_KERNEL:-$(ls -1 /boot/vmlinuz-*-cloud-amd64 2>/dev/null | sort -V | tail -n1)}
[ -n "$KERNEL" ] || { echo "vmboot: no /boot/vmlinuz-*-cloud-amd64 (scripts/deps.sh)" >&2; exit 1; }
QEMU=$(command -v qemu-system-x86_64) || { echo "vmboot: no qemu-system-x86_64" >&2; exit 1; }
W=$(mktemp -d /tmp/kh-bench-vmboot-XXXXXX)
D=
stopkhd() {
	[ -n "$D" ] || return 0
	pid=$(head -n1 "$D/khd.lock" 2>/dev/null || true)
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
	rm -rf "$D"
	D=
}
barekill() { for p in $(jobs -p); do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap 'barekill; peer_cg_rm; stopkhd; rm -rf "$W"' EXIT

# The appliance: busybox and an /init that says so first thing.
printf '#!/bin/sh\necho init-running\nexec sleep 2147483647\n' >"$W/init"
tests/lib/mkbusybox.sh "$W/app.cpio.gz" "$W/init"
echo "kernel: $KERNEL ($(stat -c %s "$KERNEL") bytes), appliance $(stat -c %s "$W/app.cpio.gz") bytes"

ms() { echo $((($2 - $1) / 1000000)); }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
cpu_ns() { awk '{print $1}' "/proc/$1/schedstat"; }
# The peer's CPU cgroup (cgroup v1 cpu controller, or v2), made per run.
PEER_CGROUP=${PEER_CGROUP:-1}
CGV1=/sys/fs/cgroup/cpu
PCG=
if [ "$PEER_CGROUP" = 1 ]; then
	if [ -d "$CGV1" ] && [ -w "$CGV1/cgroup.procs" ]; then
		PCG=$CGV1/kh-vmbench-$$
	elif [ -f /sys/fs/cgroup/cgroup.controllers ]; then
		PCG=/sys/fs/cgroup/kh-vmbench-$$
	fi
fi
peer_cg() { # peer_cg I: the cgroup directory of peer QEMU I, made
	local d=$PCG/q$1
	mkdir -p "$d"
	if [ -f "$d/cpu.cfs_quota_us" ]; then
		echo 100000 >"$d/cpu.cfs_period_us"
		echo 100000 >"$d/cpu.cfs_quota_us"
	else
		echo "+cpu" >"$PCG/cgroup.subtree_control" 2>/dev/null || true
		echo "100000 100000" >"$d/cpu.max" 2>/dev/null || true
	fi
	echo "$d"
}
peer_cg_rm() { [ -n "$PCG" ] && [ -d "$PCG" ] && { rmdir "$PCG"/q* 2>/dev/null; rmdir "$PCG" 2>/dev/null; } || true; }

# bare N ACCEL: N QEMUs by hand; prints ms until all said init-running.
bare() {
	local n=$1 accel=$2 t0 i cpu=max bios=()
	[ "$accel" = kvm ] && cpu=host
	[ -r /usr/share/qemu/qboot.rom ] && bios=(-bios /usr/share/qemu/qboot.rom)
	rm -f "$W"/bare*.out
	t0=$(date +%s%N)
	for i in $(seq "$n"); do
		cg=""
		[ -z "$PCG" ] || cg=$(peer_cg "$i")
		# shellcheck disable=SC2016
		sh -c '[ -z "$1" ] || echo $$ >"$1/cgroup.procs"; shift; exec "$@"' sh "$cg" \
		"$QEMU" -name "bare$i" -nodefaults -no-user-config -nographic -no-reboot \
			-sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny -machine q35,sata=off,smbus=off,usb=off "${bios[@]}" -accel "$accel" -cpu "$cpu" \
			-smp 1 -m 256M -kernel "$KERNEL" -initrd "$W/app.cpio.gz" \
			-append "console=ttyS0 panic=-1 quiet no_timer_check" -chardev stdio,id=con,signal=off \
			-serial chardev:con -msg timestamp=off </dev/null >"$W/bare$i.out" 2>&1 &
	done
	while [ "$(grep -l init-running "$W"/bare*.out 2>/dev/null | wc -l)" -lt "$n" ]; do
		sleep 0.01
		[ $((($(date +%s%N) - t0) / 1000000000)) -lt 180 ] || { echo "vmboot: bare QEMU did not reach /init" >&2; exit 1; }
	done
	ms "$t0" "$(date +%s%N)"
	barekill
	peer_cg_rm
}

results=()
for mode in ${MODES:-nofabric fabric}; do
	for N in $SIZES; do
		D=$(mktemp -d /tmp/kh-bench-vmboot-d-XXXXXX)
		echo "type vm1 backend=vm cpus=1 mem=256M count=$N" >"$D/khd.conf"
		export KH_SOCKET=$D/khd.sock
		if [ "$mode" = nofabric ]; then
			"$BIN"/khd -d "$D" --no-fabric --no-rdma --load-timeout 10000
		else
			"$BIN"/khd -d "$D" --no-rdma --load-timeout 10000
		fi
		KPID=$(head -n1 "$D/khd.lock")
		ACCEL=$("$BIN"/khctl info | sed -nE 's/^vm qemu=[^ ]* accel=([a-z]+).*/\1/p')
		nodes=$("$BIN"/khget -c pw bench "$N")
		CON=$(head -n1 <<<"$nodes" | cut -d@ -f1)
		kh=()
		br=()
		cpu=()
		for r in $(seq "$REPEATS"); do
			"$BIN"/khdo -c pw bench loadkernel "$KERNEL" <<<"$nodes" >/dev/null
			"$BIN"/khdo -c pw bench loadramdisk "$W/app.cpio.gz" <<<"$nodes" >/dev/null
			c0=$(cpu_ns "$KPID")
			t0=$(date +%s%N)
			if ! echo 'run kboot' | "$BIN"/khcon -c pw bench --prefix --timeout 180 \
				--until init-running --count "$N" "$CON" >"$W/kboot.out" 2>&1; then
				# say which nodes did not get there, and their last lines
				echo "vmboot: not every node reached /init within 180 s:" >&2
				for r in $(seq 0 $((N - 1))); do
					grep -q "^\[$r\] init-running" "$W/kboot.out" ||
						{ echo "node $r:"; grep "^\[$r\]" "$W/kboot.out" | tail -n 5; } >&2
				done
				exit 1
			fi
			t1=$(date +%s%N)
			c1=$(cpu_ns "$KPID")
			kh+=("$(ms "$t0" "$t1")")
			cpu+=("$(((c1 - c0) / 1000))")
			"$BIN"/khctl reset -c pw bench "$CON"
			sleep 1
			br+=("$(bare "$N" "$ACCEL")")
			sleep 1
		done
		khm=$(printf '%s\n' "${kh[@]}" | median)
		brm=$(printf '%s\n' "${br[@]}" | median)
		cpum=$(printf '%s\n' "${cpu[@]}" | median)
		inkhd=$(sed -nE 's/.*vm boot: ([0-9.]+) ms in khd.*/\1/p' "$D/khd.log" | sort -n |
			awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
		ratio=$(awk -v a="$khm" -v b="$brm" 'BEGIN {printf "%.2f", a / b}')
		line="$mode N=$N accel=$ACCEL: khd run kboot -> /init ${khm} ms (runs: ${kh[*]}), bare QEMU ${brm} ms (runs: ${br[*]}), ratio $ratio; khd CPU $(awk -v c="$cpum" -v n="$N" 'BEGIN {printf "%.1f", c / n / 1000}') ms per boot (run kboot to /init, console included), in khd's boot request median $inkhd ms; peer cgroup: ${PCG:-none}"
		echo "$line"
		results+=("$line")
		stopkhd
	done
done
mkdir -p "${BENCH_OUT:-bench/results}"
printf '%s\n' "${results[@]}" >"${BENCH_OUT:-bench/results}/vmboot.txt"

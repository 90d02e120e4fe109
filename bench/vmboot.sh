#!/bin/bash
# bench/vmboot.sh: boot N vm nodes through khd (issue 14) as a principal
# does (one khget, khdo loadkernel and loadramdisk of a Debian cloud kernel
# and a busybox appliance, then "run kboot" on the channel), timed from
# "run kboot" until every guest's /init has said it runs.  The peer, in the
# same run and alternating with it: N qemu-system-x86_64 -kernel -initrd
# started by hand with the same machine, accelerator, memory, firmware
# and command line, timed from their start to the same line.  khd runs
# with --no-fabric (the same QEMU command line as the peer, no NIC) and
# then with its domains (one virtio-net on a macvtap per node).  Also:
# khd's own CPU time (utime+stime) per boot over the same window, and its
# wall time inside a boot request (its log).  Medians of REPEATS runs.
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
trap 'barekill; stopkhd; rm -rf "$W"' EXIT

# The appliance: busybox and an /init that says so first thing.
printf '#!/bin/sh\necho init-running\nexec sleep 2147483647\n' >"$W/init"
tests/lib/mkbusybox.sh "$W/app.cpio.gz" "$W/init"
echo "kernel: $KERNEL ($(stat -c %s "$KERNEL") bytes), appliance $(stat -c %s "$W/app.cpio.gz") bytes"

ms() { echo $((($2 - $1) / 1000000)); }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)

# bare N ACCEL: N QEMUs by hand; prints ms until all said init-running.
bare() {
	local n=$1 accel=$2 t0 i cpu=max bios=()
	[ "$accel" = kvm ] && cpu=host
	[ -r /usr/share/qemu/qboot.rom ] && bios=(-bios /usr/share/qemu/qboot.rom)
	rm -f "$W"/bare*.out
	t0=$(date +%s%N)
	for i in $(seq "$n"); do
		"$QEMU" -name "bare$i" -nodefaults -no-user-config -nographic -no-reboot \
			-machine q35,sata=off,smbus=off,usb=off "${bios[@]}" -accel "$accel" -cpu "$cpu" \
			-smp 1 -m 256M -kernel "$KERNEL" -initrd "$W/app.cpio.gz" \
			-append "console=ttyS0 panic=-1 quiet" -chardev stdio,id=con,signal=off \
			-serial chardev:con -msg timestamp=off </dev/null >"$W/bare$i.out" 2>&1 &
	done
	while [ "$(grep -l init-running "$W"/bare*.out 2>/dev/null | wc -l)" -lt "$n" ]; do
		sleep 0.01
		[ $((($(date +%s%N) - t0) / 1000000000)) -lt 300 ] || { echo "vmboot: bare QEMU did not reach /init" >&2; exit 1; }
	done
	ms "$t0" "$(date +%s%N)"
	barekill
}

results=()
for mode in nofabric fabric; do
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
			c0=$(cpu_ticks "$KPID")
			t0=$(date +%s%N)
			echo 'run kboot' |
				"$BIN"/khcon -c pw bench --timeout 300 --until init-running --count "$N" "$CON" >/dev/null
			t1=$(date +%s%N)
			c1=$(cpu_ticks "$KPID")
			kh+=("$(ms "$t0" "$t1")")
			cpu+=("$(((c1 - c0) * 1000 / HZ))")
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
		line="$mode N=$N accel=$ACCEL: khd run kboot -> /init ${khm} ms (runs: ${kh[*]}), bare QEMU ${brm} ms (runs: ${br[*]}), ratio $ratio; khd CPU $(awk -v c="$cpum" -v n="$N" 'BEGIN {printf "%.1f", c / n}') ms per boot (whole window, tick $((1000 / HZ)) ms), in khd's boot request median $inkhd ms"
		echo "$line"
		results+=("$line")
		stopkhd
	done
done
mkdir -p "${BENCH_OUT:-bench/results}"
printf '%s\n' "${results[@]}" >"${BENCH_OUT:-bench/results}/vmboot.txt"

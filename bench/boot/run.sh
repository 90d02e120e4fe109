#!/bin/sh
# Boot benchmark: N container nodes (ct backend) against N crun containers
# from the same busybox appliance root; time until every /init runs.
# Usage (root): bench/boot/run.sh [N...]      (default: 100 1000)
# Env: REPEATS (default 3), CRUN_JOBS (default 1), CC.
set -eu

cd "$(dirname "$0")/../.."
REPEATS=${REPEATS:-3}
CRUN_JOBS=${CRUN_JOBS:-1}
SIZES=${*:-100 1000}

[ "$(id -u)" = 0 ] || { echo "boot bench: needs root" >&2; exit 1; }
command -v crun >/dev/null || { echo "boot bench: crun not installed" >&2; exit 1; }
BUSYBOX=$(command -v busybox) || { echo "boot bench: busybox-static not installed" >&2; exit 1; }

WORK=$(mktemp -d /tmp/kh-bench-boot.XXXXXX)
FAC=$(printf '%08x' $$)
BIN=$WORK/boot_bench

cleanup() {
	# Whatever a failed run left: ct nodes (by facility cgroup), crun
	# containers (by name), then files.
	for d in /sys/fs/cgroup/*/kh-$FAC/n* /sys/fs/cgroup/*/*/*/kh-$FAC/n* \
		/sys/fs/cgroup/kh-$FAC/n*; do
		[ -f "$d/cgroup.procs" ] && xargs -r kill -9 <"$d/cgroup.procs" 2>/dev/null
	done
	sleep 0.2
	for d in /sys/fs/cgroup/*/kh-$FAC/n* /sys/fs/cgroup/*/*/*/kh-$FAC/n* \
		/sys/fs/cgroup/kh-$FAC/n* /sys/fs/cgroup/*/kh-$FAC /sys/fs/cgroup/*/*/*/kh-$FAC \
		/sys/fs/cgroup/kh-$FAC; do
		[ -d "$d" ] && rmdir "$d" 2>/dev/null
	done
	crun list 2>/dev/null | awk -v p="khb" 'index($1, p) == 1 { print $1 }' |
		while read -r id; do crun delete -f "$id" >/dev/null 2>&1 || true; done
	rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

# Only the node backend is needed: built from its sources, whatever state
# the rest of the tree is in (and the waiting nodes' program, kh-ctnode,
# which it carries: make builds it).
make -s build/obj/ctnode_blob.o
${CC:-cc} -std=c17 -D_GNU_SOURCE -O2 -Isrc -o "$BIN" bench/boot/boot_bench.c \
	$(ls src/nodes/*.c | grep -v ctnode_main.c) build/obj/ctnode_blob.o src/fabric/addr.c \
	src/common/util.c src/common/log.c -lmnl

# The appliance: static busybox with all its applets, an /init that says
# "R" on its console when it runs and then sleeps, ~1 MB of other files.
ROOT=$WORK/root
mkdir -p "$ROOT/bin" "$ROOT/etc" "$ROOT/lib" "$ROOT/tmp" "$ROOT/dev" "$ROOT/proc" "$ROOT/sys"
cp "$BUSYBOX" "$ROOT/bin/busybox"
for a in $("$BUSYBOX" --list); do
	[ -e "$ROOT/bin/$a" ] || ln -s busybox "$ROOT/bin/$a"
done
head -c 1048576 /dev/urandom >"$ROOT/lib/payload"
echo "root:x:0:0:root:/:/bin/sh" >"$ROOT/etc/passwd"
printf '#!/bin/sh\necho -n R\nexec sleep 2147483647\n' >"$ROOT/init"
chmod 755 "$ROOT/init"

# The same root for crun, read-only and shared like ct's lower layer, with
# the same namespaces, limits, capabilities and /proc protection.
mkdir -p "$WORK/bundle"
cat >"$WORK/bundle/config.json" <<EOF
{
  "ociVersion": "1.0.2",
  "process": {
    "terminal": false,
    "user": {"uid": 0, "gid": 0},
    "args": ["/init"],
    "env": ["PATH=/sbin:/bin:/usr/sbin:/usr/bin", "HOME=/", "TERM=linux"],
    "cwd": "/",
    "capabilities": {
      "bounding": ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
        "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_SETFCAP", "CAP_NET_BIND_SERVICE",
        "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_SYS_CHROOT", "CAP_AUDIT_WRITE"],
      "effective": ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
        "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_SETFCAP", "CAP_NET_BIND_SERVICE",
        "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_SYS_CHROOT", "CAP_AUDIT_WRITE"],
      "permitted": ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
        "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_SETFCAP", "CAP_NET_BIND_SERVICE",
        "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_SYS_CHROOT", "CAP_AUDIT_WRITE"]
    }
  },
  "root": {"path": "$ROOT", "readonly": true},
  "hostname": "crun",
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
     "options": ["nosuid", "noexec", "mode=755", "size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
     "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs",
     "options": ["nosuid", "noexec", "nodev", "ro"]}
  ],
  "linux": {
    "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"},
                   {"type": "mount"}, {"type": "cgroup"}],
    "resources": {
      "memory": {"limit": 67108864, "swap": 67108864},
      "cpu": {"quota": 100000, "period": 100000},
      "pids": {"limit": 64}
    },
    "maskedPaths": ["/proc/keys", "/proc/timer_list", "/proc/sysrq-trigger"],
    "readonlyPaths": ["/proc/sys", "/proc/irq"]
  }
}
EOF

echo "boot bench: $(nproc) CPUs, $(uname -r), cgroup v$(stat -f -c %T /sys/fs/cgroup | \
	sed 's/cgroup2fs/2/;s/tmpfs/1/'), appliance $(du -sh "$ROOT" | cut -f1), \
repeats $REPEATS, crun $(crun --version | head -1 | cut -d' ' -f3)"
mounts_before=$(wc -l </proc/self/mountinfo)

# median of the numbers on stdin
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p"; }

for n in $SIZES; do
	: >"$WORK/ct" ; : >"$WORK/ctp" ; : >"$WORK/crun"
	i=0
	while [ "$i" -lt "$REPEATS" ]; do
		mkdir -p "$WORK/scratch"
		"$BIN" -m ct -n "$n" -r "$ROOT" -w "$WORK/scratch" -F "$FAC" | tee -a "$WORK/ct"
		"$BIN" -m ct -P -n "$n" -r "$ROOT" -w "$WORK/scratch" -F "$FAC" | tee -a "$WORK/ctp"
		"$BIN" -m crun -j "$CRUN_JOBS" -n "$n" -b "$WORK/bundle" | tee -a "$WORK/crun"
		i=$((i + 1))
	done
	ct=$(field all_running_ms <"$WORK/ct" | median)
	ctp=$(field all_running_ms <"$WORK/ctp" | median)
	cr=$(field all_running_ms <"$WORK/crun" | median)
	ctk=$(field kill_reap_ms <"$WORK/ct" | median)
	crd=$(field delete_ms <"$WORK/crun" | median)
	ctc=$(field cpu_per_node_us <"$WORK/ct" | median)
	crc=$(field cpu_per_node_us <"$WORK/crun" | median)
	echo "N=$n: all /init running (median ms): ct $ct, ct with pre-made netns $ctp, crun $cr;" \
		"crun/ct $(awk -v a="$cr" -v b="$ct" 'BEGIN { printf "%.1f", a / b }')x;" \
		"CPU per node (us, whole machine) ct $ctc, crun $crc;" \
		"teardown (ms) ct $ctk, crun $crd"
done

# Nothing may be left: processes, cgroups, mounts.
left=$(find /sys/fs/cgroup -maxdepth 4 -name "kh-$FAC" 2>/dev/null | wc -l)
[ "$left" = 0 ] || { echo "boot bench: $left cgroups left" >&2; exit 1; }
[ "$(wc -l </proc/self/mountinfo)" = "$mounts_before" ] || { echo "boot bench: mounts left" >&2; exit 1; }
crun list 2>/dev/null | grep -q '^khb' && { echo "boot bench: crun containers left" >&2; exit 1; }
exit 0

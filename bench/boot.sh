#!/bin/bash
# bench/boot.sh: boot N nodes through khd (issues 3 and 16), the way a
# principal does: one khget of N nodes, one broadcast load of a 3 MB
# busybox appliance on the channel, then "run kboot"; timed until every
# node's /init has said it runs: each step, and the whole of it (khget +
# load + boot, issue 16's target), on a facility that has been idle long
# enough to have its free nodes ready; then khctl release, and again.  In the same run, bench/boot/run.sh starts N
# containers with crun from the same kind of root (and N ct nodes straight
# through the backend, without khd).  Medians of REPEATS runs.
# BOOT_INIT=static: the appliance's /init is a tiny static program (no C
# library) that says so and waits (no shell, no exec of sleep), to tell
# the facility's cost from the appliance's.
# Usage (root): bench/boot.sh [N...]   (default: 100 1000)
set -eu
cd "$(dirname "$0")/.."
BIN=${BIN:-build/bin}
REPEATS=${REPEATS:-3}
SIZES=${*:-100 1000}
OUT=${BENCH_OUT:-bench/results}
mkdir -p "$OUT"
W=$(mktemp -d /tmp/kh-bench-kboot-XXXXXX)
D=
stopkhd() {
	[ -n "$D" ] || return 0
	pid=$(head -n1 "$D/khd.lock" 2>/dev/null || true)
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
	rm -rf "$D"
	D=
}
trap 'stopkhd; rm -rf "$W"' EXIT

# The appliance: busybox, 1 MB of other files, an /init that says so.
if [ "${BOOT_INIT:-}" = static ]; then
	# No C library: a static glibc program spends ~0.2 ms starting up
	# (CPUID, which a virtual machine traps, and its own relocation),
	# which is the appliance's cost, not the facility's.
	cat >"$W/init.c" <<'EOC'
static long sys3(long n, long a, long b, long c)
{
	long r;
	__asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
	return r;
}
void _start(void)
{
	static const char m[] = "init-running\n";
	sys3(1, 1, (long)m, sizeof(m) - 1); /* write */
	for (;;)
		sys3(34, 0, 0, 0); /* pause */
}
EOC
	cc -static -nostdlib -O2 -fno-stack-protector -o "$W/init" "$W/init.c"
	echo "appliance /init: a static program without a C library that says so and pauses (BOOT_INIT=static)"
else
	printf '#!/bin/sh\necho init-running\nexec sleep 2147483647\n' >"$W/init"
fi
tests/lib/mkbusybox.sh "$W/app.cpio" "$W/init"
mkdir -p "$W/root/lib"
(cd "$W/root" && gunzip -c "$W/app.cpio" | cpio -id --quiet)
head -c 1048576 /dev/urandom >"$W/root/lib/payload"
(cd "$W/root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) >"$W/app3.cpio"
APP=$W/app3.cpio
SIZE=$(stat -c %s "$APP")
echo "appliance: $SIZE bytes (plain newc cpio)"

ms() { echo $(( ($2 - $1) / 1000000 )); }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# khd's CPU time so far (clock ticks), and how it stays put once khd
# is idle: nodes that do not run are made ready for their next boot in
# khd's idle time (network namespaces, cgroups), as a facility that has
# been up a while has them.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# The machine's busy and total jiffies so far (/proc/stat).
jiffies() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9; exit}' /proc/stat; }
# Under 20% busy between two jiffies readings?
quiet() { awk -v x="$1" -v y="$2" 'BEGIN { split(x, a, " "); split(y, b, " "); exit !((b[1] - a[1]) * 5 < (b[2] - a[2])) }'; }
# Idle: khd's CPU time stands still for 0.6 s, and the machine was quiet
# (under 20% busy) in those 0.6 s: the kernel has also finished tearing
# down what the last release left (a thousand namespaces, cgroups and
# mount trees take it seconds of kworker time).  After a minute (a
# machine shared with others may never be quiet), khd's idleness alone.
idle() {
	local p a b n=0 j0 t=0
	p=$(head -n1 "$D/khd.lock")
	a=$(ticks "$p")
	j0=$(jiffies)
	while [ "$t" -lt 600 ]; do
		sleep 0.2
		t=$((t + 1))
		b=$(ticks "$p")
		if [ "$a" = "$b" ]; then
			n=$((n + 1))
		else
			n=0
			j0=$(jiffies)
		fi
		a=$b
		if [ "$n" -ge 3 ]; then
			[ "$t" -gt 300 ] && return 0
			quiet "$j0" "$(jiffies)" && return 0
			n=0
			j0=$(jiffies)
		fi
	done
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for N in $SIZES; do
	D=$(mktemp -d /tmp/kh-bench-kboot-d-XXXXXX)
	export KH_SOCKET=$D/khd.sock
	"$BIN"/khd -d "$D" --nodes "$N" </dev/null
	KPID=$(head -n1 "$D/khd.lock")
	FAC=$("$BIN"/khctl info | awk '$3 == "facility" {print $4; exit}')
	gets=()
	boots=()
	loads=()
	totals=()
	kcpu=()
	ncpu=()
	for r in $(seq "$REPEATS"); do
		idle
		t0=$(date +%s%N)
		CON=$("$BIN"/khget -c pw bench "$N" | head -n1 | cut -d@ -f1)
		t1=$(date +%s%N)
		{ printf 'mrw $ramfsaddr %d\n' "$SIZE"; cat "$APP"; echo 'echo loaded-$?'; } |
			"$BIN"/khcon -c pw bench --timeout 120 --until loaded-0 --count "$N" "$CON" >/dev/null
		t2=$(date +%s%N)
		k0=$(ticks "$KPID")
		u=/sys/fs/cgroup/cpuacct/kh-$FAC/cpuacct.usage
		u0=$(cat "$u" 2>/dev/null || echo -)
		echo 'run kboot' |
			"$BIN"/khcon -c pw bench --timeout 120 --until init-running --count "$N" "$CON" >/dev/null
		t3=$(date +%s%N)
		k1=$(ticks "$KPID")
		gets+=("$(ms "$t0" "$t1")")
		loads+=("$(ms "$t1" "$t2")")
		boots+=("$(ms "$t2" "$t3")")
		totals+=("$(ms "$t0" "$t3")")
		kcpu+=("$(((k1 - k0) * 1000 / $(getconf CLK_TCK)))")
		# CPU of everything in the nodes (cgroup v1's cpuacct)
		[ "$u0" != - ] && [ -r "$u" ] && ncpu+=("$((($(cat "$u") - u0) / 1000000))")
		"$BIN"/khctl release -c pw bench "$CON" >/dev/null
	done
	gb=$(printf '%s\n' "${gets[@]}" | median)
	lb=$(printf '%s\n' "${loads[@]}" | median)
	bb=$(printf '%s\n' "${boots[@]}" | median)
	tb=$(printf '%s\n' "${totals[@]}" | median)
	printf 'khd: %4d nodes: khget median %5d ms (runs: %s)\n' "$N" "$gb" "${gets[*]}"
	printf 'khd: %4d nodes: broadcast load of %d bytes median %5d ms (runs: %s)\n' "$N" "$SIZE" "$lb" "${loads[*]}"
	printf 'khd: %4d nodes: run kboot until every /init runs median %5d ms (runs: %s)\n' "$N" "$bb" "${boots[*]}"
	printf 'khd: %4d nodes: khget + load + boot median %5d ms (runs: %s)\n' "$N" "$tb" "${totals[*]}"
	printf 'khd: %4d nodes: CPU during the boot: khd %s ms; in the nodes %s ms\n' "$N" "${kcpu[*]}" "${ncpu[*]:-?}"
	echo "{\"n\":$N,\"khget_ms\":$gb,\"load_ms\":$lb,\"boot_ms\":$bb,\"total_ms\":$tb}" >"$OUT/kboot-$N.json"
	stopkhd
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

echo "== peer, same run: bench/boot/run.sh (ct backend alone, and crun)"
REPEATS=$REPEATS bench/boot/run.sh $SIZES

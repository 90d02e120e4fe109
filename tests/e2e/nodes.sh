# nodes-*: container nodes and their boot monitor (issue 3), driven as a
# user does: khget, a load broadcast on the channel, run kboot, commands on
# the console, reset, boot again.
. "$(dirname "$0")/lib.sh"
LIB=$(cd "$(dirname "$0")/../lib" && pwd)

start_khd --nodes 6 --load-timeout 1500
APP=$D/app.cpio.gz
"$LIB/mkbusybox.sh" "$APP"
SIZE=$(stat -c %s "$APP")
out=$(khget -c pw alice 2)
CON=$(head -n1 <<<"$out" | cut -d@ -f1)
FAC=$(khctl info | head -n1 | awk '{print $4}')

# norm: drop the prompts ("=> " of the monitor, "/ # " of the shell) that
# stand at the start of a prefixed line, and carriage returns.
norm() { sed -E 's/\r//g; s/^(\[[0-9]+\] )((=> )|(\/ # )|(\x1b\[6n))+/\1/'; }
# con SECS UNTIL [COUNT] [khcon options]: the channel, prefixed by rank,
# until UNTIL was printed COUNT times (or, without UNTIL, until quiet).
con() {
	local t=$1 u=$2 c=1
	shift 2
	case "${1:-}" in [0-9]*) c=$1; shift ;; esac
	if [ -n "$u" ]; then
		khcon -c pw alice --prefix --timeout "$t" --until "$u" --count "$c" "$@" "$CON" | norm
	else
		khcon -c pw alice --prefix --timeout "$t" --idle 700 "$@" "$CON" | norm
	fi
}
load() { # load FILE: mrw $ramfsaddr SIZE + the bytes, broadcast
	{ printf 'mrw $ramfsaddr %d\n' "$(stat -c %s "$1")"; cat "$1"; echo 'echo load-$?'; } | con 20 "load-" 2
}

# nodes-1: monitor, environment and a broadcast load.
o=$(echo 'printenv loadaddr ramfsaddr bgp_rank bg_num_netids; version' | con 5 "")
check "nodes-1.1 the monitor's environment (loadaddr)" grep -q '^\[0\] loadaddr=0x10000000' <<<"$o"
check "nodes-1.2 ... ramfsaddr" grep -q '^\[1\] ramfsaddr=0x11000000' <<<"$o"
check "nodes-1.3 ... the node's rank" grep -q '^\[1\] bgp_rank=1' <<<"$o"
check "nodes-1.4 version" grep -q 'U-Boot 2008.10 compatible monitor' <<<"$o"
before=$(khctl info | awk '/^store/ {print $3}')
o=$(load "$APP" | tr -d '\r')
same "nodes-1.5 the load reaches both nodes" "$(grep -c "Reading $SIZE bytes" <<<"$o")" "2"
check "nodes-1.6 ... and succeeds" grep -q '\[1\] .*load-0' <<<"$o"
after=$(khctl info | awk '/^store/ {print $3}')
same "nodes-1.7 the broadcast is stored once" "$((${after#bytes=} - ${before#bytes=}))" "$SIZE"
crc=$(gzip -c </dev/null >/dev/null; python3 -c "import zlib,sys; print('%08x' % zlib.crc32(open('$APP','rb').read()))" 2>/dev/null ||
	perl -MString::CRC32 -e '1' 2>/dev/null)
o=$(printf 'crc32 $ramfsaddr %x\n' "$SIZE" | con 5 "")
check "nodes-1.8 crc32 of the loaded bytes matches the file" grep -q "==> $crc" <<<"$o"

# nodes-2: boot; the appliance's /init runs as PID 1 in its own namespaces.
o=$(echo 'run kboot' | con 20 "appliance up on" 2)
check "nodes-2.1 run kboot boots the appliance" grep -q "^\[0\] appliance up on kh$FAC-n0" <<<"$o"
same "nodes-2.2 nodes are running" "$(khctl nodes --user alice | awk '{print $2}' | sort -u)" "running"
o=$(echo 'echo "pid=$$ host=$(hostname)"; ls /; echo END-$((6*7))' | con 10 "END-42" 2)
check "nodes-2.3 /init is PID 1 and the hostname is the node's" grep -q "^\[0\] pid=1 host=kh$FAC-n0" <<<"$o"
same "nodes-2.4 the node sees only its appliance's files" "$(grep '^\[1\] bin' <<<"$o")" "[1] bin   dev   etc   init  proc  sys   tmp"
hostns=$(for n in mnt pid uts ipc net cgroup; do readlink /proc/self/ns/$n; done | tr '\n' ' ')
o=$(echo 'for n in mnt pid uts ipc net cgroup; do readlink /proc/1/ns/$n; done | tr "\n" " "; echo; echo NS-$((1+1))' | con 10 "NS-2" 2)
nodens=$(grep '^\[0\] mnt:' <<<"$o" | sed 's/^\[0\] //')
shared=0
for a in $hostns; do case " $nodens " in *" $a "*) shared=$((shared + 1)) ;; esac; done
check "nodes-2.5 the node has its own namespaces (all six differ from the host's)" \
	test -n "$nodens" -a "$shared" -eq 0 -a "$(wc -w <<<"$nodens")" -eq 6
o=$(echo 'ip link 2>/dev/null | grep -c "^[0-9]"; ps | grep -c .; echo PS-$((1+1))' | con 10 "PS-2" 2)
check "nodes-2.6 no host network device is visible (only lo and eth0, its one domain)" grep -q '^\[0\] 2$' <<<"$o"
if [ -d /sys/fs/cgroup/memory ]; then
	lim=$(cat "/sys/fs/cgroup/memory/kh-$FAC/n0/memory.limit_in_bytes" 2>/dev/null || find /sys/fs/cgroup/memory -path "*kh-$FAC/n0/memory.limit_in_bytes" -exec cat {} \; | head -n1)
	pids=$(find /sys/fs/cgroup/pids -path "*kh-$FAC/n0/pids.max" -exec cat {} \; | head -n1)
	quota=$(find /sys/fs/cgroup/cpu -path "*kh-$FAC/n0/cpu.cfs_quota_us" -exec cat {} \; | head -n1)
	period=$(find /sys/fs/cgroup/cpu -path "*kh-$FAC/n0/cpu.cfs_period_us" -exec cat {} \; | head -n1)
else
	cg=$(find /sys/fs/cgroup -type d -path "*kh-$FAC/n0" | head -n1)
	lim=$(cat "$cg/memory.max")
	pids=$(cat "$cg/pids.max")
	read -r quota period <"$cg/cpu.max"
fi
same "nodes-2.7 memory limit from the node type (256 MiB)" "$lim" "268435456"
same "nodes-2.8 pids limit from the node type" "$pids" "512"
same "nodes-2.9 CPU quota from the node type (1 CPU)" "$((quota * 1000 / period))" "1000"
# What nodes never need is refused (seccomp, tests/tools/syscheck.c): the
# program is put into node 0's files from the host and run on its console.
${CC:-cc} -std=c17 -O2 -static -o "$D/syscheck" "$(dirname "$0")/../tools/syscheck.c"
n0=$(cat /sys/fs/cgroup/pids/kh-"$FAC"/n0/cgroup.procs /sys/fs/cgroup/kh-"$FAC"/n0/cgroup.procs 2>/dev/null | head -n1)
cp "$D/syscheck" "/proc/$n0/root/tmp/syscheck"
o=$(echo '/tmp/syscheck; echo SC-$((1+1))' | khcon -c pw alice --prefix -n 0 --timeout 10 --until SC-2 "$CON" | tr -d '\r' | sed -n 's/^\[0\] //p')
for want in "unshare-user refused EPERM" "clone3 refused ENOSYS" "bpf refused EPERM" \
	"perf_event_open refused EPERM" "keyctl refused EPERM" "init_module refused EPERM" \
	"kexec_load refused EPERM" "clock_settime refused EPERM" "open_by_handle_at refused EPERM" \
	"userfaultfd refused EPERM" "setns refused EPERM" "syslog refused EPERM" \
	"unshare-uts allowed" "getpid allowed"; do
	check "nodes-2.10 in a node: $want" grep -qx "$want" <<<"$o"
done

# nodes-2.11: node root is an unprivileged host uid, a range of its own per
# node (user namespaces, docs/nodes.md).  initpid RANK: the host pid of the
# node's /init (PID 1 in its namespace).
initpid() {
	local p
	for p in $(cat /sys/fs/cgroup/pids/kh-"$FAC"/n"$1"/cgroup.procs /sys/fs/cgroup/kh-"$FAC"/n"$1"/cgroup.procs 2>/dev/null); do
		awk '/^NSpid:/ {exit !($NF == 1)}' "/proc/$p/status" 2>/dev/null && { echo "$p"; return; }
	done
}
i0=$(initpid 0)
i1=$(initpid 1)
u0=$(awk '/^Uid:/ {print $2}' "/proc/$i0/status" 2>/dev/null)
u1=$(awk '/^Uid:/ {print $2}' "/proc/$i1/status" 2>/dev/null)
check "nodes-2.11 from the host, node 0's /init runs as a non-zero uid" test -n "$u0" -a "${u0:-0}" -gt 0
same "nodes-2.12 ... all its uids (ps -o uid, /proc/PID/status Uid)" \
	"$(ps -o uid= -p "$i0" | tr -d ' ') $(awk '/^Uid:/ {print $2, $3, $4, $5}' "/proc/$i0/status")" "$u0 $u0 $u0 $u0 $u0"
same "nodes-2.13 ... the mapped uid is root inside" "$(echo 'echo "m""e=$(id -u):$(id -g)"' | con 5 "me=" -n 0 | sed -n 's/^\[0\] me=//p')" "0:0"
m0=$(cat "/proc/$i0/uid_map" 2>/dev/null | awk '{print $1, $2, $3}')
m1=$(cat "/proc/$i1/uid_map" 2>/dev/null | awk '{print $1, $2, $3}')
same "nodes-2.14 node 0's uids: 65536 from its root's" "$m0" "0 $u0 65536"
check "nodes-2.15 two nodes get different, disjoint uid ranges" \
	test -n "$u1" -a "$m1" = "0 $u1 65536" -a $(( u0 > u1 ? u0 - u1 : u1 - u0 )) -ge 65536
if [ -n "${KH_HOSTS:-}" ]; then
	ok "nodes-2.16 a process exec'd in the node joins its user namespace # SKIP exec reaches the front end's own nodes only (docs/hosts.md)"
else
	same "nodes-2.16 a process exec'd in the node joins its user namespace" \
		"$(khctl exec -c pw alice -n 0 cat /proc/self/uid_map | awk '{print $1, $2, $3}')" "$m0"
fi
# Root in the node has no power over host root's files: a file of host root,
# mode 0600, put into the node's tree from the host, can be neither read
# nor changed nor taken over inside (as host root, node root could: it has
# CAP_DAC_OVERRIDE and CAP_CHOWN).
echo host-secret >"/proc/$i0/root/tmp/hostfile"
chown 0:0 "/proc/$i0/root/tmp/hostfile"
chmod 600 "/proc/$i0/root/tmp/hostfile"
o=$(echo 'cat /tmp/hostfile; echo rd=$?; echo x >>/tmp/hostfile; echo wr=$?; chown 0 /tmp/hostfile; echo ch=$?; chmod 666 /tmp/hostfile; echo mo=$?; echo HF-$((1+1))' | con 10 "HF-2" -n 0)
check "nodes-2.17 root in the node cannot read a host root's file (mode 0600)" grep -q '^\[0\] rd=1' <<<"$o"
check "nodes-2.18 ... nor write, chown or chmod it" \
	bash -c 'grep -q "^\[0\] wr=1" <<<"$1" && grep -q "^\[0\] ch=1" <<<"$1" && grep -q "^\[0\] mo=1" <<<"$1"' _ "$o"
same "nodes-2.19 ... which is unchanged" "$(stat -c '%u %a' "/proc/$i0/root/tmp/hostfile") $(cat "/proc/$i0/root/tmp/hostfile")" "0 600 host-secret"
check "nodes-2.20 ... and does not show up in the node as root's" \
	bash -c '! grep -q "host-secret" <<<"$1"' _ "$o"
echo 'echo mine >/tmp/nodefile; echo NF-$((1+1))' | con 10 "NF-2" -n 0 >/dev/null
same "nodes-2.21 a file node root makes is the node's uid on the host" "$(stat -c %u "/proc/$i0/root/tmp/nodefile" 2>/dev/null)" "$u0"
same "nodes-2.22 the image's files look root's in the node" "$(echo 'stat -c "o""wn=%u:%g" /bin/busybox /' | con 5 "own=" 2 -n 0 | sed -n 's/^\[0\] own=//p' | sort -u)" "0:0"

# nodes-3: memory limit: the node's cgroup stops it, not the host.
o=$(echo 'dd if=/dev/zero of=/dev/null bs=400M count=1; echo "oom-rc=$?"' | con 30 "oom-rc=1" -n 0)
check "nodes-3.1 a node past its memory limit is stopped by its cgroup" grep -qE '^\[0\] oom-rc=137' <<<"$o"
same "nodes-3.2 ... and the node (its shell) lives on" "$(echo 'echo ali""ve' | con 5 "alive" -n 0 | grep -c '^\[0\] alive')" "1"

# nodes-4: the end of everything in a node returns it to the monitor.
o=$(echo 'exit 3' | con 10 "back in the monitor" -n 1)
check "nodes-4.1 when /init exits the node says so" grep -q '^\[1\] ## node 1: everything in the node exited (status 3); back in the monitor' <<<"$o"
o=$(echo 'printenv bgp_rank' | con 5 "" -n 1)
check "nodes-4.2 ... and its monitor answers again" grep -q '^\[1\] bgp_rank=1' <<<"$o"
same "nodes-4.3 ... and khctl shows it" "$(khctl nodes | awk '$1==1 {print $2}')" "monitor"

# nodes-5: reset kills everything, wipes memory; boot again works.
echo 'echo secret-of-alice >/tmp/mark; echo MAR""KED' | con 5 "MARKED" -n 0 >/dev/null
check "nodes-5.1 khctl reset" khctl reset -c pw alice "$CON"
sleep 0.5
same "nodes-5.2 reset nodes are back in the monitor" "$(khctl nodes --user alice | awk '{print $2}' | sort -u)" "monitor"
check "nodes-5.3 no process of the node is left" bash -c "! grep -qs . /sys/fs/cgroup/pids/kh-$FAC/n0/cgroup.procs"
o=$(echo 'md.l $ramfsaddr 4' | con 5 "")
check "nodes-5.4 memory is wiped" grep -q '^\[0\] 11000000: 00000000 00000000 00000000 00000000' <<<"$o"
load "$APP" >/dev/null
o=$(echo 'run kboot' | con 20 "appliance up on" 2)
o=$(echo 'cat /tmp/mark 2>&1; echo CHEC""KED' | con 10 "CHECKED" 2)
check "nodes-5.5 boot again: a fresh root, nothing of the last boot" grep -q '^\[0\] cat: can.t open ./tmp/mark.' <<<"$o"

# nodes-6: release: the next owner finds nothing of alice's.
khctl release -c pw alice "$CON"
sleep 0.3
same "nodes-6.1 released nodes hold no process" "$(cat /sys/fs/cgroup/pids/kh-$FAC/n0/cgroup.procs 2>/dev/null | wc -l)" "0"
out=$(khget -c pw2 bob 2)
CON=$(head -n1 <<<"$out" | cut -d@ -f1)
same "nodes-6.2 bob gets the same nodes" "$(tail -n1 <<<"$out")" "nodes: 0 1"
o=$(echo 'md.l $ramfsaddr 4' | khcon -c pw2 bob --prefix --idle 700 "$CON" | norm)
check "nodes-6.3 ... with wiped memory" grep -q '^\[0\] 11000000: 00000000 00000000 00000000 00000000' <<<"$o"

# nodes-7: errors are the monitor's, one line, and khd carries on.
bobcon() { khcon -c pw2 bob --prefix --idle 700 "$CON" | norm; }
o=$(echo 'mrw 0x1ffffff0 100' | bobcon)
check "nodes-7.1 mrw beyond the node's memory" grep -qi '^\[0\] .*mrw.*\(beyond\|outside\|range\|memory\)' <<<"$o"
o=$(echo 'mrw $ramfsaddr 300000000' | bobcon)
check "nodes-7.2 an image larger than the node's memory" grep -qi '^\[0\] .*mrw' <<<"$o"
o=$( (printf 'mrw $ramfsaddr 1000\n'; head -c 10 /dev/zero; sleep 2.5) | bobcon)
check "nodes-7.3 fewer bytes than announced: timed out, said so" grep -q '^\[0\] mrw: timed out after 10 of 1000 bytes' <<<"$o"
head -c 3000 /dev/urandom >"$D/junk"
{ printf 'mrw $ramfsaddr 3000\n'; cat "$D/junk"; echo 'run kboot'; } | bobcon >"$D/o" 2>&1
o=$(cat "$D/o")
check "nodes-7.4 a corrupt image is refused by bootm" grep -q '^\[0\] ## Boot failed: unrecognised data' "$D/o"
head -c 500000 "$APP" >"$D/trunc"
{ printf 'mrw $ramfsaddr %d\n' 500000; cat "$D/trunc"; echo 'run kboot'; } | bobcon >"$D/o" 2>&1
check "nodes-7.5 a truncated image is refused" grep -qi '^\[0\] .*\(truncated\|corrupt\|gzip\|unexpected\)' "$D/o"
same "nodes-7.5b ... the nodes stay in the monitor" "$(khctl nodes --user bob | awk '{print $2}' | sort -u)" "monitor"
head -c 4096 /dev/urandom >"$D/vmlinux"
mkimage -A x86_64 -O linux -T kernel -C none -a 0 -e 0 -n kernel -d "$D/vmlinux" "$D/uImage" >/dev/null
{ printf 'mrw $loadaddr %d\n' "$(stat -c %s "$D/uImage")"; cat "$D/uImage";
  printf 'mrw $ramfsaddr %d\n' "$SIZE"; cat "$APP"; echo 'run kboot'; } | bobcon >"$D/o" 2>&1
check "nodes-7.6 a kernel image on a ct node is refused" grep -q '^\[0\] .*ct nodes run the host kernel' "$D/o"
o=$(echo 'frobnicate' | bobcon)
check "nodes-7.7 an unknown command" grep -q "^\[0\] Unknown command 'frobnicate'" <<<"$o"
o=$(echo 'echo "unbalanced' | bobcon)
check "nodes-7.8 unbalanced quotes" grep -qi '^\[0\] .*quote' <<<"$o"
o=$(printf 'echo %05000d\n' 0 | bobcon)
check "nodes-7.9 an over-long line" grep -qi '^\[0\] .*too long' <<<"$o"
check "nodes-7.10 khd still serves" khctl nodes >/dev/null
# A uImage-wrapped ramdisk, as mkimage makes, boots too.
mkimage -A x86_64 -O linux -T ramdisk -C gzip -n app -d "$APP" "$D/app.uimg" >/dev/null
khctl reset -c pw2 bob "$CON"
{ printf 'mrw $ramfsaddr %d\n' "$(stat -c %s "$D/app.uimg")"; cat "$D/app.uimg"; echo 'imi $ramfsaddr'; echo 'run kboot'; } |
	khcon -c pw2 bob --prefix --timeout 20 --until "appliance up on" --count 2 "$CON" | norm >"$D/o" 2>&1
check "nodes-7.11 imi checks a legacy image" grep -q '^\[0\]    Verifying Checksum ... OK' "$D/o"
check "nodes-7.12 a uImage-wrapped gzip'd cpio boots" grep -q "appliance up on kh$FAC-n0" "$D/o"

# nodes-8: kill -9 of khd under running nodes: they run on, and the next
# khd adopts them, consoles included (tests/e2e/adopt.sh has the rest); a
# reset puts them back in the monitor, which boots them again.
same "nodes-8.1 bob's nodes run" "$(khctl nodes --user bob | awk '{print $2}' | sort -u)" "running"
before=$(cat /sys/fs/cgroup/pids/kh-$FAC/n*/cgroup.procs 2>/dev/null | sort -n | tr '\n' ' ')
kill9_khd
restart_khd
same "nodes-8.2 after kill -9 and a restart they still run" "$(khctl nodes --user bob | awk '{print $2}' | sort -u)" "running"
same "nodes-8.3 ... the same processes" "$(cat /sys/fs/cgroup/pids/kh-$FAC/n*/cgroup.procs 2>/dev/null | sort -n | tr '\n' ' ')" "$before"
o=$(echo 'echo ALIVE-$((40+2))' | khcon -c pw2 bob --prefix --timeout 10 --until ALIVE-42 --count 2 "$CON" | norm)
check "nodes-8.4 ... and their consoles answer on the channel" grep -q '^\[1\] ALIVE-42' <<<"$o"
khctl reset -c pw2 bob "$CON"
o=$(echo 'printenv bgp_rank' | bobcon)
check "nodes-8.5 a reset puts them in the monitor" grep -q '^\[1\] bgp_rank=1' <<<"$o"
{ printf 'mrw $ramfsaddr %d\n' "$SIZE"; cat "$APP"; echo 'run kboot'; } |
	khcon -c pw2 bob --prefix --timeout 20 --until "appliance up on" --count 2 "$CON" >/dev/null
same "nodes-8.5b ... and they boot again" "$(khctl nodes --user bob | awk '{print $2}' | sort -u)" "running"
stop_khd
same "nodes-8.6 khd stopping leaves no node process" "$(cat /sys/fs/cgroup/pids/kh-$FAC/n*/cgroup.procs 2>/dev/null | wc -l)" "0"
check "nodes-8.7 ... and no mount" bash -c "! grep -q '$D' /proc/mounts"
done_testing

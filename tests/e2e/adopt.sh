# adopt-*: nodes outlive khd (issue 18 item 2), as an operator and a user
# rely on it: two booted nodes, a file in one's tmpfs, a process printing a
# counter on the other's console, a ping across their domain, CPU burning;
# then kill -9 of khd and a restart.  The same processes run on (same host
# pids), with their files and network; the console is reattached (new
# output reaches khcon, typing reaches the node); the bill goes on with
# nothing lost and nothing counted twice (CPU charged against the cgroups'
# own counters; node-time without a gap).  Then a stop for an upgrade
# (khd --keep-nodes), a release of adopted nodes, and khd --stop-nodes.
. "$(dirname "$0")/lib.sh"
LIB=$(cd "$(dirname "$0")/../lib" && pwd)

PORT=$((20000 + RANDOM % 20000))
start_khd --nodes 4 --metrics-port "$PORT"
FAC=$(khctl info | head -n1 | awk '{print $4}')
APP=$D/app.cpio.gz
"$LIB/mkbusybox.sh" "$APP"
out=$(khget -c pw alice 2)
CON=$(head -n1 <<<"$out" | cut -d@ -f1)
read -r RA RB <<<"$(awk '/^nodes:/ {print $2, $3}' <<<"$out")"
IPB=$(awk -v r="$RB" '$1 == "nodeinfo:" && $2 == r {print $4}' <<<"$out")
NET=$(awk '/^network / {print $2; exit}' <<<"$out")
{ printf 'mrw $ramfsaddr %d\n' "$(stat -c %s "$APP")"; cat "$APP"; echo 'run kboot'; } |
	khcon -c pw alice --timeout 20 --until "appliance up on" --count 2 "$CON" >/dev/null
states() { khctl nodes --user alice | awk '{print $2}' | sort -u | tr '\n' ' '; }
same "adopt-1.1 both nodes run" "$(states)" "running "

# procs RANK: the host pids of the node's init and of its counter, if any.
procs() {
	local f p
	f=$(find /sys/fs/cgroup -path "*kh-$FAC/n$1/cgroup.procs" 2>/dev/null | head -n1)
	for p in $(cat "$f" 2>/dev/null); do
		if grep -q 'NSpid:.*[[:space:]]1$' "/proc/$p/status" 2>/dev/null ||
			grep -qa 'adopt-tick' "/proc/$p/cmdline" 2>/dev/null; then echo "$p"; fi
	done | sort -n | tr '\n' ' '
}
cgcpu() { # cgcpu RANK: the node cgroup's CPU counter in us
	local f
	f=$(find /sys/fs/cgroup -path "*kh-$FAC/n$1/cpuacct.usage" 2>/dev/null | head -n1)
	if [ -n "$f" ]; then echo $(($(cat "$f") / 1000)); return; fi
	f=$(find /sys/fs/cgroup -path "*kh-$FAC/n$1/cpu.stat" 2>/dev/null | head -n1)
	[ -n "$f" ] && awk '/^usage_usec/ {print $2}' "$f"
}
billed() { # billed RES: alice's total of RES
	khbill usage -c pw alice --json | jq -r --arg r "$1" '[.usage[] | select(.resource == $r) | .base] | add // 0'
}
within() { awk -v a="$1" -v b="$2" -v p="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(b > 0 && d <= b * p / 100) }'; }
metric() { curl -s "http://127.0.0.1:$PORT/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
# ticks: the counter lines node RB prints in the next 3 s
ticks() { khcon -c pw alice --prefix -n "$RB" --timeout 10 --until adopt-tick- --count 3 "$CON" 2>/dev/null | tr -d '\r' | sed -n "s/^\[$RB\] adopt-tick-//p"; }

o=$(node_run pw alice "$CON" "$RA" 'echo kept-in-tmpfs >/tmp/keep; cat /tmp/keep')
check "adopt-1.2 a file in node $RA's tmpfs" grep -q '^kept-in-tmpfs' <<<"$o"
o=$(node_run pw alice "$CON" "$RA" "ping -c 1 -W 2 $IPB >/dev/null && echo PING-OK")
check "adopt-1.3 node $RA pings node $RB across their domain" grep -q '^PING-OK' <<<"$o"
node_bg pw alice "$CON" "$RB" "sh -c 'i=0; while :; do i=\$((i+1)); echo adopt-tick-\$i; sleep 0.5; done'"
t1=$(ticks | tail -n1)
check "adopt-1.4 node $RB prints its counter on the console (at $t1)" test "${t1:-0}" -gt 0
# About 4 s of CPU, across the kill.
node_bg pw alice "$CON" "$RA" "sh -c 'i=0; while [ \$i -lt 2500000 ]; do i=\$((i+1)); done; echo BURN-DONE'"
PA=$(procs "$RA")
PB=$(procs "$RB")
check "adopt-1.5 the host sees the nodes' processes ($PA/ $PB)" test -n "$PA" -a "$(wc -w <<<"$PB")" -eq 2
sleep 1

# adopt-2: kill -9 of khd; the nodes live on without it.
kill9_khd
sleep 2
same "adopt-2.1 without khd node $RA's processes run on" "$(procs "$RA")" "$PA"
same "adopt-2.2 ... and node $RB's, counter included" "$(procs "$RB")" "$PB"
holder() { grep -q " $D/run/conhold.sock\$" /proc/net/unix; }
check "adopt-2.3 the console holder runs" holder
restart_khd --metrics-port "$PORT"
same "adopt-2.4 after the restart both nodes run, still alice's" "$(states)" "running "
same "adopt-2.5 ... with the same processes (node $RA)" "$(procs "$RA")" "$PA"
same "adopt-2.6 ... and node $RB" "$(procs "$RB")" "$PB"
check "adopt-2.7 khd.log says it adopted them" bash -c "[ \$(grep -c 'adopted from an earlier khd' '$D/khd.log') -eq 2 ]"
t2=$(ticks | tail -n1)
check "adopt-2.8 khcon after the restart shows the counter's new output ($t1 -> $t2)" test "${t2:-0}" -gt "$((t1 + 4))"
o=$(node_run pw alice "$CON" "$RA" 'cat /tmp/keep')
check "adopt-2.9 typing reaches node $RA, and its tmpfs file is there" grep -q '^kept-in-tmpfs' <<<"$o"
o=$(node_run pw alice "$CON" "$RA" "ping -c 1 -W 2 $IPB >/dev/null && echo PING-OK")
check "adopt-2.10 the domain still carries a ping" grep -q '^PING-OK' <<<"$o"
lost=$(metric kh_console_lost_bytes_total)
check "adopt-2.11 the console output lost while no khd ran is counted (kh_console_lost_bytes_total $lost)" test "${lost:-0}" -gt 0
check "adopt-2.12 ... and logged" grep -qE "node $RB: adopted .* [1-9][0-9]* bytes of console output were lost" "$D/khd.log"

# A console holder killed while khd runs is replaced, and holds every
# running node's console again (adopt-4 adopts them with it).
hpid() { ss -xlpn 2>/dev/null | grep -F " $D/run/conhold.sock " | sed -nE 's/.*pid=([0-9]+).*/\1/p' | head -n1; }
h1=$(hpid)
kill -9 "$h1"
for _ in $(seq 200); do h2=$(hpid); [ -n "$h2" ] && [ "$h2" != "$h1" ] && break; sleep 0.1; done
# (what khd said of it, should it fail: it has failed now and then under load)
o=$(grep -i "holder" "$D/khd.log" | tail -n 3)
check "adopt-2.14 a killed console holder ($h1) is replaced ($h2)" test -n "$h2" -a "$h2" != "$h1"
for _ in $(seq 50); do grep -q "a new one holds the consoles" "$D/khd.log" && break; sleep 0.1; done
check "adopt-2.15 ... which holds both nodes' consoles again" grep -q "a new one holds the consoles of 2 running nodes" "$D/khd.log"

# adopt-3: metering across the kill: the CPU charged equals the cgroups'
# counters (nothing lost, nothing twice), node-time has no gap.
for _ in $(seq 60); do
	o=$(khcon -c pw alice --prefix -n "$RA" --timeout 1 --until BURN-DONE "$CON" 2>/dev/null)
	grep -q BURN-DONE <<<"$o" && break
	[ "$(cgcpu "$RA")" -gt 3000000 ] && [ "$(cgcpu "$RA")" = "${prev:-}" ] && break
	prev=$(cgcpu "$RA")
done
sleep 1.5
cg=$(($(cgcpu "$RA") + $(cgcpu "$RB")))
b=$(billed cpu)
check "adopt-3.1 alice is billed the cgroups' CPU within 3% ($b us, cgroups $cg us)" within "$b" "$cg" 3
check "adopt-3.2 ... which includes the burn (>= 2 s)" test "$b" -ge 2000000
khbill export -c pw alice -o "$D/alice.exp"
check "adopt-3.3 alice's export verifies across the restart" bash -c "khbill verify '$D/alice.exp' | grep -q '^ok: alice'"
gaps=$(awk '$1 == "r" { if (seen && $4 != t1) g++; t1 = $5; seen = 1 } END { print g + 0 }' "$D/alice.exp")
same "adopt-3.4 node-time is continuous across the kill" "$gaps" "0"
b1=$(billed cpu)
sleep 2.5
b2=$(billed cpu)
cg2=$(($(cgcpu "$RA") + $(cgcpu "$RB")))
check "adopt-3.5 the bill goes on increasing ($b1 -> $b2 us) and stays with the cgroups ($cg2 us)" \
	bash -c "[ $b2 -gt $b1 ] && [ $b2 -le $((cg2 + cg2 / 100)) ]"

# eth0 of both nodes, as the kernel counts in their namespaces: sent bytes
# against what alice is billed for her domain.
txof() { nsenter -t "$1" -n cat /proc/net/dev | sed 's/:/ /' | awk '$1 == "eth0" {print $10}'; }
sleep 1.2
tx=$(($(txof "${PA%% *}") + $(txof "${PB%% *}")))
bt=$(billed "net-tx:$NET")
check "adopt-3.6 the domain's traffic is billed once across the kill ($bt B, the interfaces sent $tx B)" within "$bt" "$tx" 1

# A node allocated after the restart joins the adopted nodes' domain.
out2=$(khget -c pw alice -n "$NET" 1)
CON2=$(head -n1 <<<"$out2" | cut -d@ -f1)
RC=$(awk '/^nodes:/ {print $2}' <<<"$out2")
{ printf 'mrw $ramfsaddr %d\n' "$(stat -c %s "$APP")"; cat "$APP"; echo 'run kboot'; } |
	khcon -c pw alice --timeout 20 --until "appliance up on" "$CON2" >/dev/null
o=$(node_run pw alice "$CON2" "$RC" "ping -c 1 -W 2 $IPB >/dev/null && echo PING-OK")
check "adopt-2.13 a node booted after the restart (node $RC, domain $NET) pings adopted node $RB" grep -q '^PING-OK' <<<"$o"
khctl release -c pw alice "$CON2"

# adopt-4: a stop for an upgrade leaves the nodes running; the next khd
# takes them over again.
khd -d "$D" --keep-nodes
check "adopt-4.1 khd --keep-nodes stops khd" flock -n "$D/khd.lock" true
same "adopt-4.2 ... and leaves node $RB's processes running" "$(procs "$RB")" "$PB"
check "adopt-4.3 ... and the fabric pinned" test "$(stat -f -c %T "$D/run/fabric.net" 2>/dev/null)" = nsfs
echo 'on_stop keep' >"$D/khd.conf"
restart_khd --metrics-port "$PORT"
same "adopt-4.4 the next khd adopts them" "$(states)" "running "
t3=$(ticks | tail -n1)
check "adopt-4.5 ... with the console ($t2 -> $t3)" test "${t3:-0}" -gt "$t2"
# khd.conf "on_stop keep": SIGTERM leaves them running too.
kill -TERM "$(khd_pid "$D")"
for _ in $(seq 100); do flock -n "$D/khd.lock" true && break; sleep 0.05; done
same "adopt-4.6 with on_stop keep, SIGTERM stops khd and leaves node $RB's processes running" "$(procs "$RB")" "$PB"
rm -f "$D/khd.conf"
restart_khd --metrics-port "$PORT"
same "adopt-4.7 ... for the next khd" "$(states)" "running "
khctl release -c pw alice "$CON"
check "adopt-4.8 a release of adopted nodes ends their processes" bash -c "[ -z \"$(procs "$RA")$(procs "$RB")\" ]"
same "adopt-4.9 ... and frees them" "$(khctl nodes --user alice)" ""
o=$(khd -d "$D" --stop-nodes --keep-nodes 2>&1)
same "adopt-4.10 --stop-nodes with --keep-nodes is refused: $o" "$? $(wc -l <<<"$o")" "2 1"

# adopt-5: khd --stop-nodes stops khd and its nodes, and one with no khd
# running stops what a dead khd left.
out=$(khget -c pw alice 1)
CON=$(head -n1 <<<"$out" | cut -d@ -f1)
{ printf 'mrw $ramfsaddr %d\n' "$(stat -c %s "$APP")"; cat "$APP"; echo 'run kboot'; } |
	khcon -c pw alice --timeout 20 --until "appliance up on" "$CON" >/dev/null
R=$(awk '/^nodes:/ {print $2}' <<<"$out")
P=$(procs "$R")
kill9_khd
check "adopt-5.1 a node left running by a killed khd" test -n "$P" -a "$(procs "$R")" = "$P"
khd -d "$D" --stop-nodes
same "adopt-5.2 khd --stop-nodes with no khd running stops it" "$(procs "$R")" ""
check "adopt-5.3 ... and the console holder" bash -c "! grep -q ' $D/run/conhold.sock\$' /proc/net/unix"
restart_khd
boot1() {
	{ printf 'mrw $ramfsaddr %d\n' "$(stat -c %s "$APP")"; cat "$APP"; echo 'run kboot'; } |
		khcon -c pw alice --timeout 20 --until "appliance up on" "$CON" >/dev/null
}
# An adopted node that ends is seen to end (its pidfd), with its status
# (the kernel's taskstats: it is not khd's child).
boot1
kill9_khd
restart_khd
P=$(procs "$R")
khcon -c pw alice --timeout 10 --until "everything in the node exited" "$CON" >"$D/end.out" 2>&1 &
sleep 0.5
kill -9 "${P%% *}"
wait $!
endmsg=$(tr -d '\r' <"$D/end.out" | grep -a '##' | tail -n1)
check "adopt-5.4 an adopted node whose init is killed ends: its console says so, and by which signal ($endmsg)" grep -q "everything in the node exited (killed by signal 9)" "$D/end.out"
boot1
kill9_khd
restart_khd
# khd's taskstats listener: a generic netlink socket (protocol 16) bound to its pid
genl() { awk -v p="$(khd_pid "$D")" 'NR > 1 && $2 == 16 && $3 == p' /proc/net/netlink; }
check "adopt-5.4b while an adopted node runs, khd listens for exits" test -n "$(genl)"
o=$(echo 'exit 3' | khcon -c pw alice --timeout 10 --until "back in the monitor" "$CON" 2>&1)
check "adopt-5.4c an adopted node whose /init exits says with which status" grep -q "everything in the node exited (status 3)" <<<"$o"
check "adopt-5.4d ... and khd stops listening with its last adopted node" test -z "$(genl)"
same "adopt-5.5 ... and it is back in the monitor" "$(states)" "monitor "
# A node that ended while no khd ran is back in the monitor.
boot1
P=$(procs "$R")
kill9_khd
kill -9 "${P%% *}"
sleep 0.5
restart_khd
same "adopt-5.10 a node whose init died while no khd ran is in the monitor after the restart" "$(states)" "monitor "
check "adopt-5.11 ... with nothing of it left" test -z "$(procs "$R")"
boot1
P=$(procs "$R")
khd -d "$D" --stop-nodes
same "adopt-5.6 khd --stop-nodes stops a running khd with its node ($P)" "$(procs "$R")" ""
check "adopt-5.7 ... and khd" flock -n "$D/khd.lock" true
check "adopt-5.8 ... and lets go of the fabric" test ! -e "$D/run/fabric.net"
check "adopt-5.9 ... and the console holder exits" bash -c "! grep -q ' $D/run/conhold.sock\$' /proc/net/unix"

# adopt-6: a vm node likewise: QEMU runs on, the serial console reattaches.
TOP=$(cd "$(dirname "$0")/../.." && pwd)
KERNEL=${KH_VM_KERNEL:-$(ls -1 /boot/vmlinuz-*-cloud-amd64 2>/dev/null | sort -V | tail -n1)}
if ! command -v qemu-system-x86_64 >/dev/null || [ -z "$KERNEL" ]; then
	ok "adopt-6 vm nodes # SKIP no qemu-system-x86_64 or no /boot/vmlinuz-*-cloud-amd64"
	done_testing
	exit
fi
KVER=${KERNEL##*/vmlinuz-}
D=$(mktemp -d /tmp/kh-e2e-XXXXXX)
T_DIRS+=("$D")
export KH_SOCKET=$D/khd.sock KH_CRED=pw KH_USER=alice
printf 'type vm1 backend=vm cpus=1 mem=256M count=1\n' >"$D/khd.conf"
restart_khd
khappliance -q --kmod "$KVER" -r "$TOP/appliances/shell" -o "$D/shell.cpio.gz" || exit 1
mkimage -q -A x86_64 -O linux -T kernel -C none -a 0 -e 0 -n "$KVER" -d "$KERNEL" "$D/uImage" >/dev/null
nodes=$(khget -c pw alice 1)
CON=$(head -n1 <<<"$nodes" | cut -d@ -f1)
khdo loadkernel "$D/uImage" <<<"$nodes" >/dev/null 2>&1
khdo loadramdisk "$D/shell.cpio.gz" <<<"$nodes" >/dev/null 2>&1
vmcon() { khcon -c pw alice --timeout "$1" --until "$2" "$CON" | tr -d '\r'; }
o=$(echo 'run kboot' | vmcon 120 'appliance up')
check "adopt-6.1 a vm node boots" grep -q 'appliance up' <<<"$o"
o=$(echo 'echo vm-kept >/tmp/keep; echo W$((40+2))' | vmcon 20 W42)
Q=$(pgrep -f "qemu-system-x86_64 -name kh$(khctl info | head -n1 | awk '{print $4}')-n0( |\$)")
kill9_khd
sleep 1
restart_khd
same "adopt-6.2 after kill -9 and a restart the vm node runs" "$(khctl nodes --user alice | awk '{print $2}')" "running"
same "adopt-6.3 ... the same QEMU ($Q)" "$(pgrep -f "qemu-system-x86_64 -name kh$(khctl info | head -n1 | awk '{print $4}')-n0( |\$)")" "$Q"
o=$(echo 'cat /tmp/keep; echo R$((40+2))' | vmcon 20 R42)
check "adopt-6.4 ... its serial console answers, and the guest's file is there" grep -q '^vm-kept' <<<"$o"
khd -d "$D" --stop-nodes
check "adopt-6.5 khd --stop-nodes ends its QEMU" bash -c "! kill -0 $Q 2>/dev/null || grep -q '^Z' <(ps -o stat= -p $Q)"
done_testing

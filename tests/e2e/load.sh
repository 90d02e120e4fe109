# load-*: khd under load and faults (issue 18, item 4), each with another
# principal's requests measured meanwhile (tests/tools/khload.py probe: a
# new connection, ping and nodes, every 50 ms).  "Answers" here means every
# probe answered, none slower than PROBE_MAX_MS: a bound far above the
# normal latency (well under 1 ms, load-1) that only a stall reaches.
# The figures (p50, p99) are bench/soak.sh's; this asserts behaviour.
# LOAD_SECS sets the churn's length (20 s here; make soak runs 600).
. "$(dirname "$0")/lib.sh"
LIB=$(cd "$(dirname "$0")/../lib" && pwd)
TOOLS=$(cd "$(dirname "$0")/../tools" && pwd)
KHLOAD=$TOOLS/khload.py
LOAD_SECS=${LOAD_SECS:-20}
PROBE_MAX_MS=${PROBE_MAX_MS:-2000}

free_port() {
	local p
	for _ in $(seq 50); do
		p=$((20000 + RANDOM % 20000))
		ss -Hltn "sport = :$p" | grep -q . || { echo "$p"; return; }
	done
}
# khd's descriptors other than network namespaces, and those: the fabric
# keeps a namespace per free node, spares for the external domain and
# namespaces handed back for reuse (each pool at most one per node), so
# their number moves with timing but stays below 3 per node.
fds() { find "/proc/$(khd_pid "$D")/fd" -mindepth 1 -printf '%l\n' | grep -vc '^net:\['; }
nsfds() { find "/proc/$(khd_pid "$D")/fd" -mindepth 1 -printf '%l\n' | grep -c '^net:\['; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$(khd_pid "$D")/status"; }
# probe_bg SECS OUT: another principal's requests in the background.
probe_bg() { python3 "$KHLOAD" probe --secs "$1" >"$2" 2>&1 & }
# probe_ok DESC OUT: every probe answered, none stalled.
probe_ok() {
	local errs max
	errs=$(grep -o 'errors=[0-9]*' "$2" | cut -d= -f2)
	max=$(grep -o 'max_ms=[0-9.]*' "$2" | cut -d= -f2)
	if [ "${errs:-x}" = 0 ] && awk -v m="${max:-1e9}" -v b="$PROBE_MAX_MS" 'BEGIN {exit !(m < b)}'; then
		ok "$1 ($(cut -d' ' -f2- "$2"))"
	else
		nok "$1" "$(cat "$2")"
	fi
}

P=$(free_port)
start_khd --nodes 64 --ssh-port "$P" --ssh-listen 127.0.0.1
export KH_USER=alice KH_CRED=pw

# load-1: the normal latency, idle.
python3 "$KHLOAD" probe --secs 2 >"$D/p1"
probe_ok "load-1.1 idle: another principal's requests answered" "$D/p1"

# load-2: 200 principals allocating 1..3 nodes of 64 and releasing them at
# once; every answer is all or nothing, and khd's descriptors and memory
# come back.  The 200 are new: their first requests wait for Argon2id
# hashes (one worker thread, ~0.1-0.2 s each), while others are answered.
python3 "$KHLOAD" churn --clients 20 --secs 2 --prefix warm >/dev/null 2>&1 # warm the allocator's caches
fd0=$(fds)
rss0=$(rss_kb)
probe_bg "$LOAD_SECS" "$D/p2"
o=$(python3 "$KHLOAD" churn --clients 200 --secs "$LOAD_SECS" --max 3 2>&1)
rc=$?
wait
same "load-2.1 200 clients churning: no allocation half-made, no error ($o)" "$rc" "0"
n=$(grep -o 'allocations=[0-9]*' <<<"$o" | cut -d= -f2)
check "load-2.2 ... and allocations were made (${n:-0})" test "${n:-0}" -gt 200
# Allocations make network namespaces, veths and macvlans: ~20 ms of
# kernel work a get and release on khd's loop, so 200 clients queue and
# others wait (bench/RESULTS.md, "Soak"); here: answered, none over 5 s.
PROBE_MAX_MS=5000 probe_ok "load-2.3 ... while another principal was answered" "$D/p2"
same "load-2.4 ... every node free again" "$(khctl nodes | grep -c " free ")" "64"
# (the fabric's pools of spare namespaces may hold a few more or fewer
# than before; a leak would grow with the hundreds of allocations)
# Under a heavy load khd may still be closing the last clients' sockets:
# a leak stays, a backlog drains (up to 10 s).
for _ in $(seq 100); do
	fd1=$(fds)
	[ "$fd1" -le $((fd0 + 8)) ] && break
	sleep 0.1
done
check "load-2.5 ... khd's descriptors as before ($fd0 -> $fd1, network namespaces aside)" test "$fd1" -le $((fd0 + 8))
ns1=$(nsfds)
check "load-2.5b ... and its network namespaces within the fabric's pools ($ns1 for 64 nodes)" test "$ns1" -le $((3 * 64))
rss1=$(rss_kb)
case "$BIN" in
*san*)
	# AddressSanitizer keeps freed memory in quarantine (Argon2id's 64 MiB
	# included), so RSS says nothing here; LeakSanitizer checks at exit.
	ok "load-2.6 ... khd's memory flat # SKIP under AddressSanitizer (RSS $rss0 -> $rss1 kB); its leak check runs when khd stops"
	;;
*) check "load-2.6 ... khd's memory flat (RSS $rss0 -> $rss1 kB, < +16 MB)" test $((rss1 - rss0)) -lt 16384 ;;
esac

# load-3: 1000 read-only attachments to one channel: a line echoed by the
# monitors reaches every one of them.
blk=$(khget -c pw alice 4)
con=$(head -n1 <<<"$blk" | cut -d@ -f1)
o=$(python3 "$KHLOAD" readers --conns 1000 --chan "$con" --secs 30 2>&1)
check "load-3.1 1000 readers on one channel all get the nodes' output ($o)" grep -q 'got_marker=1000' <<<"$o"
sleep 0.5
check "load-3.2 ... and khd lets them go ($(fds) descriptors)" test "$(fds)" -lt $((fd0 + 20))

# load-4: slowloris on khd.sock: 300 connections sending a request a byte
# every 2 s.  Each is told and closed once its line is 10 s old; nobody
# else waits.
probe_bg 14 "$D/p4"
o=$(python3 "$KHLOAD" slow --conns 300 --secs 16)
wait
check "load-4.1 300 slow clients are each told and closed ($o)" grep -q 'closed_by_khd=300 told_why=300' <<<"$o"
first=$(grep -o 'first_close_s=[0-9.]*' <<<"$o" | cut -d= -f2)
check "load-4.2 ... not before their 10 s ($first s)" awk -v f="${first:-0}" 'BEGIN {exit !(f >= 9.5)}'
probe_ok "load-4.3 ... while another principal was answered" "$D/p4"

# load-5: more silent connections than khd takes: the oldest idle ones make
# room, so newcomers (the probe) are still served.
L=$(mktemp -d /tmp/kh-e2e-XXXXXX)
T_DIRS+=("$L")
prlimit --nofile=1024:1024 khd -d "$L" --nodes 2 --no-fabric
KH_SOCKET=$L/khd.sock python3 "$KHLOAD" slow --silent --conns 900 --secs 6 >"$L/slow" &
sleep 2
KH_SOCKET=$L/khd.sock python3 "$KHLOAD" probe --secs 2 >"$L/p5"
wait
o=$(cat "$L/slow")
r=$(grep -o 'told_why=[0-9]*' <<<"$o" | cut -d= -f2)
check "load-5.1 900 silent clients on a khd that takes 512: idle ones reclaimed ($o)" test "${r:-0}" -ge 388
probe_ok "load-5.2 ... and newcomers served" "$L/p5"
stop_khd "$L"

# load-6: slowloris on the ssh port: 150 connections that never speak.
python3 - "$P" >"$D/sshslow" 2>&1 <<'EOF' &
import socket, sys, time
cs = []
for _ in range(150):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    cs.append(s)
print("open", len(cs), flush=True)
time.sleep(12)
EOF
SLOWPID=$!
sleep 2
K=$D/keys
mkdir -p "$K"
ssh-keygen -q -t ed25519 -N '' -f "$K/alice"
khctl addkey -c pw alice "$K/alice.pub"
t0=$(date +%s%N)
out=$(echo version | timeout 20 ssh -p "$P" -o IdentitiesOnly=yes -o StrictHostKeyChecking=no \
	-o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR -i "$K/alice" "$con@127.0.0.1")
t1=$(date +%s%N)
check "load-6.1 150 silent ssh connections held open ($(cat "$D/sshslow"))" grep -q 'open 150' "$D/sshslow"
same "load-6.2 ... and a principal still gets in by ssh ($(((t1 - t0) / 1000000)) ms)" "$(grep -c '^U-Boot' <<<"$out")" "4"
kill "$SLOWPID" 2>/dev/null
wait

# load-7: the monitors of a channel dump memory to the console (256 KB
# as text each: ~1.2 MB a node, made inside khd): others are answered,
# another principal's channel works, every reader gets it whole.
probe_bg 4 "$D/p7"
khcon -c pw alice --prefix --ro --timeout 60 --until flood-done --count 4 "$con" >"$D/flood-ro" 2>&1 &
sleep 1 # attached before the dump starts
printf 'md.b 0x10000000 0x40000\necho flood-done\n' |
	khcon -c pw alice --prefix --timeout 60 --until flood-done --count 4 "$con" >"$D/flood" 2>&1
bblk=$(khget -c pw bob 1)
bcon=$(head -n1 <<<"$bblk" | cut -d@ -f1)
o=$(echo 'printenv bgp_rank' | khcon -c pw bob --timeout 5 --until 'bgp_rank=' "$bcon" | tr -d '\r')
wait
probe_ok "load-7.1 4 monitors dumping 256 KB each as text: others answered" "$D/p7"
check "load-7.2 ... another principal's channel answers" grep -q 'bgp_rank=' <<<"$o"
# md.b prints 16 bytes a line: 16384 lines a node
lines() { grep -c '^\[[0-9]*\] \(=> \)*1[0-9a-f]*:' "$1"; }
check "load-7.3 ... and the dump reaches the writer whole ($(lines "$D/flood") lines)" \
	test "$(lines "$D/flood")" -eq $((4 * 16384))
check "load-7.4 ... and a read-only reader too ($(lines "$D/flood-ro") lines)" \
	test "$(lines "$D/flood-ro")" -eq $((4 * 16384))
khctl release -c pw bob "$bcon"

# load-8: the spawner stopped (SIGSTOP): a boot still comes up (its nodes
# waited ready, docs/nodes.md); an exec in them finds the spawner wedged
# within 1 s and fails, a new spawner takes over and the next exec runs;
# others are answered.
APP=$D/app.cpio.gz
"$LIB/mkbusybox.sh" "$APP"
echo "$blk" | khdo loadramdisk "$APP" >/dev/null
SP=$(pgrep -P "$(khd_pid "$D")" -f "^kh-ct-spawner" | head -n1)
kill -STOP "$SP"
probe_bg 6 "$D/p8"
o=$(echo "$blk" | khdo -t 30 --until 'appliance up on' write 'run kboot' 2>&1)
wait
same "load-8.1 with the spawner stopped, a boot still comes up on all 4 nodes" \
	"$(grep -c 'appliance up on' <<<"$o")" "4"
# (an exec is not asked twice: the one that met the wedged spawner fails)
khctl exec -c pw alice -n "$con" hostname >/dev/null 2>&1
o=$(khctl exec -c pw alice -n "$con" hostname 2>&1)
same "load-8.1b ... and an exec after it runs in all 4 ($(tr '\n' ' ' <<<"$o"))" \
	"$(grep -c '^kh[0-9a-f]*-n' <<<"$o")" "4"
check "load-8.2 ... khd says it replaced the spawner" grep -q 'the spawner did not answer within 1000 ms' "$D/khd.log"
check "load-8.3 ... and the stopped one is gone" bash -c "! kill -0 $SP 2>/dev/null || grep -q Z /proc/$SP/stat"
probe_ok "load-8.4 ... others answered meanwhile" "$D/p8"

# load-9: booted nodes flood their console (8 MB of text each, through
# their ptys): others are answered; a reader too slow for it loses output,
# as on a serial line, and khd stays whole.
probe_bg 6 "$D/p9c"
echo "yes 0123456789abcdef0123456789abcdef | head -c 8000000; echo flood-''end" |
	khcon -c pw alice --timeout 60 --until flood-end --count 4 "$con" >"$D/cflood" 2>&1
wait
probe_ok "load-9.1 4 booted nodes writing 8 MB each to their consoles: others answered" "$D/p9c"
check "load-9.2 ... the channel's reader saw every node finish" test "$(grep -c flood-end "$D/cflood")" -ge 4

# load-9b: a node floods its domain (UDP to every peer, as fast as it can):
# khd and other principals are not slowed.
probe_bg 5 "$D/p9"
peer=$(awk '$1 == "nodeinfo:" {print $4}' <<<"$blk" | sed -n 2p)
echo "$blk" | khdo -t 10 write "(timeout 4 sh -c 'cat /dev/zero | nc -u $peer 9' >/dev/null 2>&1 &); echo flooding" >/dev/null 2>&1
wait
probe_ok "load-9.3 a node flooding its domain: others answered" "$D/p9"
khctl release -c pw alice "$con"

# load-10: the state directory's disk full: clear refusals, nothing lost,
# recovery when space returns.
F=$(mktemp -d /tmp/kh-e2e-XXXXXX)
mount -t tmpfs -o size=16m tmpfs "$F"
khd -d "$F" --nodes 8 --no-fabric
SOCK=$KH_SOCKET
export KH_SOCKET=$F/khd.sock
khget -c pw alice 2 >/dev/null
before=$(khctl nodes)
dd if=/dev/zero of="$F/filler" bs=64k >/dev/null 2>&1
err=$(khget -c pw alice 2 2>&1 >/dev/null)
rc=$?
same "load-10.1 disk full: khget refused (status $rc) with one line: $err" \
	"$rc $(wc -l <<<"$err")" "1 1"
check "load-10.2 ... saying the state store failed and nothing changed" grep -q 'nothing was changed' <<<"$err"
same "load-10.3 ... nothing changed" "$(khctl nodes)" "$before"
check "load-10.4 ... khd still answers" khctl info
rm -f "$F/filler"
check "load-10.5 space back: khget works again" khget -c pw alice 2
same "load-10.6 ... 4 nodes allocated in all" "$(khctl nodes | grep -c alice)" "4"
kill "$(khd_pid "$F")"
for _ in $(seq 50); do kill -0 "$(khd_pid "$F")" 2>/dev/null || break; sleep 0.1; done
khd -d "$F" --nodes 8 --no-fabric
same "load-10.7 ... and after a restart too" "$(khctl nodes | grep -c alice)" "4"
kill "$(khd_pid "$F")"
for _ in $(seq 50); do kill -0 "$(khd_pid "$F")" 2>/dev/null || break; sleep 0.1; done
export KH_SOCKET=$SOCK
umount "$F"
rmdir "$F"

stop_khd
done_testing

# khfs3-*: khfs as a reviewer of issue 15 item 1 reads it, bullet by
# bullet, where khfs.sh and khfs2.sh do not already check it: kill through
# nodes/RANK/ctl, query/.../ctl and channels/con<C>/ctl; res con<C>
# adopting an allocation (left alone at the session's end); N/ living while
# its processes run with every file closed; N/stdout merging whole lines of
# nodes that write them in pieces; tail -f and select on a stream; kill's
# default signal; release; load of a missing file; writes to every
# read-only file of a session.
. "$(dirname "$0")/lib.sh"
LIB=$(cd "$(dirname "$0")/../lib" && pwd)

if [ ! -e /dev/fuse ] || ! command -v fusermount3 >/dev/null; then
	echo "ok 1 - # SKIP no /dev/fuse or fusermount3"
	echo "1..1"
	exit 0
fi
start_khd --nodes 12 --no-fabric --no-rdma
APP=$D/app.cpio.gz
"$LIB/mkbusybox.sh" "$APP"
khget -c pw bob 1 >/dev/null
M=$D/mnt
O=$D/op
mkdir "$M" "$O"
FSPIDS=()
mount_khfs() { # DIR ARGS...
	local dir=$1
	shift
	khfs "$@" "$dir" 2>>"$D/khfs.err" &
	FSPIDS+=($!)
	for _ in $(seq 100); do mountpoint -q "$dir" && return 0; sleep 0.05; done
	return 1
}
trap 'for p in "${FSPIDS[@]}"; do kill -TERM "$p" 2>/dev/null; wait "$p"; done; fusermount3 -u "$M" 2>/dev/null; fusermount3 -u "$O" 2>/dev/null; cleanup' EXIT
trap 'exit 1' TERM INT
export KH_CRED=pw KH_USER=alice
check "khfs3-0.1 khfs mounts for alice, credentials from KH_CRED and KH_USER" mount_khfs "$M"
unset KH_CRED KH_USER
check "khfs3-0.2 ... and for the operator" mount_khfs "$O" --operator

# errno EXPECTED CMD...: CMD fails and its stderr names the error.
errno_is() {
	local want=$1 out
	shift
	out=$("$@" 2>&1)
	[ $? -ne 0 ] && grep -q "$want" <<<"$out"
}
# peek FILE: what a stream file holds now (O_NONBLOCK reads until EAGAIN
# or its end).
peek() {
	timeout 5 python3 -c '
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_NONBLOCK)
out = b""
try:
    while True:
        b = os.read(fd, 65536)
        if not b:
            break
        out += b
except BlockingIOError:
    pass
sys.stdout.write(out.decode())' "$1"
}
# until_lines FILE PATTERN COUNT: wait (10 s at most) until FILE holds
# COUNT lines matching PATTERN.
until_lines() {
	for _ in $(seq 100); do
		[ "$(peek "$1" | grep -c "$2")" -ge "$3" ] && return 0
		sleep 0.1
	done
	return 1
}
booted() { # N COUNT [res options]: res, load, boot
	local n=$1
	shift
	echo "res $*" >"$M/$n/ctl" && echo "load \$ramfsaddr $APP" >"$M/$n/ctl" && echo boot >"$M/$n/ctl"
}
# A program that says it is ready, and on SIGTERM says so and exits 3.
TRAPPER="exec sh -c 'trap \"echo term-\$KH_RANK; exit 3\" TERM; echo ready-\$KH_RANK; while :; do sleep 0.2; done'"

exec 7<"$M/clone" 8<"$M/clone"
read -r A <&7
read -r B <&8
booted "$A" 3 && booted "$B" 1
same "khfs3-1.0 two sessions booted (3 and 1 nodes)" "$(khctl nodes --user alice | awk '$2=="running"' | wc -l)" "4"
RA=($(ls "$M/$A" | grep -E '^[0-9]+$' | sort -n))
RB=$(ls "$M/$B" | grep -E '^[0-9]+$')
CA=$(head -n1 "$M/$A/status" | awk '{print $5}')

# khfs3-1: kill outside sessions: the processes this mount's sessions run
# on the nodes named, each node's alone.
echo "$TRAPPER" >"$M/$A/ctl"
echo "$TRAPPER" >"$M/$B/ctl"
until_lines "$M/$A/stdout" '^ready-' 3 && until_lines "$M/$B/stdout" '^ready-' 1
check "khfs3-1.1 kill through nodes/RANK/ctl" sh -c "echo kill >$M/nodes/${RA[0]}/ctl"
same "khfs3-1.2 ... its ctl says what was signalled" "$(cat "$M/nodes/${RA[0]}/ctl")" "kill 15: 1 process on node ${RA[0]}"
check "khfs3-1.3 ... SIGTERM reached that node's process" until_lines "$M/$A/stdout" "^term-${RA[0]}\$" 1
sleep 0.3
same "khfs3-1.4 ... and no other (the session's other nodes, session B)" \
	"$(peek "$M/$A/stdout" | grep -c '^term-') $(peek "$M/$B/stdout" | grep -c '^term-')" "1 0"
o=$(timeout 5 python3 -c '
import os, sys, errno
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_NONBLOCK)
try:
    os.read(fd, 100); print("data")
except OSError as e:
    print(errno.errorcode[e.errno])' "$M/$A/wait")
same "khfs3-1.5 ... A's wait still waits for the other two" "$o" "EAGAIN"
check "khfs3-1.6 echo 'kill 9' > query/user=alice/state=running/ctl" \
	sh -c "echo 'kill 9' >$M/query/user=alice/state=running/ctl"
same "khfs3-1.7 ... 3 processes in 2 sessions, one request per stream" \
	"$(cat "$M/query/user=alice/state=running/ctl")" "kill 9: 3 processes on 4 nodes"
same "khfs3-1.8 A's wait: the TERM'd node exited 3, the others were killed by 9" \
	"$(timeout 10 cat "$M/$A/wait" | sort -n | awk '{print $1, $2}' | tr '\n' ' ')" \
	"${RA[0]} 3 ${RA[1]} 137 ${RA[2]} 137 "
same "khfs3-1.9 B's wait: killed by 9" "$(timeout 10 cat "$M/$B/wait" | awk '{print $1, $2}')" "$RB 137"
check "khfs3-1.10 kill where nothing runs: ESRCH" errno_is "No such process" \
	bash -c "echo kill >$M/nodes/${RA[1]}/ctl"
same "khfs3-1.11 ... and its ctl says why" "$(cat "$M/nodes/${RA[1]}/ctl")" \
	"error: kill: no process of this mount's sessions runs on node ${RA[1]}"
echo "$TRAPPER" >"$M/$A/ctl"
until_lines "$M/$A/stdout" '^ready-' 3
check "khfs3-1.12 kill 2 through channels/con<C>/ctl" sh -c "echo 'kill 2' >$M/channels/$CA/ctl"
same "khfs3-1.13 ... every process of the channel ended by SIGINT (130)" \
	"$(timeout 10 cat "$M/$A/wait" | awk '{print $2}' | sort -u)" "130"
same "khfs3-1.14 ... ctl: kill 2: 3 processes on con<C>" "$(cat "$M/channels/$CA/ctl")" "kill 2: 3 processes on $CA"
check "khfs3-1.15 kill with a signal that is none: EINVAL" errno_is "Invalid argument" \
	bash -c "echo 'kill 99' >$M/nodes/${RA[0]}/ctl"
check "khfs3-1.16 kill by the operator (no principal, no sessions): EACCES" errno_is "Permission denied" \
	bash -c "echo kill >$O/nodes/${RA[0]}/ctl"
BOB=$(khctl nodes --user bob | awk '{print $1}')
check "khfs3-1.17 kill on bob's node: ESRCH (nothing of alice's runs there)" errno_is "No such process" \
	bash -c "echo kill >$M/nodes/$BOB/ctl"

# khfs3-1.18: splice a node (nodes/RANK: its console) into a session.
echo 'exec cat' >"$M/$A/ctl"
check "khfs3-1.18 splice nodes/RANK" sh -c "echo 'splice nodes/${RA[0]}' >$M/$A/ctl"
sleep 0.3
echo 'echo spliced-$((6*7))' >"$M/nodes/${RA[0]}/console"
check "khfs3-1.19 ... the node's console lines reach every process of the session" \
	until_lines "$M/$A/stdout" '^spliced-42$' 3
echo 'kill 9' >"$M/$A/ctl"
timeout 10 cat "$M/$A/wait" >/dev/null

# khfs3-2: kill's default signal in N/ctl; release.
echo "exec sleep 1000" >"$M/$A/ctl"
check "khfs3-2.1 N/ctl kill (no signal)" sh -c "echo kill >$M/$A/ctl"
same "khfs3-2.2 ... is SIGTERM: every wait line 143" "$(timeout 10 cat "$M/$A/wait" | awk '{print $2}' | sort -u)" "143"
check "khfs3-2.3 kill with nothing running: ESRCH" errno_is "No such process" bash -c "echo kill >$M/$A/ctl"

# khfs3-3: N/stdout merges whole lines: nodes write each line in two
# pieces, at the same time; no line is cut by another node's.
echo "exec sh -c 'for i in \$(seq 40); do printf \"%s-\" \$KH_RANK; sleep 0.01; printf \"%s\\n\" \$i; done'" >"$M/$A/ctl"
out=$(timeout 20 cat "$M/$A/stdout")
same "khfs3-3.1 120 lines, each RANK-I whole" "$(grep -cE '^[0-9]+-[0-9]+$' <<<"$out") $(wc -l <<<"$out")" "120 120"
same "khfs3-3.2 ... 40 of each node, in its order" \
	"$(for r in "${RA[@]}"; do grep "^$r-" <<<"$out" | cut -d- -f2 | tr '\n' ' '; echo; done | sort -u)" \
	"$(seq 40 | tr '\n' ' ')"
same "khfs3-3.3 N/RANK/stdout: the node's bytes as written" "$(cat "$M/$A/${RA[1]}/stdout" | head -n2)" "${RA[1]}-1
${RA[1]}-2"

# khfs3-3.4: a stream file held open across execs reads each new run from
# its start (it read past the new run's end before, out of its buffer).
o=$(timeout 30 python3 -c '
import os, sys
fd = os.open(sys.argv[1] + "/stdout", os.O_RDONLY)
def all():
    out = b""
    while True:
        b = os.read(fd, 65536)
        if not b:
            return out
        out += b
os.system("echo \"exec seq 1000\" >" + sys.argv[1] + "/ctl")
print(len(all()))
os.system("echo \"exec echo hi-\\$KH_RANK\" >" + sys.argv[1] + "/ctl")
print(all().decode().count("hi-"))' "$M/$A")
same "khfs3-3.4 one open stdout across two execs: 3 x 3893 bytes, then the 3 lines of the next run" "$o" "11679
3"

# khfs3-4: tail -f and select on a stream file.  A stream's size is what
# has been written (so plain tail -f, which polls the size, follows it once
# there is some), tail -n +1 -f reads it from the start as it comes.
echo "exec sh -c 'echo first-\$KH_RANK; sleep 1; echo second-\$KH_RANK; sleep 1000'" >"$M/$B/ctl"
stdbuf -oL tail -n +1 -f "$M/$B/stdout" >"$D/tail.out" & # (line-buffered, as at a terminal)
tpid=$!
for _ in $(seq 50); do grep -q '^second-' "$D/tail.out" && break; sleep 0.1; done
same "khfs3-4.1 tail -n +1 -f follows N/stdout as lines come" "$(cat "$D/tail.out")" "first-$RB
second-$RB"
kill "$tpid" 2>/dev/null
wait "$tpid" 2>/dev/null
echo kill >"$M/$B/ctl"
timeout 10 cat "$M/$B/wait" >/dev/null
echo "exec sh -c 'echo a-\$KH_RANK; sleep 2; echo b-\$KH_RANK; sleep 1000'" >"$M/$B/ctl"
until_lines "$M/$B/stdout" '^a-' 1
same "khfs3-4.2 stat: a stream's size is what was written" "$(stat -c %s "$M/$B/stdout")" "$((${#RB} + 3))"
stdbuf -oL tail -f "$M/$B/stdout" >"$D/tail2.out" 2>"$D/tail2.err" &
tpid=$!
sleep 0.5
same "khfs3-4.3 plain tail -f: the last lines at once" "$(cat "$D/tail2.out")" "a-$RB"
for _ in $(seq 50); do grep -q '^b-' "$D/tail2.out" && break; sleep 0.1; done
same "khfs3-4.4 ... then the next as it comes" "$(cat "$D/tail2.out")" "a-$RB
b-$RB"
echo kill >"$M/$B/ctl"
timeout 10 cat "$M/$B/wait" >/dev/null
echo "exec sh -c 'echo c-\$KH_RANK; sleep 1000'" >"$M/$B/ctl"
for _ in $(seq 50); do grep -q '^c-' "$D/tail2.out" && break; sleep 0.1; done
same "khfs3-4.5 ... and the next run's (tail: file truncated)" "$(tail -n1 "$D/tail2.out")" "c-$RB"
kill "$tpid" 2>/dev/null
wait "$tpid" 2>/dev/null
echo kill >"$M/$B/ctl"
timeout 10 cat "$M/$B/wait" >/dev/null
echo "exec sh -c 'sleep 1; echo late'" >"$M/$B/ctl"
o=$(timeout 10 python3 -c '
import os, sys, select, time
fd = os.open(sys.argv[1], os.O_RDONLY)
r, _, _ = select.select([fd], [], [], 0.2)
print("before", len(r))
t = time.time()
r, _, _ = select.select([fd], [], [], 5)
print("after", len(r), os.read(fd, 100).decode().strip())' "$M/$B/stdout")
same "khfs3-4.6 select: not readable before the line, readable once it comes" "$o" "before 0
after 1 late"

# khfs3-4.7: N/stdin when the processes do not read: a write with
# O_NONBLOCK fails with EAGAIN once the queues are full; a blocked writer
# is ended by Ctrl-C.
echo 'exec sleep 1000' >"$M/$B/ctl"
o=$(timeout 30 python3 -c '
import os, sys, errno
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_NONBLOCK)
chunk, n = b"x" * 65535 + b"\n", 0
try:
    while n < (256 << 20):
        n += os.write(fd, chunk)
    print("no EAGAIN after", n)
except OSError as e:
    print(errno.errorcode[e.errno], "after", "MiB" if n >= (1 << 20) else "less than a MiB")' "$M/$B/stdin")
same "khfs3-4.7 O_NONBLOCK write to N/stdin nobody reads: EAGAIN once MiBs wait" "$o" "EAGAIN after MiB"
python3 -c 'import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
fd = os.open(sys.argv[1], os.O_WRONLY)
while True:
    os.write(fd, b"y" * 65535 + b"\n")' "$M/$B/stdin" 2>/dev/null &
wpid=$!
sleep 2
t0=$(date +%s%N)
kill -INT "$wpid"
for _ in $(seq 20); do kill -0 "$wpid" 2>/dev/null || break; sleep 0.05; done
if kill -0 "$wpid" 2>/dev/null; then
	nok "khfs3-4.8 Ctrl-C ends a write to N/stdin blocked for room" "still blocked after 1 s"
	kill -9 "$wpid"
else
	ok "khfs3-4.8 Ctrl-C ends a write to N/stdin blocked for room"
fi
wait "$wpid" 2>/dev/null
echo 'kill 9' >"$M/$B/ctl"
timeout 10 cat "$M/$B/wait" >/dev/null

# khfs3-5: N/ lives while its processes run, with every file closed; then
# it goes and its nodes go back.
exec 9<"$M/clone"
read -r C <&9
booted "$C" 1
echo "exec sh -c 'sleep 3'" >"$M/$C/ctl"
exec 9<&-
sleep 1
check "khfs3-5.1 every file closed, a process running: N/ is still there" test -e "$M/$C/status"
same "khfs3-5.2 ... and so are its nodes" "$(khctl nodes --user alice | wc -l)" "5"
for _ in $(seq 100); do [ -e "$M/$C" ] || break; sleep 0.1; done
check "khfs3-5.3 once the process ended, N/ is gone" test ! -e "$M/$C"
for _ in $(seq 50); do [ "$(khctl nodes --user alice | wc -l)" = 4 ] && break; sleep 0.1; done
same "khfs3-5.4 ... and its node went back" "$(khctl nodes --user alice | wc -l)" "4"

# khfs3-6: res con<C> adopts an allocation alice already has.
K=$(khget -c pw alice 2)
CK=$(head -n1 <<<"$K" | cut -d@ -f1)
khdo --socket "$KH_SOCKET" -c pw alice loadfile '$ramfsaddr' "$APP" <<<"$K" >/dev/null
khdo --socket "$KH_SOCKET" -c pw alice --until 'appliance up' write 'run kboot' <<<"$K" >/dev/null
exec 9<"$M/clone"
read -r E <&9
check "khfs3-6.1 res con<C>" sh -c "echo 'res $CK' >$M/$E/ctl"
same "khfs3-6.2 ... N/status names the channel and its nodes" "$(head -n1 "$M/$E/status" | awk '{print $5, $7}')" "$CK 2"
echo 'exec hostname' >"$M/$E/ctl"
same "khfs3-6.3 exec runs on the adopted nodes" "$(timeout 10 cat "$M/$E/stdout" | wc -l)" "2"
exec 9<&-
for _ in $(seq 50); do [ -e "$M/$E" ] || break; sleep 0.1; done
sleep 0.3
same "khfs3-6.4 the session's end leaves an adopted allocation alone" \
	"$(khctl nodes --user alice | awk -v c="$CK" '$4==c' | wc -l)" "2"
exec 9<"$M/clone"
read -r E <&9
check "khfs3-6.5 res con<C> of no channel: ENOENT" errno_is "No such file or directory" \
	bash -c "echo 'res con999' >$M/$E/ctl"
check "khfs3-6.6 ... with khd's reason in N/status" grep -q "^error: " "$M/$E/status"
CBOB=$(khctl nodes --user bob | awk '{print $4}')
check "khfs3-6.7 res con<C> of bob's: EACCES" errno_is "Permission denied" bash -c "echo 'res $CBOB' >$M/$E/ctl"
check "khfs3-6.8 load of a file that is not there: ENOENT" errno_is "No such file or directory" \
	bash -c "echo 'res $CK' >$M/$E/ctl && echo 'load \$ramfsaddr /nonexistent.cpio' >$M/$E/ctl"
check "khfs3-6.9 ... named in N/status" grep -q "^error: /nonexistent.cpio: No such file or directory" "$M/$E/status"
exec 9<&-

# khfs3-7: release.
check "khfs3-7.1 release through N/ctl" sh -c "echo release >$M/$B/ctl"
same "khfs3-7.2 ... the session's node went back" "$(khctl nodes | awk -v r="$RB" '$1==r {print $2, $3}')" "free -"
same "khfs3-7.3 ... N/status says so" "$(sed -n 2p "$M/$B/status")" "released"
check "khfs3-7.4 release again: ENXIO" errno_is "No such device or address" bash -c "echo release >$M/$B/ctl"

# khfs3-8: every read-only file of a session and of a node refuses writes
# with EACCES; N/env opened with O_TRUNC is emptied.
bad=
for f in stdout stderr wait status args "${RA[0]}/stdout"; do
	errno_is "Permission denied" bash -c "echo x >$M/$A/$f" || bad="$bad $f"
done
for f in "nodes/${RA[0]}/status" "domains/$(ls "$M/domains" | head -n1)/status" "channels/$CA/status" clone; do
	errno_is "Permission denied" bash -c "echo x >$M/$f" || bad="$bad $f"
done
same "khfs3-8.1 writes to read-only files: EACCES, each" "$bad" ""
echo "X=1" >"$M/$A/env"
echo "Y=2" >>"$M/$A/env"
same "khfs3-8.2 N/env: >> appends" "$(cat "$M/$A/env" | tr '\n' ' ')" "X=1 Y=2 "
: >"$M/$A/env"
same "khfs3-8.3 ... > (O_TRUNC) empties it" "$(cat "$M/$A/env")" ""
exec 7<&- 8<&-

for p in "${FSPIDS[@]}"; do kill -TERM "$p"; wait "$p"; done
FSPIDS=()
check "khfs3-9.1 khfs printed nothing on stderr (no sanitizer report either)" test ! -s "$D/khfs.err"
[ -s "$D/khfs.err" ] && head -30 "$D/khfs.err" | sed 's/^/# /' >&3
done_testing

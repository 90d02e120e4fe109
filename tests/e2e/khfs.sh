# khfs-*: the facility as files (issue 15): khfs mounted with FUSE over a
# real khd, driven with cat, echo and shell redirections as a user does:
# sessions from clone, res/load/boot/exec through N/ctl, stdout, stdin and
# wait, errors as errno plus a line in N/status, blocking and O_NONBLOCK
# reads, Ctrl-C of a blocked read, cleanup when the last file closes, 50
# concurrent clones, khd restarting under the mount, unmount on SIGTERM.
. "$(dirname "$0")/lib.sh"
LIB=$(cd "$(dirname "$0")/../lib" && pwd)

if [ ! -e /dev/fuse ] || ! command -v fusermount3 >/dev/null; then
	echo "ok 1 - # SKIP no /dev/fuse or fusermount3"
	echo "1..1"
	exit 0
fi
start_khd --nodes 110 --no-fabric --no-rdma
export KH_CRED=pw KH_USER=alice
APP=$D/app.cpio.gz
"$LIB/mkbusybox.sh" "$APP"
khget -c pw alice 1 >/dev/null # alice exists
M=$D/mnt
mkdir "$M"
mount_khfs() {
	khfs -c pw alice "$M" 2>>"$D/khfs.err" &
	FSPID=$!
	for _ in $(seq 100); do mountpoint -q "$M" && return 0; sleep 0.05; done
	return 1
}
umount_khfs() {
	kill -TERM "$FSPID" 2>/dev/null
	wait "$FSPID"
}
trap 'umount_khfs 2>/dev/null; fusermount3 -u "$M" 2>/dev/null; cleanup' EXIT
trap 'exit 1' TERM INT
check "khfs-1.1 khfs mounts" mount_khfs
same "khfs-1.2 the root: clone, nodes, query, domains, channels" "$(ls "$M" | tr '\n' ' ')" "channels clone domains nodes query "
same "khfs-1.3 no principal: one line, status 2" "$(env -u KH_CRED -u KH_USER khfs "$M" 2>&1; echo "rc=$?")" \
	"khfs: a principal is needed: -c CRED USER (or KH_CRED and KH_USER), or --operator
rc=2"

# errno EXPECTED CMD...: CMD's stderr names the error strerror gives.
errno_is() {
	local want=$1 out
	shift
	out=$("$@" 2>&1)
	[ $? -ne 0 ] && grep -q "$want" <<<"$out"
}

# khfs-2: a session of 3 nodes, from clone to wait.
exec 7<"$M/clone"
read -r N <&7
S=$M/$N
same "khfs-2.1 clone gives a session number, N/ holds its files" "$(ls "$S" | tr '\n' ' ')" \
	"args ctl env status stderr stdin stdout wait "
check "khfs-2.2 exec before res: ENXIO" errno_is "No such device or address" bash -c "echo 'exec true' >$S/ctl"
check "khfs-2.3 ... and the reason in N/status" grep -q "error: no nodes in the session (res first)" "$S/status"
check "khfs-2.4 an unknown command: EINVAL" errno_is "Invalid argument" bash -c "echo frob >$S/ctl"
check "khfs-2.5 ... named in N/status" grep -q "error: unknown command 'frob'" "$S/status"
check "khfs-2.6 writing a read-only file: EACCES" errno_is "Permission denied" bash -c "echo x >$S/stdout"
check "khfs-2.7 reading a write-only file: EACCES" errno_is "Permission denied" cat "$S/stdin"
check "khfs-2.8 res 3" sh -c "echo 'res 3' >$S/ctl"
RANKS=$(ls "$S" | grep -E '^[0-9]+$' | tr '\n' ' ')
same "khfs-2.9 the session's nodes appear as N/RANK" "$(wc -w <<<"$RANKS")" "3"
same "khfs-2.10 ... allocated to alice on one channel" \
	"$(khctl nodes --user alice | awk '{print $4}' | sort | uniq -c | awk '$1==3' | wc -l)" "1"
check "khfs-2.11 exec on nodes not booted: EINVAL, khd's reason" errno_is "Invalid argument" bash -c "echo 'exec true' >$S/ctl"
check "khfs-2.12 ... in N/status" grep -q "is not booted" "$S/status"
check "khfs-2.13 load ADDR FILE" sh -c "echo 'load \$ramfsaddr $APP' >$S/ctl"
check "khfs-2.14 boot (the write returns once they run)" sh -c "echo boot >$S/ctl"
same "khfs-2.15 ... and they do" "$(khctl nodes --user alice | awk '$2=="running"' | wc -l)" "3"
check "khfs-2.16 a missing program: ENOENT" errno_is "No such file or directory" bash -c "echo 'exec nosuch' >$S/ctl"
check "khfs-2.17 ... with khd's line in N/status" grep -q "nosuch: No such file or directory" "$S/status"
echo "exec sh -c 'echo out-\$KH_RANK; echo err-\$KH_RANK >&2; exit \$((KH_RANK % 2))'" >"$S/ctl"
same "khfs-2.18 N/stdout: every node's lines" "$(sort "$S/stdout" | tr '\n' ' ')" \
	"$(for r in $RANKS; do echo "out-$r"; done | sort | tr '\n' ' ')"
same "khfs-2.19 N/stderr apart" "$(sort "$S/stderr" | tr '\n' ' ')" \
	"$(for r in $RANKS; do echo "err-$r"; done | sort | tr '\n' ' ')"
w=$(cat "$S/wait")
same "khfs-2.20 N/wait: one line per node, rank and status" "$(awk '{print $1, $2}' <<<"$w" | sort | tr '\n' ' ')" \
	"$(for r in $RANKS; do echo "$r $((r % 2))"; done | sort | tr '\n' ' ')"
check "khfs-2.21 ... and user, system and real ms" bash -c "awk 'NF!=5 || \$3 !~ /^[0-9]+\$/ {bad=1} END {exit bad}' <<<\"\$1\"" _ "$w"
r1=$(awk '{print $1}' <<<"$RANKS")
same "khfs-2.22 N/RANK/stdout: that node's output alone" "$(cat "$S/$r1/stdout")" "out-$r1"
same "khfs-2.23 N/args: the command" "$(cat "$S/args")" "sh -c echo out-\$KH_RANK; echo err-\$KH_RANK >&2; exit \$((KH_RANK % 2))"
echo "GREETING=hello" >"$S/env"
echo 'exec sh -c "tr a-z A-Z; echo $GREETING"' >"$S/ctl"
printf 'abc\n' >"$S/stdin"
same "khfs-2.24 N/stdin reaches every node; N/env their environment" "$(sort "$S/stdout" | uniq -c | awk '{print $1, $2}' | tr '\n' ' ')" "3 ABC 3 hello "

# khfs-3: blocking, O_NONBLOCK, poll, Ctrl-C.
echo 'exec sleep 1000' >"$S/ctl"
o=$(timeout 5 python3 -c '
import os, sys, errno, select
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_NONBLOCK)
try:
    os.read(fd, 100); print("data")
except OSError as e:
    print(errno.errorcode[e.errno])
p = select.poll(); p.register(fd, select.POLLIN)
print("poll", len(p.poll(200)))' "$S/wait")
same "khfs-3.1 O_NONBLOCK read of a running session's wait: EAGAIN; poll: not ready" "$o" "EAGAIN
poll 0"
# (a script's background jobs ignore SIGINT: the reader takes it back)
python3 -c 'import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.execvp("cat", ["cat", sys.argv[1]])' "$S/wait" >"$D/wait.out" &
cpid=$!
# (the signal must come once the reader is cat, with SIGINT back to default)
for _ in $(seq 200); do [ "$(cat "/proc/$cpid/comm" 2>/dev/null)" = cat ] && break; sleep 0.05; done
sleep 0.3
t0=$(date +%s%N)
kill -INT "$cpid"
wait "$cpid"
rc=$?
t1=$(date +%s%N)
check "khfs-3.2 Ctrl-C ends a blocked read at once" test "$rc" -ne 0 -a $(((t1 - t0) / 1000000)) -lt 1000
o=$(timeout 5 python3 -c '
import os, sys, select, time
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_NONBLOCK)
p = select.poll(); p.register(fd, select.POLLIN)
os.system("echo kill 9 >" + sys.argv[2])
print("poll", len(p.poll(3000)))
print(os.read(fd, 4096).decode().count("137"))' "$S/wait" "$S/ctl")
same "khfs-3.3 poll wakes when the processes end; kill 9 killed them all" "$o" "poll 1
3"

# khfs-4: the session ends when its last file closes: nodes released.
exec 7<&-
for _ in $(seq 50); do [ -e "$S" ] || break; sleep 0.05; done
check "khfs-4.1 the last close ends the session" test ! -e "$S"
same "khfs-4.2 ... and gives its nodes back" "$(khctl nodes --user alice | wc -l)" "1"
ls "$M/nodes" >/dev/null
st=$(cat "$M/nodes/0/status")
same "khfs-4.3 nodes/RANK/status" "$(awk '{print $1, $3}' <<<"$st")" "0 alice"

# khfs-5: 50 concurrent clones give 50 distinct sessions.
pids=()
for i in $(seq 50); do
	(exec 4<"$M/clone"; read -r n <&4; echo "$n"; sleep 0.5) >"$D/clone.$i" &
	pids+=($!)
done
wait "${pids[@]}"
same "khfs-5.1 50 concurrent clones: 50 sessions" "$(cat "$D"/clone.* | sort -u | wc -l)" "50"
sleep 0.2
same "khfs-5.2 ... all gone once closed" "$(ls "$M" | grep -cE '^[0-9]+$')" "0"

# khfs-7: khd goes away and comes back under the mount.
exec 7<"$M/clone"
read -r N <&7
stop_khd
check "khfs-7.1 with khd gone, a command fails with EIO" errno_is "Input/output error" bash -c "echo 'res 1' >$M/$N/ctl"
check "khfs-7.2 ... the mount still answers" test -e "$M/$N/status"
restart_khd --nodes 110 --no-fabric --no-rdma 7<&- # (khd would hold the session open)
check "khfs-7.3 once khd is back, the same session works" sh -c "echo 'res 1' >$M/$N/ctl"
exec 7<&-

# khfs-6: a session of 100 nodes.
exec 7<"$M/clone"
read -r N <&7
S=$M/$N
echo 'res 100' >"$S/ctl" && echo "load \$ramfsaddr $APP" >"$S/ctl" && echo boot >"$S/ctl"
same "khfs-6.1 100 nodes booted" "$(khctl nodes --user alice | awk '$2=="running"' | wc -l)" "100"
echo 'exec /bin/true' >"$S/ctl"
same "khfs-6.2 exec on 100: 100 wait lines, all status 0" "$(awk '$2==0' "$S/wait" | wc -l)" "100"
echo 'exec hostname' >"$S/ctl"
same "khfs-6.3 100 distinct hostnames in N/stdout" "$(sort -u "$S/stdout" | wc -l)" "100"
exec 7<&-
for _ in $(seq 100); do [ "$(khctl nodes --user alice | wc -l)" = 1 ] && break; sleep 0.1; done
same "khfs-6.4 closing the session released the 100 nodes" "$(khctl nodes --user alice | wc -l)" "1"

# khfs-8: SIGTERM unmounts cleanly.
umount_khfs
same "khfs-8.1 SIGTERM: khfs exits 0" "$?" "0"
check "khfs-8.2 ... and the mount is gone" bash -c "! mountpoint -q '$M'"
mount_khfs
fusermount3 -u "$M"
wait "$FSPID"
same "khfs-8.3 fusermount3 -u: khfs exits 0" "$?" "0"
check "khfs-8.4 khfs printed nothing on stderr" test ! -s "$D/khfs.err"
done_testing

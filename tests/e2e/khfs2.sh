# khfs2-*: khfs beyond a session (issue 15): splice chains across
# sessions and from consoles, query paths with their aggregated status and
# ctl, nodes/RANK/{ctl,console}, domains/, channels/, res with khget's
# options, what a user may see, bad input (errno plus a line in status or
# ctl), and a sweep that reads every file of the tree with O_NONBLOCK.
. "$(dirname "$0")/lib.sh"
LIB=$(cd "$(dirname "$0")/../lib" && pwd)

if [ ! -e /dev/fuse ] || ! command -v fusermount3 >/dev/null; then
	echo "ok 1 - # SKIP no /dev/fuse or fusermount3"
	echo "1..1"
	exit 0
fi
start_khd --nodes 24 --no-fabric --no-rdma
export KH_CRED=pw KH_USER=alice
APP=$D/app.cpio.gz
"$LIB/mkbusybox.sh" "$APP"
khget -c pw bob 2 >/dev/null # bob's nodes: alice must not see them
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
check "khfs2-1.1 khfs mounts for alice" mount_khfs "$M" -c pw alice
check "khfs2-1.2 ... and for the operator" mount_khfs "$O" --operator

# errno EXPECTED CMD...: CMD fails and its stderr names the error.
errno_is() {
	local want=$1 out
	shift
	out=$("$@" 2>&1)
	[ $? -ne 0 ] && grep -q "$want" <<<"$out"
}
# ctrl_c FILE: cat FILE, blocked, gets SIGINT as at a terminal (a
# script's background jobs ignore it: the reader takes it back before it
# is cat); prints "ended" when cat ended by it within a second.
ctrl_c() {
	local pid rc
	python3 -c 'import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.execvp("cat", ["cat", sys.argv[1]])' "$1" >/dev/null &
	pid=$!
	for _ in $(seq 200); do [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = cat ] && break; sleep 0.05; done
	sleep 0.3
	kill -INT "$pid"
	for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
	if kill -0 "$pid" 2>/dev/null; then
		kill -9 "$pid"
		wait "$pid"
		echo "still blocked after 1 s"
		return
	fi
	wait "$pid"
	rc=$?
	[ "$rc" -ne 0 ] && echo ended || echo "cat exited 0"
}
booted() { # N COUNT [res options]: res, load, boot
	local n=$1
	shift
	echo "res $*" >"$M/$n/ctl" && echo "load \$ramfsaddr $APP" >"$M/$n/ctl" && echo boot >"$M/$n/ctl"
}

# khfs2-2: res with khget's options.
exec 7<"$M/clone"
read -r A <&7
check "khfs2-2.1 res COUNT TYPE -p 1: a new private domain" sh -c "echo 'res 2 ct1 -p 1' >$M/$A/ctl"
CA=$(head -n1 "$M/$A/status" | awk '{print $5}')
NET=$(khctl nodes --user alice | awk -v c="$CA" '$4==c {print $5}' | sort -u)
same "khfs2-2.2 ... both nodes on con<C> in one domain of alice's" \
	"$(khctl domains | awk -v n="$NET" '$1==n {print $2, $3, $4}')" "private alice 2"
echo release >"$M/$A/ctl"
check "khfs2-2.3 res -n NETID -i: that domain and the public one" sh -c "echo 'res 1 -n $NET -i' >$M/$A/ctl"
same "khfs2-2.4 ... the node's netids" \
	"$(khctl nodes --user alice | awk '$2!="free" {print $5}' | tr ',' '\n' | sort -n | tr '\n' ' ')" \
	"$(printf '%s\n' 2 "$NET" | sort -n | tr '\n' ' ')"
echo release >"$M/$A/ctl"
check "khfs2-2.5 res -n with a domain that is not there: ENOENT" errno_is "No such file or directory" \
	bash -c "echo 'res 1 -n 999' >$M/$A/ctl"
check "khfs2-2.6 ... khd's reason in N/status" grep -q "error: no domain with netid 999" "$M/$A/status"
check "khfs2-2.7 res with -c: EINVAL (the principal is khfs's)" errno_is "Invalid argument" \
	bash -c "echo 'res 1 -c x' >$M/$A/ctl"
check "khfs2-2.8 res with two types: EINVAL" errno_is "Invalid argument" bash -c "echo 'res 1 ct1 ct2' >$M/$A/ctl"
check "khfs2-2.9 ... said in N/status" grep -q "one TYPE at most" "$M/$A/status"
check "khfs2-2.10 res with an unknown flag: khget's reason" errno_is "Invalid argument" bash -c "echo 'res 1 -z' >$M/$A/ctl"
check "khfs2-2.11 ... in N/status" grep -q "unknown option '-z'" "$M/$A/status"
exec 7<&-

# khfs2-3: a splice chain across sessions, A's stdout -> B -> C.
exec 7<"$M/clone" 8<"$M/clone" 9<"$M/clone"
read -r A <&7
read -r B <&8
read -r C <&9
booted "$A" "1 -n $NET" && booted "$B" "2 -n $NET" && booted "$C" "1 -n $NET"
same "khfs2-3.1 three sessions booted (1, 2 and 1 nodes)" \
	"$(khctl nodes --user alice | awk '$2=="running"' | wc -l)" "4"
echo 'exec sh -c "sort; echo end-of-c"' >"$M/$C/ctl"
echo 'exec tr a-z A-Z' >"$M/$B/ctl"
check "khfs2-3.2 splice B into C" sh -c "echo 'splice $B' >$M/$C/ctl"
check "khfs2-3.3 splice A's stdout (an absolute path) into B" sh -c "echo 'splice $M/$A/stdout' >$M/$B/ctl"
same "khfs2-3.4 N/status names the splice" "$(tail -n1 "$M/$B/status")" "splice $M/$A/stdout"
echo 'exec sh -c "for w in pear apple fig; do echo $w; done"' >"$M/$A/ctl"
# each of B's two nodes gets every line; C sorts what both wrote
same "khfs2-3.5 A -> B (2 nodes) -> C: every record, whole, and C's stdin closed" "$(timeout 20 cat "$M/$C/stdout" | tr '\n' ' ')" \
	"APPLE APPLE FIG FIG PEAR PEAR end-of-c "
same "khfs2-3.6 ... C ended by itself (EOF came through)" "$(timeout 5 cat "$M/$C/wait" | awk '{print $2}')" "0"
same "khfs2-3.7 ... B ended as well" "$(timeout 5 cat "$M/$B/wait" | awk '{print $2}' | tr '\n' ' ')" "0 0 "
check "khfs2-3.8 a splice is over once delivered" bash -c "! grep -q '^splice' $M/$C/status"
# the source may end before the destination runs: its output waits
echo 'exec sh -c "seq 1 3000"' >"$M/$A/ctl"
timeout 10 cat "$M/$A/wait" >/dev/null
check "khfs2-3.9 splice a source that has not run yet" sh -c "echo 'splice $A' >$M/$C/ctl"
echo 'exec sh -c "seq 3001 5000"' >"$M/$A/ctl"
echo 'exec sh -c "wc -l"' >"$M/$C/ctl"
same "khfs2-3.10 ... the next run's 2000 lines all reach the destination's next run" "$(timeout 20 cat "$M/$C/stdout" | tr -d ' ')" "2000"
# a source session closed by its user stays until its output is delivered
echo 'exec cat' >"$M/$C/ctl"
echo "splice $B/$(ls "$M/$B" | grep -E '^[0-9]+$' | head -n1)" >"$M/$C/ctl"
check "khfs2-3.11 splice one node of B (B/RANK) into C" grep -q "^splice $B/" "$M/$C/status"
echo 'exec sh -c "echo one; echo two"' >"$M/$B/ctl"
exec 8<&-
same "khfs2-3.12 ... B's node's lines reach C though B's files closed" "$(timeout 10 cat "$M/$C/stdout" | tr '\n' ' ')" "one two "
for _ in $(seq 50); do [ -e "$M/$B" ] || break; sleep 0.05; done
check "khfs2-3.13 ... then B goes" test ! -e "$M/$B"

# khfs2-4: bad input.
check "khfs2-4.1 splice to a missing path: ENOENT" errno_is "No such file or directory" bash -c "echo 'splice 999' >$M/$C/ctl"
check "khfs2-4.2 ... and its line in N/status" grep -q "error: splice 999: no such file or directory" "$M/$C/status"
check "khfs2-4.3 splice query/ to a rank not matching: ENOENT" errno_is "No such file or directory" \
	bash -c "echo 'splice query/user=alice/9999' >$M/$C/ctl"
check "khfs2-4.4 splice a session's own output: EINVAL" errno_is "Invalid argument" bash -c "echo 'splice $C' >$M/$C/ctl"
check "khfs2-4.5 splice a path outside the mount: EXDEV" errno_is "cross-device" bash -c "echo 'splice /etc/passwd' >$M/$C/ctl"
check "khfs2-4.6 writing query/status: EACCES" errno_is "Permission denied" bash -c "echo x >$M/query/status"
check "khfs2-4.7 writing domains/NETID/members: EACCES" errno_is "Permission denied" bash -c "echo x >$M/domains/$NET/members"
check "khfs2-4.8 an unknown query key: ENOENT" errno_is "No such file or directory" cat "$M/query/colour=red/status"
check "khfs2-4.9 a state that is none: ENOENT" errno_is "No such file or directory" cat "$M/query/state=sleeping/status"
check "khfs2-4.10 an unknown command to a query's ctl: EINVAL" errno_is "Invalid argument" bash -c "echo frob >$M/query/user=alice/ctl"
check "khfs2-4.11 ... reading that ctl says why" grep -q "error: unknown command 'frob'" "$M/query/user=alice/ctl"
BOB=$(khctl nodes --user bob | awk '{print $1}' | head -n1)
check "khfs2-4.12 reset of a node of bob's: EACCES" errno_is "Permission denied" bash -c "echo reset >$M/nodes/$BOB/ctl"
check "khfs2-4.13 ... khd's reason in its ctl" grep -q "is not yours" "$M/nodes/$BOB/ctl"
check "khfs2-4.14 console of a node of bob's: EACCES" errno_is "Permission denied" cat "$M/nodes/$BOB/console"

# khfs2-5: query paths and what each principal sees.
mine=$(khctl nodes --user alice | awk '{print $1}' | tr '\n' ' ')
same "khfs2-5.1 query/user=alice/: alice's nodes as RANK/" "$(ls "$M/query/user=alice" | grep -E '^[0-9]+$' | sort -n | tr '\n' ' ')" "$mine"
same "khfs2-5.2 query/status: one line per node, nodes/RANK/status's format" "$(cat "$M/query/status")" "$(khctl nodes --user alice)"
same "khfs2-5.3 alice does not see bob's nodes" "$(cat "$M/query/user=bob/status" | wc -l)" "0"
same "khfs2-5.4 the operator does" "$(cat "$O/query/user=bob/status")" "$(khctl nodes --user bob)"
CC=$(head -n1 "$M/$C/status" | awk '{print $5}')
same "khfs2-5.5 terms combine: user, state, con, type" \
	"$(cat "$M/query/user=alice/state=running/con=${CC#con}/type=ct1/status" | awk '{print $2, $3, $4, $6}')" "running alice $CC ct1"
same "khfs2-5.6 ... con=C or con=conC" "$(cat "$M/query/con=$CC/status")" "$(cat "$M/query/con=${CC#con}/status")"
same "khfs2-5.7 domain=NETID" "$(awk '{print $1}' "$M/query/domain=$NET/status" | tr '\n' ' ')" \
	"$(khctl nodes --user alice | awk -v n="$NET" '$5 ~ "(^|,)"n"(,|$)" {print $1}' | tr '\n' ' ')"
HOST=$(khctl info | head -n1 | awk '{print $6}')
same "khfs2-5.8 host=H: every node here; another host, none" \
	"$(cat "$M/query/host=$HOST/status" | wc -l) $(cat "$M/query/host=elsewhere/status" | wc -l)" \
	"$(khctl nodes --user alice | wc -l) 0"
R=$(awk '{print $1}' "$M/query/con=$CC/status" | head -n1)
same "khfs2-5.9 query/.../RANK/status is the node's" "$(cat "$M/query/con=$CC/$R/status")" "$(cat "$M/nodes/$R/status")"
check "khfs2-5.10 a rank the query does not match is not there" test ! -e "$M/query/user=bob/$R"

# khfs2-6: consoles, and a splice from them.
exec 6<"$M/$C/ctl" # (C lives on)
exec 9<&-
exec 9<"$M/clone"
read -r E <&9
booted "$E" "1 -n $NET"
echo 'exec cat' >"$M/$E/ctl"
check "khfs2-6.1 splice a query (consoles of con<C>'s running nodes)" sh -c "echo 'splice query/con=$CC/state=running' >$M/$E/ctl"
(timeout 10 cat "$M/nodes/$R/console" >"$D/console.out") &
cpid=$!
sleep 0.3
echo 'echo con-$((6*7))' >"$M/nodes/$R/console"
same "khfs2-6.2 nodes/RANK/console: write a command, read its answer" \
	"$(for _ in $(seq 100); do grep -q '^con-42' "$D/console.out" && break; sleep 0.05; done; grep -c '^con-42' "$D/console.out")" "1"
kill "$cpid" 2>/dev/null
wait "$cpid" 2>/dev/null
out=$(timeout 3 cat "$M/$E/stdout")
check "khfs2-6.3 ... and the spliced query's consoles reached E's stdin" grep -q '^con-42' <<<"$out"
(timeout 10 cat "$M/channels/$CC/console" >"$D/chan.out") &
cpid=$!
sleep 0.3
echo 'echo chan-$((7*7))' >"$M/channels/$CC/console"
same "khfs2-6.4 channels/con<C>/console: lines as [RANK] text" \
	"$(for _ in $(seq 100); do grep -q "^\[$R\] chan-49" "$D/chan.out" && break; sleep 0.05; done; grep -c "^\[$R\] chan-49" "$D/chan.out")" "1"
kill "$cpid" 2>/dev/null
wait "$cpid" 2>/dev/null
same "khfs2-6.5 Ctrl-C ends a blocked console read at once" "$(ctrl_c "$M/nodes/$R/console")" "ended"
echo kill >"$M/$E/ctl"
exec 9<&-
# E's end (its nodes released) follows the last close asynchronously: the
# kernel sends FUSE's release after close returns.  khfs has released them
# once a lookup finds E gone (one dispatch thread).
for _ in $(seq 200); do test -e "$M/$E" || break; sleep 0.05; done

# khfs2-7: domains/ and channels/.
same "khfs2-7.1 domains/NETID/status: khd's line" "$(cat "$M/domains/$NET/status")" "$(khctl domains | awk -v n="$NET" '$1==n')"
same "khfs2-7.2 domains/NETID/members: alice's nodes there" "$(cat "$M/domains/$NET/members" | tr '\n' ' ')" \
	"$(khctl nodes --user alice | awk -v n="$NET" '$5 ~ "(^|,)"n"(,|$)" {print $1}' | tr '\n' ' ')"
BNET=$(khctl nodes --user bob | awk '{print $5}' | head -n1)
check "khfs2-7.3 bob's private domain is not alice's to see" test ! -e "$M/domains/$BNET"
same "khfs2-7.4 channels/: alice's channels" "$(ls "$M/channels" | sort -V | tr '\n' ' ')" \
	"$(khctl nodes --user alice | awk '{print $4}' | sort -u | sort -V | tr '\n' ' ')"
same "khfs2-7.5 channels/con<C>/status: its nodes' lines" "$(cat "$M/channels/$CC/status")" \
	"$(khctl nodes --user alice | awk -v c="$CC" '$4==c')"

# khfs2-8: ctl of nodes outside sessions.
check "khfs2-8.1 reset through nodes/RANK/ctl" sh -c "echo reset >$M/nodes/$R/ctl"
same "khfs2-8.2 ... the node is back in its monitor; ctl says so" "$(awk '{print $2}' "$M/nodes/$R/status") $(cat "$M/nodes/$R/ctl")" "monitor reset: node $R"
nrun=$(cat "$M/query/user=alice/state=running/status" | wc -l)
check "khfs2-8.3 echo reset > query/user=alice/state=running/ctl" sh -c "echo reset >$M/query/user=alice/state=running/ctl"
same "khfs2-8.4 ... every one of them reset, by one request" \
	"$(cat "$M/query/user=alice/state=running/status" | wc -l) $(cat "$M/query/user=alice/state=running/ctl")" \
	"0 reset: $nrun node$([ "$nrun" = 1 ] || echo s)"
same "khfs2-8.5 bob's nodes were not touched" "$(khctl nodes --user bob | awk '{print $2}' | sort -u)" "monitor"
check "khfs2-8.6 addnet NETID through channels/con<C>/ctl" sh -c "echo 'addnet 2' >$M/channels/$CC/ctl"
same "khfs2-8.7 ... the channel's nodes are in the public domain" \
	"$(awk '{print $5}' "$M/channels/$CC/status" | sort -u)" "$NET,2"
check "khfs2-8.8 release through query/con=C/ctl" sh -c "echo release >$M/query/con=$CC/ctl"
same "khfs2-8.9 ... the channel is gone" "$(khctl nodes --user alice | awk -v c="$CC" '$4==c' | wc -l)" "0"
exec 6<&-

# khfs2-9: a sweep over the whole tree: every file opened and read with
# O_NONBLOCK; nothing blocks, nothing hangs.
exec 7<"$M/clone"
read -r A <&7
booted "$A" "2 -n $NET"
echo 'exec sleep 1000' >"$M/$A/ctl"
sweep() {
	timeout 60 python3 - "$1" <<'EOF'
import errno, os, sys, time
root, n, bad = sys.argv[1], 0, []
for d, dirs, files in os.walk(root):
    for f in files:
        p = os.path.join(d, f)
        t = time.time()
        try:
            fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
        except OSError as e:
            if e.errno not in (errno.EACCES, errno.ENOENT, errno.ENXIO):
                bad.append("%s: open %s" % (p, errno.errorcode[e.errno]))
            continue
        try:
            while os.read(fd, 65536):
                pass
        except OSError as e:
            if e.errno != errno.EAGAIN:
                bad.append("%s: read %s" % (p, errno.errorcode[e.errno]))
        os.close(fd)
        n += 1
        if time.time() - t > 2:
            bad.append("%s: %.1f s" % (p, time.time() - t))
print(n, "files", *bad)
EOF
}
out=$(sweep "$M")
check "khfs2-9.1 the sweep reads every file of alice's tree, none hangs or fails" \
	bash -c "[ \"\$(wc -w <<<\"\$1\")\" = 2 ] && [ \"\$(awk '{print \$1}' <<<\"\$1\")\" -gt 25 ]" _ "$out"
[ "$(wc -w <<<"$out")" = 2 ] || echo "# $out" >&3
out=$(sweep "$O")
check "khfs2-9.2 ... and the operator's" bash -c "[ \"\$(wc -w <<<\"\$1\")\" = 2 ]" _ "$out"
[ "$(wc -w <<<"$out")" = 2 ] || echo "# $out" >&3

# khfs2-10: cleanup when the last file closes: sessions, splices, nodes.
exec 8<"$M/clone"
read -r B <&8
booted "$B" "1 -n $NET"
echo 'exec cat' >"$M/$B/ctl"
echo "splice $A" >"$M/$B/ctl"
echo kill >"$M/$A/ctl"
exec 7<&- 8<&-
for _ in $(seq 100); do [ -e "$M/$A" ] || [ -e "$M/$B" ] || break; sleep 0.05; done
check "khfs2-10.1 once closed, sessions go though processes ran and a splice joined them" \
	bash -c "[ ! -e '$M/$A' ] && [ ! -e '$M/$B' ]"
for _ in $(seq 100); do [ "$(khctl nodes --user alice | wc -l)" = 0 ] && break; sleep 0.1; done
same "khfs2-10.2 ... and every node went back" "$(khctl nodes --user alice | wc -l)" "0"
# khfs2-11: khd goes away and comes back under the mounts.
stop_khd
check "khfs2-11.1 khd gone: query/status fails with EIO" errno_is "Input/output error" cat "$M/query/status"
check "khfs2-11.2 ... a console too" errno_is "Input/output error" cat "$M/channels/con1/console"
check "khfs2-11.3 ... ls of nodes/ and channels/ answers at once" timeout 5 ls "$M/nodes" "$M/channels" >/dev/null
restart_khd --nodes 24 --no-fabric --no-rdma
same "khfs2-11.4 khd back: queries answer again (bob's 2 nodes)" "$(cat "$O/query/user=bob/status" | awk '{print $3}' | uniq -c | awk '{print $1, $2}')" "2 bob"

for p in "${FSPIDS[@]}"; do kill -TERM "$p"; wait "$p"; done
FSPIDS=()
check "khfs2-12.1 both unmount on SIGTERM" bash -c "! mountpoint -q '$M' && ! mountpoint -q '$O'"
check "khfs2-12.2 khfs printed nothing on stderr (no sanitizer report either)" test ! -s "$D/khfs.err"
[ -s "$D/khfs.err" ] && head -30 "$D/khfs.err" | sed 's/^/# /' >&3
done_testing

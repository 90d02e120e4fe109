# exec-*: khd's exec verb and `khctl exec` (issue 15): a program run inside
# booted nodes, in their namespaces, cgroup and restrictions as a child of
# their init would be; its output, input, exit status and CPU times come
# back framed; bad requests are refused with one line; a client that goes
# away takes its processes with it.
. "$(dirname "$0")/lib.sh"
LIB=$(cd "$(dirname "$0")/../lib" && pwd)

start_khd --nodes 6 --no-fabric
export KH_CRED=pw
APP=$D/app.cpio.gz
"$LIB/mkbusybox.sh" "$APP"
B=$(khget -c pw alice 3)
CON=$(head -n1 <<<"$B" | cut -d@ -f1)
BB=$(khget -c pw-bob bob 1)
BOBRANK=$(awk '/^nodes:/ {print $2}' <<<"$BB")
x() { khctl exec -c pw alice "$@"; }

# exec-1: refused with one line, nothing changed, nothing run.
rejects "exec-1.1 a node not booted" "^khctl: node 0 is not booted" x -n "$CON" /bin/true
# boot CRED USER BLOCK: load the appliance and boot it, as khdo does.
boot() {
	khdo --socket "$KH_SOCKET" -c "$1" "$2" loadfile '$ramfsaddr' "$APP" <<<"$3" >/dev/null &&
		khdo --socket "$KH_SOCKET" -c "$1" "$2" --until 'appliance up' write 'run kboot' <<<"$3" >/dev/null
}
boot pw alice "$B"
boot pw-bob bob "$BB"
rejects "exec-1.2 another principal's node" "^khctl: node $BOBRANK is not yours$" x -n "$BOBRANK" /bin/true
rejects "exec-1.3 a free node" "^khctl: node 5 is not yours$" x -n 5 /bin/true
rejects "exec-1.4 a wrong credential" "^khctl: wrong credential for 'alice'$" \
	khctl exec -c nope alice -n "$CON" /bin/true
rejects "exec-1.5 a program the appliance lacks" "^khctl: node 0: nosuch: No such file or directory$" \
	x -n "$CON" nosuch arg
rejects "exec-1.6 no program" "missing arguments" x -n "$CON"
rejects "exec-1.7 a node given twice" "node 1 is given twice" x -n 1,1 /bin/true
rejects "exec-1.8 a bad environment entry" "bad environment entry" \
	sh -c "printf 'exec user=alice cred=pw targets=0 argv=true env=NOEQ\n' | socat -t 2 - UNIX-CONNECT:$KH_SOCKET | sed 's/^err [a-z]* /khctl: /' >&2; exit 1"
o=$(x -n 0 sh -c 'ps -o pid,args' 2>&1)
check "exec-1.9 ... and none of the refused programs ran" bash -c "! grep -q 'nosuch\|true' <<<\"\$1\"" _ "$o"

# exec-2: inside the node, as a child of its init would be.
same "exec-2.1 the node's UTS namespace (hostname)" "$(x -n 1 hostname)" "$(printf 'kh%s-n1' "$(khctl info | awk 'NR==1 {print $4}')")"
same "exec-2.2 the node's root (the appliance's files)" "$(x -n 1 ls / | tr '\n' ' ')" "bin dev etc init proc sys tmp "
o=$(x -n 1 sh -c 'cat /proc/1/cmdline | tr "\0" " "; echo; echo $$')
same "exec-2.3 the node's PID namespace: its init is PID 1" "$(head -n1 <<<"$o")" "/bin/sh "
check "exec-2.4 ... and the process a small PID in it" test "$(tail -n1 <<<"$o")" -lt 1000
same "exec-2.5 the node's cgroup (and cgroup namespace)" \
	"$(x -n 1 sh -c 'diff /proc/self/cgroup /proc/1/cgroup && echo same')" "same"
same "exec-2.6 the capabilities of the node's init, no more" \
	"$(x -n 1 sh -c 'grep CapBnd /proc/self/status; grep CapBnd /proc/1/status' | uniq | wc -l)" "1"
same "exec-2.7 its own session (setsid)" "$(x -n 1 sh -c 'ps -o sid,pid | awk -v p=$$ "\$2==p && \$1==p" | wc -l')" "1"
same "exec-2.8 KH_RANK and -e variables in its environment" \
	"$(x -n -e FOO=bar "$CON" sh -c 'echo $KH_RANK $FOO $PATH' | sort | tr '\n' ' ')" \
	"0 bar /sbin:/bin:/usr/sbin:/usr/bin 1 bar /sbin:/bin:/usr/sbin:/usr/bin 2 bar /sbin:/bin:/usr/sbin:/usr/bin "
host_pid=""
khctl exec -n -c pw alice 2 sleep 7171 &
xpid=$!
for _ in $(seq 50); do host_pid=$(pgrep -f '^sleep 7171$' | head -n1); [ -n "$host_pid" ] && break; sleep 0.1; done
check "exec-2.9 the process is in the node's cgroup on the host" grep -qE "kh-[0-9a-f]{8}/n2$" "/proc/$host_pid/cgroup"
kill -INT "$xpid"
wait "$xpid"
same "exec-2.10 Ctrl-C of khctl reaches the process (status 130)" "$?" "130"
check "exec-2.11 ... which is gone" bash -c "! pgrep -f '^sleep 7171$'"

# exec-3: output, input, status, times.
o=$(x -n "$CON" sh -c 'echo out-$KH_RANK; echo err-$KH_RANK >&2' 2>"$D/err")
same "exec-3.1 every node's stdout" "$(sort <<<"$o" | tr '\n' ' ')" "out-0 out-1 out-2 "
same "exec-3.2 ... and stderr, apart" "$(sort "$D/err" | tr '\n' ' ')" "err-0 err-1 err-2 "
x -n "$CON" sh -c 'exit $((KH_RANK + 4))'
same "exec-3.3 the exit status of the lowest rank that failed" "$?" "4"
x -n 0 sh -c 'kill -TERM $$'
same "exec-3.4 a process killed by signal N: 128+N" "$?" "143"
o=$(printf 'one\ntwo\n' | x "$CON" sh -c 'tr a-z A-Z | sed "s/^/$KH_RANK:/"')
same "exec-3.5 stdin reaches every node's process" "$(sort <<<"$o" | tr '\n' ' ')" "0:ONE 0:TWO 1:ONE 1:TWO 2:ONE 2:TWO "
yes 0123456789abcdef | head -c 3000000 >"$D/big"
o=$(x 1 cat <"$D/big" | md5sum)
same "exec-3.6 3 MB through stdin and stdout, intact" "$o" "$(md5sum <"$D/big")"
o=$(x -n -t 0 sh -c 'i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done' 2>&1)
check "exec-3.7 -t: rank, status and CPU times of the process" grep -qE '^0 0 [0-9]+ [0-9]+ [0-9]+$' <<<"$o"
check "exec-3.8 ... user time that was really spent" test "$(awk '{print $3}' <<<"$o")" -gt 50

# exec-4: the client leaves: its processes go.
khctl exec -n -c pw alice "$CON" sleep 7272 &
xpid=$!
for _ in $(seq 50); do [ "$(pgrep -fc '^sleep 7272$')" = 3 ] && break; sleep 0.1; done
same "exec-4.1 three processes run" "$(pgrep -fc '^sleep 7272$')" "3"
kill -9 "$xpid"
wait "$xpid" 2>/dev/null
for _ in $(seq 50); do [ "$(pgrep -fc '^sleep 7272$')" = 0 ] && break; sleep 0.1; done
same "exec-4.2 kill -9 of the client kills them" "$(pgrep -fc '^sleep 7272$')" "0"
o=$(printf 'exec user=alice cred=pw targets=0 argv=sleep%%1F7373\nz 1\n' | socat -t 3 - "UNIX-CONNECT:$KH_SOCKET")
same "exec-4.3 a bad frame: one error line, the connection ends" "$o" "ok
err proto unknown frame 'z'"
check "exec-4.4 ... and its process is killed" bash -c "! pgrep -f '^sleep 7373$'"
o=$(printf 'exec user=alice cred=pw targets=0 argv=cat\ni 7 3\nabc' | socat -t 3 - "UNIX-CONNECT:$KH_SOCKET")
same "exec-4.5 input for a node not in the stream is refused" "$o" "ok
err proto no process of node 7 in this stream"
o=$(printf 'exec user=alice cred=pw targets=0 argv=cat\ni * 4\nabc\n' | socat -t 3 - "UNIX-CONNECT:$KH_SOCKET")
same "exec-4.6 the raw stream: o, x, d frames (a half-close ends the input)" "$(sed -E 's/^x 0 0 .*/x 0 0 T/' <<<"$o")" "ok
o 0 4
abc
x 0 0 T
d"
o=$(printf 'exec user=alice cred=pw targets=0 argv=cat\nk 9 7\n' | socat -t 3 - "UNIX-CONNECT:$KH_SOCKET")
same "exec-4.7 a signal for a node not in the stream is refused" "$o" "ok
err proto no process of node 7 in this stream"
o=$( (printf 'exec user=alice cred=pw targets=0,1 argv=sleep%%1F7474\nk 15 1\n'; sleep 1; printf 'k 9\n'; sleep 1) |
	socat -t 3 - "UNIX-CONNECT:$KH_SOCKET")
same "exec-4.8 k SIG RANK signals that node's process alone (k SIG: every one left)" \
	"$(sed -E 's/^(x [0-9]+ [0-9]+) .*/\1/' <<<"$o")" "ok
x 1 143
x 0 137
d"

# exec-5: khd's own state is untouched by all this; the nodes still run.
same "exec-5.1 the nodes are still running" "$(khctl nodes --user alice | awk '{print $2}' | sort -u)" "running"
node_reset_out=$(khctl reset -c pw alice "$CON" 2>&1)
rejects "exec-5.2 after a reset the nodes are not booted" "^khctl: node 0 is not booted" x -n "$CON" true

done_testing

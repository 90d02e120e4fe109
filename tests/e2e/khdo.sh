# khdo-*: khdo (issue 5) driven as a principal does, with the control block
# piped in: every function through khd's socket, loads acknowledged by every
# node and checked by crc32 on every node, failures named by node, bad
# input refused with one line and nothing sent.  khdo-6 takes the ssh way
# through a stand-in for ssh (tests/e2e/compat.sh uses the real one);
# khdo-7 the console's side of the original's two-session load.
. "$(dirname "$0")/lib.sh"
LIB=$(cd "$(dirname "$0")/../lib" && pwd)

D=$(mktemp -d /tmp/kh-e2e-XXXXXX)
T_DIRS+=("$D")
export KH_SOCKET=$D/khd.sock
printf 'host kh.test\ntype ct1 mem=256M count=6\ntype tiny mem=16M count=2\n' >"$D/khd.conf"
restart_khd --load-timeout 1500
export KH_CRED=pw KH_USER=alice
unset KH_CHANCRED KH_SSH

APP=$D/app.cpio.gz
"$LIB/mkbusybox.sh" "$APP"
SIZE=$(stat -c %s "$APP")
B=$(khget -c pw alice 2)
CON=$(head -n1 <<<"$B" | cut -d@ -f1)
store() { khctl info | awk '/^store/ {print $3}'; }
# crc FILE: its CRC-32 (zlib's, as crc32 prints it), from gzip's trailer
crc() { gzip -1 -c "$1" | tail -c8 | head -c4 | od -An -tx4 | tr -d ' \n'; }
# on RANKS CMD: run a monitor command on some nodes of alice's channel
on() { echo "$2" | khcon -c pw alice --prefix -n "$1" --idle 300 "$CON"; }
norm() { sed -E 's/\r//g; s/^(\[[0-9]+\] )(=> )+/\1/'; }

# khdo-1: bad input: one line, a non-zero status, nothing sent.
s0=$(store)
rejects "khdo-1.1 an unknown function" "^khdo: unknown function 'frob'" khdo frob <<<"$B"
rejects "khdo-1.2 nothing on standard input" "no control block on standard input" khdo null </dev/null
rejects "khdo-1.3 not a control block" "no con<C>@HOST line" khdo write x <<<"hello"
rejects "khdo-1.4 a block without its nodes: line" "no nodes: line" khdo write x <<<"$(head -n3 <<<"$B")"
rejects "khdo-1.5 two blocks at once" "more than one control block" khdo write x <<<"$B
$B"
rejects "khdo-1.6 a file that is not there" "/nonexistent.img: No such file or directory" \
	khdo loadramdisk /nonexistent.img <<<"$B"
rejects "khdo-1.7 a directory" "is a directory" khdo loadkernel "$D" <<<"$B"
mkfifo "$D/fifo"
rejects "khdo-1.8 a pipe cannot be loaded (mrw needs the size)" "not a regular file" \
	khdo loadramdisk "$D/fifo" <<<"$B"
rejects "khdo-1.9 loadfile with a bad address" "bad address '1;reset'" khdo loadfile '1;reset' "$APP" <<<"$B"
rejects "khdo-1.10 an unquoted command" "peripcmd takes 1 argument \(quote the command\)" \
	khdo peripcmd echo %ip% <<<"$B"
rejects "khdo-1.11 a bad timeout" "-t takes 1..86400 seconds" khdo -t 0 null <<<"$B"
rejects "khdo-1.12 a channel that does not exist" "no channel con99" \
	khdo write x <<<"$(sed 's/^con[0-9]*@/con99@/' <<<"$B")"
khdo frob <<<"$B" 2>/dev/null
same "khdo-1.13 bad input exits with status 2" "$?" "2"
same "khdo-1.14 ... and nothing reached the nodes" "$(store)" "$s0"
o=$(on 0-1 'printenv bgp_rank' | norm)
check "khdo-1.15 ... which are in their monitors, waiting" grep -q '^\[1\] bgp_rank=1' <<<"$o"

# khdo-2: write, writecon, writefile, readcon.
o=$(khdo write 'printenv bgp_rank' <<<"$B")
same "khdo-2.1 write: every node answers, raw as the original" "$(grep -o 'bgp_rank=[0-9]' <<<"$o" | sort | tr '\n' ' ')" "bgp_rank=0 bgp_rank=1 "
o=$(khdo --prefix writecon 'printenv' 'bgp_rank' <<<"$B" | norm)
check "khdo-2.2 writecon, --prefix: [RANK] lines" grep -q '^\[1\] bgp_rank=1$' <<<"$o"
o=$(khdo --until 'up-' write 'echo up-$bgp_rank' <<<"$B")
rc=$?
same "khdo-2.3 --until waits for every node's line" "$rc $(grep -c 'up-[01]$' <<<"$o")" "0 2"
o=$(khdo -t 1 --until 'nope' write 'echo yes' <<<"$B" 2>&1 >/dev/null)
rc=$?
same "khdo-2.4 ... and names the nodes that did not print it" "$rc $o" "1 khdo: nodes 0-1: did not print 'nope' within 1 s"
o=$(khdo -q write 'setenv khdotest 42' <<<"$B")
same "khdo-2.5 -q prints nothing" "$o" ""
check "khdo-2.6 ... but the line ran" grep -q '^\[1\] khdotest=42' <<<"$(on 0-1 'printenv khdotest' | norm)"
same "khdo-2.7 write with no text sends nothing" "$(khdo write <<<"$B"; echo "rc=$?")" "rc=0"
printf 'echo wf-$bgp_rank\nprintenv khdotest\n' >"$D/cmds"
o=$(khdo --prefix writefile "$D/cmds" <<<"$B" | norm)
check "khdo-2.8 writefile sends the file's lines" grep -q '^\[0\] wf-0$' <<<"$o"
check "khdo-2.9 ... all of them, to every node" grep -q '^\[1\] khdotest=42$' <<<"$o"
attached() { grep -c 'attached (read-only)' "$D/khd.log"; }
n0=$(attached)
khdo readcon <<<"$B" >"$D/readcon.out" 2>&1 &
rpid=$!
for _ in $(seq 100); do [ "$(attached)" -gt "$n0" ] && break; sleep 0.05; done
khdo -q write 'echo via-readcon-$bgp_rank' <<<"$B"
for _ in $(seq 100); do [ "$(grep -c 'via-readcon-' "$D/readcon.out")" -ge 2 ] && break; sleep 0.05; done
check "khdo-2.10 readcon streams what every node prints" grep -q 'via-readcon-1' "$D/readcon.out"
check "khdo-2.11 ... until stopped" kill -TERM "$rpid"
wait "$rpid" 2>/dev/null
check "khdo-2.12 readcon attached read-only" test "$(attached)" -gt "$n0"

# khdo-3: loads: every node acknowledges; crc32 on every node is right.
head -c 4096 /dev/urandom >"$D/vmlinux"
mkimage -A x86_64 -O linux -T kernel -C none -a 0 -e 0 -n k -d "$D/vmlinux" "$D/uImage" >/dev/null
o=$(khdo loadkernel "$D/uImage" <<<"$B" 2>&1)
same "khdo-3.1 loadkernel succeeds quietly" "$? $o" "0 "
o=$(khdo --prefix write 'md.l $loadaddr 1' <<<"$B" | norm)
same "khdo-3.2 ... the image is at loadaddr on every node" "$(grep -c '10000000: 27051956' <<<"$o")" "2"
khctl reset -c pw alice "$CON"
s0=$(store)
o=$(khdo loadramdisk "$APP" <<<"$B" 2>&1)
same "khdo-3.3 loadramdisk succeeds quietly" "$? $o" "0 "
same "khdo-3.4 ... the bytes are stored once for both nodes" "$(($(store | tr -dc 0-9) - ${s0//[^0-9]/}))" "$SIZE"
o=$(khdo --prefix write "crc32 \$ramfsaddr $(printf %x "$SIZE")" <<<"$B")
same "khdo-3.5 ... crc32 on every node shows the file's checksum" "$(grep -c "==> $(crc "$APP")" <<<"$o")" "2"
head -c 100000 /dev/urandom >"$D/blob"
o=$(khdo -v loadfile 0x12000000 "$D/blob" <<<"$B")
same "khdo-3.6 loadfile ADDR; -v prints the nodes' answers" "$(grep -c 'Reading 100000 bytes from stdin to store at 0x12000000 ...Done.' <<<"$o")" "2"
o=$(khdo --prefix write "crc32 12000000 $(printf %x 100000)" <<<"$B")
same "khdo-3.7 ... at that address" "$(grep -c "==> $(crc "$D/blob")" <<<"$o")" "2"
check "khdo-3.8 loadfile with a \$variable, as the original" khdo loadfile '$ramfsaddr' "$APP" <<<"$B"
o=$(khdo -t 30 --until 'appliance up on' write 'run kboot' <<<"$B")
same "khdo-3.9 write 'run kboot' --until: every node boots" "$?" "0"
same "khdo-3.10 ... and runs" "$(khctl nodes --user alice | awk '{print $2}' | sort -u)" "running"

# khdo-4: failures are named by node, with the node's reason.
khctl reset -c pw alice 0
s0=$(store)
o=$(khdo -t 2 loadramdisk "$APP" <<<"$B" 2>&1)
rc=$?
check "khdo-4.1 a node that booted cannot load: named" grep -qE '^khdo: node 1: (not in its boot monitor|did not answer)' <<<"$o"
same "khdo-4.2 ... nothing loaded anywhere, status 1" "$rc $(grep -c 'nothing loaded: 1 of 2 nodes' <<<"$o") $(store)" "1 1 $s0"
same "khdo-4.3 ... node 0's memory untouched" "$(on 0 'md.l $ramfsaddr 2' | norm)" "[0] 11000000: 00000000 00000000    ........"
khctl reset -c pw alice 1
s0=$(store)
on 1 'setenv ramfsaddr 1ffffff0' >/dev/null
o=$(khdo loadramdisk "$APP" <<<"$B" 2>&1)
rc=$?
same "khdo-4.4 a node whose RAM cannot hold the load: named, with the numbers" "$rc $o" "1 khdo: node 1: cannot take $SIZE bytes at 0x1ffffff0 (its RAM is 0x10000000 ... 0x1fffffff)
khdo: nothing loaded: 1 of 2 nodes cannot take $APP"
same "khdo-4.5 ... nothing changed" "$(store) $(on 0 'md.l $ramfsaddr 2' | norm)" "$s0 [0] 11000000: 00000000 00000000    ........"
on 1 'setenv ramfsaddr 0x11000000; silence' >/dev/null
o=$(khdo -t 1 loadramdisk "$APP" <<<"$B" 2>&1)
check "khdo-4.6 a node that does not answer: named" grep -q '^khdo: node 1: did not answer within 1 s' <<<"$o"
on 1 'unsilence' >/dev/null
T=$(khget -t tiny -c pw alice 2)
o=$(khdo loadramdisk "$APP" <<<"$T" 2>&1)
rc=$?
same "khdo-4.7 a load too large for the node type: every node named in one line" "$rc $(head -n1 <<<"$o")" \
	"1 khdo: nodes 6-7: cannot take $SIZE bytes at 0x11000000 (its RAM is 0x10000000 ... 0x10ffffff)"
same "khdo-4.8 ... nothing stored" "$(store)" "$s0"

# A stand-in for ssh: the words ssh would carry reach khcon, as khssh does
# behind khd's sshd.  FAKE_SSH_PAUSE=N: pass N bytes, then wait for $D/go.
cat >"$D/ssh" <<'EOF'
#!/bin/bash
printf '%s\n' "$*" >>"$FAKE_DIR/ssh.log"
[ -n "${FAKE_SSH_FAIL:-}" ] && { echo "ssh: connect to host kh.test port 22: Connection refused" >&2; exit 255; }
while [ $# -gt 0 ]; do
	case "$1" in -p | -o | -i | -F | -l) shift 2 ;; -*) shift ;; *) break ;; esac
done
chan=${1%%@*}
shift
[ "${1:-}" = "--" ] && shift
if [ -n "${FAKE_SSH_PAUSE:-}" ]; then
	{ dd bs=65536 count="$FAKE_SSH_PAUSE" iflag=count_bytes status=none; touch "$FAKE_DIR/paused"
	  while [ ! -e "$FAKE_DIR/go" ]; do sleep 0.02; done; cat; } |
		khcon -c pw alice "$@" "$chan"
	exit
fi
exec khcon -c pw alice "$@" "$chan"
EOF
chmod +x "$D/ssh"
export FAKE_DIR=$D
head -c 4194304 /dev/urandom >"$D/big"
FAKE_SSH_PAUSE=1048576 KH_SSH=$D/ssh khdo --ssh loadramdisk "$D/big" <<<"$B" >"$D/o" 2>&1 &
lpid=$!
for _ in $(seq 200); do [ -e "$D/paused" ] && break; sleep 0.02; done
khctl reset -c pw alice 1
touch "$D/go"
wait "$lpid"
rc=$?
o=$(cat "$D/o")
same "khdo-4.9 a node reset in the middle of a load: named" "$rc $o" "1 khdo: node 1: reset during the load
khdo: $D/big did not load on 1 of 2 nodes"
o=$(khdo --prefix write "crc32 \$ramfsaddr $(printf %x 4194304)" <<<"$B")
check "khdo-4.10 ... the other node has the whole load" grep -q "^\[0\] .*==> $(crc "$D/big")" <<<"$o"

# khdo-5: the functions that run commands, with the block's facts.
same "khdo-5.1 concmd: %con%" "$(khdo concmd 'echo %con%' <<<"$B")" "$(head -n1 <<<"$B")"
same "khdo-5.2 peripcmd: %ip% of every node" "$(khdo peripcmd 'echo ip=%ip%' <<<"$B")" \
	"$(awk '/^nodeinfo:/ {print "ip=" $4}' <<<"$B")"
same "khdo-5.3 pernodecmd: %node%" "$(khdo pernodecmd 'echo n=%node%' <<<"$B" | tr '\n' ' ')" "n=0 n=1 "
X=$(khget -x -i -c pw alice 1)
same "khdo-5.4 pernetcmd: %net% and %if% of every domain" "$(khdo pernetcmd 'echo %net% %if%' <<<"$X")" \
	"External eth0
Internal eth1
3 eth2"
same "khdo-5.5 cmd: CMD CHANNEL 'RANKS' 'NETS', as the original" "$(khdo cmd 'printf "<%s>\n"' <<<"$X")" \
	"<$(head -n1 <<<"$X")>
<$(sed -n 's/^nodes: //p' <<<"$X")>
<External Internal 3>"
khdo concmd 'exit 3' <<<"$B"
same "khdo-5.6 a command's exit status is khdo's" "$?" "3"
khdo pernodecmd 'test %node% -ne 0' <<<"$B"
same "khdo-5.7 ... the last failure's, for per-node commands" "$?" "1"
same "khdo-5.8 null checks the block and does nothing" "$(khdo null <<<"$B"; echo "rc=$?")" "rc=0"
evil="con2@kh.test
nodeinfo: 0 u x;>$D/pwned
nodes: 0"
o=$(khdo peripcmd 'echo %ip%' <<<"$evil")
same "khdo-5.9 placeholders are quoted: a block cannot inject commands" "$o $([ -e "$D/pwned" ] && echo pwned || echo safe)" "x;>$D/pwned safe"

# khdo-6: the ssh way (KH_SSH: the stand-in above).
rm -f "$D/ssh.log"
o=$(KH_SSH=$D/ssh khdo --ssh --prefix write 'printenv bgp_rank' <<<"$B" | norm)
check "khdo-6.1 write over ssh" grep -q '^\[1\] bgp_rank=1' <<<"$o"
same "khdo-6.2 ... ssh con<C>@HOST, khcon's options after --" "$(tail -n1 "$D/ssh.log")" "-T $(head -n1 <<<"$B") -- --prefix -n 0-1"
P=$(sed '2a ssh-port: 2222' <<<"$B")
KH_SSH=$D/ssh khdo --ssh -q write 'true' <<<"$P"
same "khdo-6.3 the block's ssh-port: goes to ssh -p" "$(tail -n1 "$D/ssh.log")" "-T -p 2222 $(head -n1 <<<"$B") -- -n 0-1"
khctl reset -c pw alice "$CON"
check "khdo-6.4 a load over ssh" env KH_SSH="$D/ssh" khdo --ssh loadramdisk "$APP" <<<"$B"
o=$(khdo --prefix write "crc32 \$ramfsaddr $(printf %x "$SIZE")" <<<"$B")
same "khdo-6.5 ... crc32 on every node is right" "$(grep -c "==> $(crc "$APP")" <<<"$o")" "2"
o=$(KH_SSH=$D/ssh timeout 10 khdo --ssh readcon <<<"$B")
same "khdo-6.6 readcon over ssh is read-only" "$(tail -n1 "$D/ssh.log")" "-T $(head -n1 <<<"$B") -- --ro"
o=$(FAKE_SSH_FAIL=1 KH_SSH=$D/ssh khdo --ssh write 'true' <<<"$B" 2>&1)
same "khdo-6.7 ssh failing: one line with ssh's reason, status 1" "$? $o" "1 khdo: ssh $(head -n1 <<<"$B") failed: ssh: connect to host kh.test port 22: Connection refused"
n=$(wc -l <"$D/ssh.log")
KH_CRED='' KH_SSH=$D/ssh khdo -q write true <<<"$B"
same "khdo-6.8 without credentials khdo takes ssh" "$(wc -l <"$D/ssh.log")" "$((n + 1))"
KH_SSH=$D/ssh khdo -q write true <<<"$(sed '1s/@kh.test/@elsewhere.test/' <<<"$B")"
same "khdo-6.9 ... and for a block of another facility's host" "$(tail -n1 "$D/ssh.log")" "-T $CON@elsewhere.test -- -n 0-1"

# khdo-7: the original khdo's load: the mrw line in one session, the bytes
# in the next.  khd keeps the nodes waiting for the bytes in between.
khctl reset -c pw alice "$CON"
printf 'mrw $ramfsaddr %d\n' "$SIZE" | khcon -c pw alice --idle 100 "$CON" >/dev/null
o=$({ cat "$APP"; echo 'echo loaded-$?'; } | khcon -c pw alice --prefix --until 'loaded-' --count 2 --timeout 5 "$CON" | norm)
same "khdo-7.1 mrw line, then the bytes on a new connection: loaded" "$(grep -c 'loaded-0' <<<"$o")" "2"
o=$(khdo --prefix write "crc32 \$ramfsaddr $(printf %x "$SIZE")" <<<"$B")
same "khdo-7.2 ... crc32 on every node is right" "$(grep -c "==> $(crc "$APP")" <<<"$o")" "2"
echo 'mrw $ramfsaddr 100' | khcon -c pw alice --idle 100 "$CON" >/dev/null
sleep 2 # past khd's --load-timeout of 1.5 s
o=$(khdo --prefix --until 'alive' -t 3 write 'echo alive' <<<"$B")
same "khdo-7.3 bytes that never come: the load times out, the nodes take commands again" "$?" "0"
echo 'mrw $ramfsaddr 100' | khcon -c pw alice --idle 100 "$CON" >/dev/null
pid=$(khd_pid "$D")
stop_khd
check "khdo-7.4 khd stops cleanly with nodes waiting for bytes" bash -c "! kill -0 $pid 2>/dev/null"
restart_khd --load-timeout 1500

# khdo-8: credentials.  (A wrong one comes last: it slows alice down.)
o=$(KH_CRED='' KH_USER='' khdo -c pw alice --prefix write 'printenv bgp_rank' <<<"$B" | norm)
check "khdo-8.1 -c CRED USER" grep -q '^\[1\] bgp_rank=1$' <<<"$o"
CC=$(khctl transfer -c pw alice "$(head -n1 <<<"$X" | cut -d@ -f1)" | sed 's/.*credential: //')
o=$(KH_CRED='' khdo -k "$CC" --prefix write 'printenv bgp_rank' <<<"$X" | norm)
check "khdo-8.2 -k CHANCRED opens a transferred channel" grep -qE '^\[[0-9]+\] bgp_rank=' <<<"$o"
o=$(KH_CRED='' KH_CHANCRED=$CC khdo --prefix write 'printenv bgp_rank' <<<"$X" | norm)
check "khdo-8.3 ... so does KH_CHANCRED" grep -qE '^\[[0-9]+\] bgp_rank=' <<<"$o"
rejects "khdo-8.4 ... and the owner's credential no longer does" "transferred" khdo write x <<<"$X"
rejects "khdo-8.5 a wrong credential: one line" "wrong credential|auth" khdo -c wrong alice write x <<<"$B"
done_testing

# compat-*: ssh con<C>@HOST for real (khd's own sshd, the stock OpenSSH
# client on loopback) and the original tools (issue 5).
#  compat-1: our khdo the ssh way: write, load, readcon, a failure named, a
#            key khd does not know refused.
#  compat-2: the ORIGINAL khdo (kittyhawk/scripts, a bash script) loads and
#            boots an appliance from our control block through our sshd.
#            Its licence grants no right to copy it, so it is not in this
#            tree: give its path in KH_ORIG_KHDO, or these checks are
#            skipped (docs/compat.md says how to get it).
. "$(dirname "$0")/lib.sh"
LIB=$(cd "$(dirname "$0")/../lib" && pwd)

if [ ! -x /usr/sbin/sshd ] || ! command -v ssh >/dev/null || ! command -v ssh-keygen >/dev/null; then
	echo "1..0 # SKIP needs openssh-server and openssh-client (scripts/deps.sh)" >&3
	exit 0
fi

D=$(mktemp -d /tmp/kh-e2e-XXXXXX)
T_DIRS+=("$D")
export KH_SOCKET=$D/khd.sock
for _ in 1 2 3 4 5; do
	P=$((20000 + RANDOM % 20000))
	restart_khd --nodes 4 --host localhost --ssh-port "$P" --load-timeout 3000 2>"$D/start.err" && break
	P=
done
if [ -z "$P" ]; then
	nok "compat-0 khd starts with its sshd" "$(cat "$D/start.err")"
	done_testing
	exit 1
fi

# The principal's side: a key, and an ssh configuration naming the port,
# the key and a known_hosts file of the test's own.  The original calls
# plain "ssh", so an ssh first in PATH adds -F (ssh reads ~/.ssh/config
# from the home directory in the password database, not $HOME).
ssh-keygen -q -t ed25519 -N '' -C alice -f "$D/key"
ssh-keygen -q -t ed25519 -N '' -C mallory -f "$D/other"
cat >"$D/ssh_config" <<EOF
Host localhost
	Port $P
	IdentityFile $D/key
	IdentitiesOnly yes
	StrictHostKeyChecking accept-new
	UserKnownHostsFile $D/known_hosts
	LogLevel ERROR
	BatchMode yes
EOF
mkdir "$D/bin"
printf '#!/bin/sh\nexec /usr/bin/ssh -F %s/ssh_config "$@"\n' "$D" >"$D/bin/ssh"
chmod +x "$D/bin/ssh"
PATH=$D/bin:$PATH

APP=$D/app.cpio.gz
"$LIB/mkbusybox.sh" "$APP"
NODES=$(khget -c pw alice 2)
CON=$(head -n1 <<<"$NODES" | cut -d@ -f1)
khctl addkey -c pw alice "$D/key.pub"
# crc FILE: its CRC-32 (zlib's, as crc32 prints it), from gzip's trailer
crc() { gzip -1 -c "$1" | tail -c8 | head -c4 | od -An -tx4 | tr -d ' \n'; }
norm() { sed -E 's/\r//g; s/^(\[[0-9]+\] )(=> )+/\1/'; }
# crcs FILE: how many nodes hold FILE at $ramfsaddr (asked through the socket)
crcs() { KH_CRED=pw KH_USER=alice khdo --prefix write "crc32 \$ramfsaddr $(printf %x "$(stat -c %s "$1")")" <<<"$NODES" | grep -c "==> $(crc "$1")"; }
unset KH_CRED KH_CHANCRED KH_SSH

# compat-1: our khdo, the ssh way (no credential: khdo takes ssh).
same "compat-1.1 the block names the ssh port" "$(sed -n 3p <<<"$NODES")" "ssh-port: $P"
o=$(khdo --prefix -t 60 --until bgp_rank= write 'printenv bgp_rank' <<<"$NODES" | norm)
check "compat-1.2 khdo write over ssh: every node answers" grep -q '^\[1\] bgp_rank=1$' <<<"$o"
check "compat-1.3 khdo loadramdisk over ssh" khdo loadramdisk "$APP" <<<"$NODES"
same "compat-1.4 ... crc32 on every node is right" "$(crcs "$APP")" "2"
n0=$(grep -c '(read-only)' "$D/khd.log")
khdo --prefix readcon <<<"$NODES" >"$D/readcon.out" 2>&1 &
rpid=$!
for _ in $(seq 100); do [ "$(grep -c '(read-only)' "$D/khd.log")" -gt "$n0" ] && break; sleep 0.05; done
khdo -q write 'echo seen-by-readcon' <<<"$NODES"
for _ in $(seq 100); do [ "$(grep -c 'seen-by-readcon' "$D/readcon.out")" -ge 2 ] && break; sleep 0.05; done
check "compat-1.5 khdo readcon over ssh, read-only" grep -q '^\[1\] .*seen-by-readcon' "$D/readcon.out"
kill "$rpid"
wait "$rpid" 2>/dev/null
echo 'setenv ramfsaddr 1ffffff0' | khcon -c pw alice -n 1 --idle 200 "$CON" >/dev/null
o=$(khdo loadramdisk "$APP" <<<"$NODES" 2>&1)
check "compat-1.6 a node that cannot take the load is named over ssh too" grep -q '^khdo: node 1: cannot take' <<<"$o"
echo 'setenv ramfsaddr 11000000' | khcon -c pw alice -n 1 --idle 200 "$CON" >/dev/null
sed "s|$D/key|$D/other|" "$D/ssh_config" >"$D/ssh_config.other"
o=$(KH_SSH="/usr/bin/ssh -F $D/ssh_config.other" khdo write x <<<"$NODES" 2>&1)
rc=$?
same "compat-1.7 a key khd does not know: refused, one line" "$rc $o" "1 khdo: ssh $(head -n1 <<<"$NODES") failed: $(head -n1 <<<"$NODES"): Permission denied (publickey)."

# compat-2: the original khdo.
ORIG=${KH_ORIG_KHDO:-}
if [ -z "$ORIG" ] || [ ! -r "$ORIG" ]; then
	ok "compat-2 the original khdo loads and boots an appliance # SKIP the original khdo is not available: set KH_ORIG_KHDO=/path/to/kittyhawk/scripts/khdo (docs/compat.md)"
	done_testing
	exit
fi
orig() { bash "$ORIG" "$@" <<<"$NODES"; }
khctl reset -c pw alice "$CON"
o=$(orig loadramdisk "$APP" 2>/dev/null)
same "compat-2.1 original khdo loadramdisk: status 0, both monitors say Done." "$? $(grep -o 'Done\.' <<<"$o" | wc -l)" "0 2"
same "compat-2.2 ... crc32 on every node is right" "$(crcs "$APP")" "2"
o=$(orig write "run kboot")
for _ in $(seq 100); do [ "$(khctl nodes --user alice | awk '{print $2}' | sort -u)" = running ] && break; sleep 0.2; done
same "compat-2.3 original khdo write 'run kboot': the nodes boot" "$(khctl nodes --user alice | awk '{print $2}' | sort -u)" "running"
o=$(orig write 'echo hello-from-$(hostname)' | tr -d '\r')
same "compat-2.4 ... and answer it on the channel" "$(grep -c 'hello-from-kh' <<<"$o")" "2"
n0=$(grep -c '(read-only)' "$D/khd.log")
(orig readcon >"$D/orig-readcon.out" 2>&1 &)
for _ in $(seq 100); do [ "$(grep -c '(read-only)' "$D/khd.log")" -gt "$n0" ] && break; sleep 0.05; done
orig write 'echo via-orig-$((6*7))' >/dev/null
for _ in $(seq 100); do [ "$(grep -c 'via-orig-42' "$D/orig-readcon.out")" -ge 2 ] && break; sleep 0.05; done
same "compat-2.5 original readcon (TERM=KHREAD ssh -ttt): read-only, streams" "$(grep -c 'via-orig-42' "$D/orig-readcon.out")" "2"
pkill -f "ssh -F $D/ssh_config -ttt" 2>/dev/null
khctl reset -c pw alice "$CON"
head -c 4096 /dev/urandom >"$D/vmlinux"
mkimage -A x86_64 -O linux -T kernel -C none -a 0 -e 0 -n k -d "$D/vmlinux" "$D/uImage" >/dev/null
orig loadkernel "$D/uImage" >/dev/null 2>&1
o=$(KH_CRED=pw KH_USER=alice khdo --prefix write 'md.l $loadaddr 1' <<<"$NODES")
same "compat-2.6 original khdo loadkernel: the image is at loadaddr" "$(grep -c '10000000: 27051956' <<<"$o")" "2"
printf 'setenv origfile yes\nprintenv origfile\n' >"$D/cmds"
o=$(orig writefile "$D/cmds" 2>/dev/null)
same "compat-2.7 original khdo writefile" "$(grep -c 'origfile=yes' <<<"$o")" "2"
same "compat-2.8 original concmd" "$(orig concmd 'echo %con%')" "$(head -n1 <<<"$NODES")"
same "compat-2.9 original pernodecmd" "$(orig pernodecmd 'echo %node%' | tr '\n' ' ')" "0 1 "
same "compat-2.10 original pernetcmd" "$(orig pernetcmd 'echo %net% %if%')" "$(sed -n 's/^network \(.*\) : \(.*\)/\1 \2/p' <<<"$NODES")"
same "compat-2.11 original cmd" "$(orig cmd 'echo')" "$CON@localhost 0 1 $(sed -n 's/^network \(.*\) : .*/\1/p' <<<"$NODES")"
check "compat-2.12 unis are decimal, as the original's tools expect" grep -qE '^nodeinfo: [0-9]+ [0-9]+ ' <<<"$NODES"
same "compat-2.13 original peripcmd" "$(orig peripcmd 'echo %ip%')" "$(awk '/^nodeinfo:/ {print $4}' <<<"$NODES")"
done_testing

# ssh-*: control channels through khd's own sshd and the stock OpenSSH
# client on loopback (issue 5, item 2): ssh con<C>@127.0.0.1.
. "$(dirname "$0")/lib.sh"

# A port nobody listens on.
free_port() {
	local p
	for _ in $(seq 50); do
		p=$((20000 + RANDOM % 20000))
		ss -Hltn "sport = :$p" | grep -q . || { echo "$p"; return; }
	done
}
# one_line_err DESC PATTERN CMD...: CMD fails, with exactly one stderr line matching.
one_line_err() {
	local d=$1 pat=$2 err rc
	shift 2
	err=$("$@" 2>&1 >/dev/null)
	rc=$?
	if [ $rc -ne 0 ] && [ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ] && grep -qE -- "$pat" <<<"$err"; then
		ok "$d"
	else
		nok "$d" "status $rc, stderr: $err"
	fi
}

if [ ! -x /usr/sbin/sshd ]; then
	nok "ssh-0 openssh-server is installed (scripts/deps.sh)"
	done_testing
	exit
fi

P=$(free_port)
passwd_before=$(sha256sum /etc/passwd /etc/group /etc/shadow)
start_khd --nodes 12 --host kh.test --ssh-port "$P" --ssh-listen 127.0.0.1
K=$D/keys
mkdir -p "$K"
for u in alice bob carol; do ssh-keygen -q -t ed25519 -N '' -C "$u@test" -f "$K/$u"; done
SSHOPTS=(-p "$P" -o IdentitiesOnly=yes -o StrictHostKeyChecking=accept-new
	-o UserKnownHostsFile="$K/known_hosts" -o BatchMode=yes -o LogLevel=ERROR)
# ssh_as KEY CON [words...]: the stock client, as a user would run it.
ssh_as() {
	local key=$1 con=$2
	shift 2
	timeout "${T:-20}" ssh "${SSHOPTS[@]}" -i "$K/$key" "$con@127.0.0.1" "$@"
}
# bg_ssh KEY CON OUT IN [words...]: a client in the background, input from
# IN, output to OUT; $! is the ssh process itself.
bg_ssh() {
	local key=$1 con=$2 out=$3 in=$4
	shift 4
	(exec ssh "${SSHOPTS[@]}" -i "$K/$key" "$con@127.0.0.1" "$@" <"$in" >"$out" 2>&1) &
}

# ssh-1: khd runs its own sshd, configured for channels only.
check "ssh-1.1 khd --ssh-port starts an sshd listening on the port" \
	bash -c "ss -Hltn 'sport = :$P' | grep -q 127.0.0.1"
check "ssh-1.2 ... and says so in khd.log" grep -q "sshd: listening on 127.0.0.1 port $P" "$D/khd.log"
cfg=$D/ssh/sshd_config
for line in "PasswordAuthentication no" "KbdInteractiveAuthentication no" "PermitRootLogin no" \
	"DisableForwarding yes" "X11Forwarding no" "AllowAgentForwarding no" "PidFile $D/ssh/sshd.pid" \
	"HostKey $D/ssh/host_ed25519_key" "AuthorizedKeysFile none"; do
	check "ssh-1.3 sshd_config: $line" grep -qx "$line" "$cfg"
done
check "ssh-1.4 its own host key, made with ssh-keygen" bash -c "ssh-keygen -l -f $D/ssh/host_ed25519_key.pub >/dev/null"
check "ssh-1.5 the pid file names a running sshd" kill -0 "$(cat "$D/ssh/sshd.pid")"
out=$(khget -c pw alice 3)
con=$(head -n1 <<<"$out" | cut -d@ -f1)
ranks=$(tail -n1 <<<"$out" | cut -d' ' -f2-)
same "ssh-1.6 khget adds ssh-port after the protocol line" "$(sed -n 2,3p <<<"$out")" "protocol: uboot
ssh-port: $P"
same "ssh-1.7 ... and ssh_port to --json" "$(khctl block -c pw alice "$con" --json | jq .ssh_port)" "$P"
check "ssh-1.8 sshd's user list has the channel" grep -q "^$con:x:" "$D/ssh/passwd"
same "ssh-1.9 the host's user database is untouched" "$(sha256sum /etc/passwd /etc/group /etc/shadow)" "$passwd_before"
check "ssh-1.10 the host does not know the channel's user" bash -c "! getent passwd $con"

one_line_err "ssh-1.11 --ssh-port 0 is refused with one line" "--ssh-port takes 1..65535, not '0'" khd -d "$D/x" --ssh-port 0
one_line_err "ssh-1.12 --ssh-port 70000 is refused" "--ssh-port takes 1..65535, not '70000'" khd -d "$D/x" --ssh-port 70000
one_line_err "ssh-1.13 --ssh-port abc is refused" "not 'abc'" khd -d "$D/x" --ssh-port abc
one_line_err "ssh-1.14 a bad --ssh-listen is refused" "numeric IPv4 or IPv6 address" khd -d "$D/x" --ssh-port "$P" --ssh-listen nowhere
B=$(mktemp -d /tmp/kh-e2e-XXXXXX)
T_DIRS+=("$B")
one_line_err "ssh-1.15 a second khd cannot take the port" "--ssh-port $P: the port is in use" \
	khd -d "$B" --nodes 2 --ssh-port "$P"
sleep 0.3 # the failed khd's last breath holds B's lock
khd -d "$B" --nodes 2
same "ssh-1.16 without --ssh-port: no sshd and no ssh-port line" \
	"$(KH_SOCKET=$B/khd.sock khget -c pw z 1 | grep -c ssh-port; pgrep -fc "sshd.*$B/")" "0
0"
stop_khd "$B"

# The "[rank] bgp_rank=N" lines of prefixed output (a monitor prompt left
# from the last command may stand before the text).
tagged() { grep -o '\[[0-9]*\] \(=> \)*bgp_rank=[0-9]*' | sed 's/=> //g' | sort; }

# ssh-2: the channel over ssh: broadcast, merge, modes.
khctl addkey -c pw alice "$K/alice.pub"
out=$(echo version | ssh_as alice "$con")
rc=$?
check "ssh-2.1 a registered key gets in" test $rc -eq 0
same "ssh-2.2 a command reaches every node, the answers merge" "$(grep -c '^U-Boot' <<<"$out")" "3"
out=$(echo 'printenv bgp_rank' | ssh_as alice "$con" prefix)
same "ssh-2.3 prefix: each line tagged with its node" "$(tagged <<<"$out")" \
	"$(for r in $ranks; do echo "[$r] bgp_rank=$r"; done | sort)"
out=$(echo 'printenv bgp_rank' | ssh_as alice "$con" -- --prefix)
same "ssh-2.4 khcon's words after -- work too" "$(tagged <<<"$out" | wc -l)" "3"
r2=$(cut -d' ' -f2 <<<"$ranks")
out=$(echo 'printenv bgp_rank' | ssh_as alice "$con" prefix n "$r2")
same "ssh-2.5 n RANKS: a write to one node only" "$(tagged <<<"$out")" "[$r2] bgp_rank=$r2"
out=$(echo 'printenv bgp_rank' | ssh_as alice "$con" -- -n "$r2")
same "ssh-2.6 ... also as -- -n RANKS" "$(grep -o 'bgp_rank=[0-9]*' <<<"$out")" "bgp_rank=$r2"
# a reader that writes nothing streams until it leaves
bg_ssh alice "$con" "$D/reader.out" /dev/null prefix
rd=$!
bg_ssh alice "$con" "$D/ro.out" /dev/null ro
ro=$!
sleep 1.5 # both attached
echo 'echo ro-marker' >"$D/ro.in"
bg_ssh alice "$con" /dev/null "$D/ro.in" ro
rw=$!
sleep 1.5
kill "$rw" 2>/dev/null
echo 'echo writer-marker' | ssh_as alice "$con" >/dev/null
sleep 1
check "ssh-2.7 a session that writes nothing keeps reading (merged from every node)" \
	test "$(grep -c 'writer-marker' "$D/reader.out")" -eq 3
check "ssh-2.8 ro: reads the channel" test "$(grep -c 'writer-marker' "$D/ro.out")" -eq 3
check "ssh-2.9 ro: what it writes goes nowhere" bash -c "! grep -q ro-marker $D/reader.out"
check "ssh-2.10 the readers are still attached" kill -0 "$rd" "$ro"
kill "$rd" "$ro" 2>/dev/null
wait "$rd" "$ro" 2>/dev/null
one_line_err "ssh-2.11 an unknown word is refused" "khssh: unknown word 'frob'" ssh_as alice "$con" frob

# ssh-3: a reader that stops reading blocks neither the nodes nor the others.
bg_ssh alice "$con" "$D/stalled.out" /dev/null ro
st=$!
bg_ssh alice "$con" "$D/other.out" /dev/null ro
ot=$!
sleep 1.5
kill -STOP "$st"
t0=$(date +%s%N)
printf 'md.b 0x10000000 0x100000\nmd.b 0x10000000 0x100000\necho flood-done\n' |
	T=60 ssh_as alice "$con" until flood-done count 3 >/dev/null
rc=$?
t1=$(date +%s%N)
check "ssh-3.1 30 MB of output while a reader is stopped: the writer finishes" test $rc -eq 0
check "ssh-3.2 ... in under 30 s" test $(((t1 - t0) / 1000000)) -lt 30000
sleep 1
same "ssh-3.3 the other reader got everything" "$(grep -c flood-done "$D/other.out")" "3"
kill -CONT "$st"
sleep 1
echo 'echo after-stall' | ssh_as alice "$con" >/dev/null
sleep 1
check "ssh-3.4 the stopped reader is told what it lost" grep -qa '\[khd: [0-9]* bytes dropped\]' "$D/stalled.out"
same "ssh-3.5 ... and reads on afterwards" "$(grep -ac after-stall "$D/stalled.out")" "3"
kill "$st" "$ot" 2>/dev/null
wait "$st" "$ot" 2>/dev/null

# ssh-4: who gets in.
khget -c pw2 bob 1 >/dev/null
khctl addkey -c pw2 bob "$K/bob.pub"
one_line_err "ssh-4.1 an unregistered key is refused" "Permission denied \(publickey\)" \
	ssh_as carol "$con" </dev/null
one_line_err "ssh-4.2 another principal's key is refused" "Permission denied \(publickey\)" \
	ssh_as bob "$con" </dev/null
err=$(timeout 20 ssh -p "$P" -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile="$K/known_hosts" \
	-o PubkeyAuthentication=no -o PreferredAuthentications=password,keyboard-interactive \
	-o NumberOfPasswordPrompts=1 -o BatchMode=yes "$con@127.0.0.1" true 2>&1 </dev/null)
check "ssh-4.3 password login is refused (only publickey is offered)" grep -q "Permission denied (publickey)" <<<"$err"
one_line_err "ssh-4.4 root cannot log in" "Permission denied" ssh_as alice root </dev/null
one_line_err "ssh-4.5 a channel that does not exist" "Permission denied" ssh_as alice con999 </dev/null
out=$(ssh_as alice "$con" -W 127.0.0.1:"$P" </dev/null 2>&1)
check "ssh-4.6 no forwarding of any kind (-W)" grep -qi "prohibited\|refused\|failed" <<<"$out"
one_line_err "ssh-4.7 no subsystem (sftp)" "subsystem request failed" ssh_as alice "$con" -s sftp </dev/null
one_line_err "ssh-4.8 no other command" "khssh: unknown word '/bin/sh'" ssh_as alice "$con" /bin/sh -c id </dev/null
# The ssh socket itself: only the session's uid opens its channel, only
# with a key that opens it.  (As root, inside sshd's mount namespace.)
sp=$(cat "$D/ssh/sshd.pid")
bobcon=$(khctl nodes --user bob | awk '{print $4}')
uid=$((0x70000000 + ${bobcon#con}))
r=$(printf 'attach key=%s\n' "$(cut -d' ' -f1,2 "$K/alice.pub" | sed 's/ /%20/; s/+/%2B/g; s/=/%3D/g')" |
	nsenter -t "$sp" -m setpriv --reuid="$uid" --regid="$uid" --clear-groups \
		socat -t 2 - UNIX-CONNECT:/run/kittyhawk/khd.sock 2>&1)
same "ssh-4.9 con<C>'s uid with a key of another channel is refused" "$r" "err perm this key does not open $bobcon"
r=$(printf 'authkeys user=%s uid=%d\n' "$con" $((0x70000000 + ${con#con})) |
	nsenter -t "$sp" -m setpriv --reuid="$uid" --regid="$uid" --clear-groups \
		socat -t 2 - UNIX-CONNECT:/run/kittyhawk/khd.sock 2>&1)
check "ssh-4.10 a session cannot ask for keys" grep -q "^err perm" <<<"$r"
check "ssh-4.11 the ssh socket is not reachable from the host" \
	bash -c "! setpriv --reuid=65534 --regid=65534 --clear-groups test -e $D/ssh/pub/khd.sock"
r=$(printf 'ping\n' | socat -t 2 - UNIX-CONNECT:"$D/ssh/pub/khd.sock"; printf 'attach key=x\n' | socat -t 2 - UNIX-CONNECT:"$D/ssh/pub/khd.sock")
same "ssh-4.12 ... and root is no channel's session" "$r" "ok
err perm not a channel's ssh session"

# ssh-5: a transferred channel belongs to the new credential's keys.
t=$(khctl transfer -c pw alice "$con")
cc=${t##* }
one_line_err "ssh-5.1 after transfer the owner's key is refused" "Permission denied" ssh_as alice "$con" </dev/null
one_line_err "ssh-5.2 a wrong channel credential cannot add a key" "wrong credential for channel $con" \
	khctl addkey -k nope "$con" "$K/carol.pub"
check "ssh-5.3 the holder adds a key with khctl addkey -k CHANCRED" khctl addkey -k "$cc" "$con" "$K/carol.pub"
same "ssh-5.4 khctl keys -k lists it" "$(khctl keys -k "$cc" "$con")" "$(cat "$K/carol.pub")"
out=$(echo 'printenv bgp_rank' | ssh_as carol "$con" prefix)
same "ssh-5.5 the new holder's key gets in" "$(grep -c 'bgp_rank=' <<<"$out")" "3"
same "ssh-5.6 the owner's own keys are still its own" "$(khctl keys -c pw alice)" "$(cat "$K/alice.pub")"
stop_khd
restart_khd --ssh-port "$P" --ssh-listen 127.0.0.1
out=$(echo version | ssh_as carol "$con")
same "ssh-5.7 keys and the transfer survive a restart" "$(grep -c '^U-Boot' <<<"$out")" "3"
khctl transfer -c pw alice "$con" >/dev/null
one_line_err "ssh-5.8 a second transfer: the previous holder's key is refused" "Permission denied" \
	ssh_as carol "$con" </dev/null
khctl release -c pw alice "$con"
check "ssh-5.9 release: the channel's user is gone" bash -c "! grep -q '^$con:' $D/ssh/passwd"
one_line_err "ssh-5.10 ... and so is its login" "Permission denied" ssh_as alice "$con" </dev/null

# ssh-6: khd supervises its sshd.
con=$(khget -c pw alice 1 | head -n1 | cut -d@ -f1)
old=$(cat "$D/ssh/sshd.pid")
kill -9 "$old"
for _ in $(seq 100); do
	new=$(cat "$D/ssh/sshd.pid" 2>/dev/null)
	[ -n "$new" ] && [ "$new" != "$old" ] && ss -Hltn "sport = :$P" | grep -q . && break
	sleep 0.05
done
check "ssh-6.1 a dead sshd is restarted" test "$new" != "$old"
check "ssh-6.2 ... and khd.log says so" grep -q "sshd killed by signal 9; restarting" "$D/khd.log"
out=$(echo version | ssh_as alice "$con")
same "ssh-6.3 ... and serves" "$(grep -c '^U-Boot' <<<"$out")" "1"
old=$(cat "$D/ssh/sshd.pid")
kill9_khd
check "ssh-6.4 kill -9 of khd leaves its sshd behind" kill -0 "$old"
restart_khd --ssh-port "$P" --ssh-listen 127.0.0.1
rc=$?
check "ssh-6.5 the next khd starts on the same port" test $rc -eq 0
check "ssh-6.6 ... after stopping the stale sshd" grep -q "stopping pid $old, left by a previous khd" "$D/khd.log"
out=$(echo version | ssh_as alice "$con")
same "ssh-6.7 ... and serves" "$(grep -c '^U-Boot' <<<"$out")" "1"
sp=$(cat "$D/ssh/sshd.pid")
stop_khd
check "ssh-6.8 SIGTERM to khd stops its sshd" bash -c "! kill -0 $sp 2>/dev/null || grep -q '^Z' <(ps -o stat= -p $sp)"
check "ssh-6.9 ... and frees the port" bash -c "! ss -Hltn 'sport = :$P' | grep -q ."
same "ssh-6.10 the host's user database is still untouched" "$(sha256sum /etc/passwd /etc/group /etc/shadow)" "$passwd_before"

done_testing

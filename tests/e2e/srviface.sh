# srviface-*: the service interface reached from nodes (issue 16, item 1):
# a node of the public domain runs khget and khctl against its facility,
# over OpenSSH, with a principal's key and credential; khd tells it where
# (KH_SOCKET in its environment) and logs every request.
. "$(dirname "$0")/lib.sh"

free_port() {
	local p
	for _ in $(seq 50); do
		p=$((20000 + RANDOM % 20000))
		ss -Hltn "sport = :$p" | grep -q . || { echo "$p"; return; }
	done
}

P=$(free_port)
start_khd --nodes 12 --host kh.test --ssh-port "$P" --ssh-listen 127.0.0.1
K=$D/keys
mkdir -p "$K"
for u in alice mallory; do ssh-keygen -q -t ed25519 -N '' -C "$u@test" -f "$K/$u"; done
check "srviface-1.1 khd listens for nodes at the public domain's facility address" \
	grep -q 'service interface: ssh://kh@10.0.47.254' "$D/khd.log"

# The node's programs: the tools of the plain build (what a user puts in
# an appliance), the stock ssh client, alice's key.
NB=$PWD/build/bin
APP=$D/svc.cpio.gz
khappliance -q -o "$APP" busybox ssh -f "$NB/khget=/usr/bin/khget" -f "$NB/khctl=/usr/bin/khctl" -f "$NB/khdo=/usr/bin/khdo" \
	-f "$K/alice=/etc/kh/key" -f "$K/mallory=/etc/kh/badkey" >/dev/null
check "srviface-1.2 the appliance is built" test -s "$APP"

khget -c pw alice 1 >/dev/null
khctl addkey -c pw alice "$K/alice.pub"
khget -c pw2 mallory 1 >/dev/null
khctl addkey -c pw2 mallory "$K/mallory.pub"
blk=$(khget -i -c pw alice 1)
C=$(head -n1 <<<"$blk" | cut -d@ -f1)
R=$(sed -n 's/^nodes: //p' <<<"$blk")
o=$(echo "$blk" | khdo -c pw alice loadramdisk "$APP" 2>&1 && echo "$blk" | khdo -c pw alice --until 'appliance up' write 'run kboot' 2>&1)
check "srviface-1.3 a node of the public domain boots" grep -q 'appliance up' <<<"$o"

run() { node_run pw alice "$C" "$R" "$@"; }
same "srviface-2.1 the node is told where the service interface is" \
	"$(run 'echo $KH_SOCKET' | head -n1)" "ssh://kh@10.0.47.254"
o=$(run 'KH_SSH_KEY=/etc/kh/key khget -c pw alice 2')
check "srviface-2.2 khget in the node allocates two nodes" grep -q '^nodes: ' <<<"$o"
got=$(sed -n 's/^nodes: //p' <<<"$o")
same "srviface-2.3 ... which the facility gave alice" \
	"$(khctl nodes --user alice | awk -v r="$got" 'BEGIN{split(r,a," ");for(i in a)w[a[i]]=1} ($1 in w){print $2, $3}' | sort -u)" \
	"monitor alice"
o=$(run 'KH_SSH_KEY=/etc/kh/key khctl nodes --user alice')
same "srviface-2.4 khctl nodes in the node lists them" "$(grep -c ' alice ' <<<"$o")" "4"
con=$(run 'KH_SSH_KEY=/etc/kh/key khctl nodes --user alice' | awk -v r="${got%% *}" '$1==r{print $4}')
o=$(run "KH_SSH_KEY=/etc/kh/key khctl release -c pw alice $con; echo rc=\$?")
check "srviface-2.5 khctl release in the node gives them back" grep -q 'rc=0' <<<"$o"
same "srviface-2.6 ... and they are free" "$(khctl nodes --user alice | wc -l)" "2"
o=$(run 'KH_SSH_KEY=/etc/kh/key khget -c wrong alice 1; echo rc=$?')
check "srviface-3.1 a wrong credential is refused" grep -q "wrong credential" <<<"$o"
check "srviface-3.1b ... with a failing status" grep -q "rc=1" <<<"$o"
o=$(run 'KH_SSH_KEY=/etc/kh/badkey khget -c pw alice 1; echo rc=$?')
check "srviface-3.2 another principal's key does not act for alice" grep -q "this key is not alice's" <<<"$o"
ssh-keygen -q -t ed25519 -N '' -f "$K/nobody"
o=$(KH_SOCKET=ssh://kh@127.0.0.1:$P KH_SSH_KEY=$K/nobody HOME=$D khget -c pw alice 1 2>&1)
check "srviface-3.3 a key no principal registered does not get in" test $? -ne 0
same "srviface-3.4 nothing was allocated by the refused requests" "$(khctl nodes --user alice | wc -l)" "2"
check "srviface-4.1 khd.log names each request of the node, by key, without its credential" \
	grep -q 'svc: alice get (key SHA256:' "$D/khd.log"
check "srviface-4.2 ... and the refusals" grep -q 'svc: refused alice get: key SHA256:.* is not theirs' "$D/khd.log"
check "srviface-4.3 no credential is in the log" bash -c "! grep -q 'pw' <(grep svc: '$D/khd.log')"
check "srviface-4.4 the relayed connections are logged" grep -q 'srviface: connection from 10.0.32.' "$D/khd.log"

# a node outside the public domain is not told, and cannot reach it
blk2=$(khget -c pw alice 1)
C2=$(head -n1 <<<"$blk2" | cut -d@ -f1)
R2=$(sed -n 's/^nodes: //p' <<<"$blk2")
echo "$blk2" | khdo -c pw alice loadramdisk "$APP" >/dev/null 2>&1
echo "$blk2" | khdo -c pw alice --until 'appliance up' write 'run kboot' >/dev/null 2>&1
same "srviface-5.1 a node outside the public domain has no KH_SOCKET" \
	"$(node_run pw alice "$C2" "$R2" 'echo "[$KH_SOCKET]"' | head -n1)" "[]"
stop_khd
done_testing

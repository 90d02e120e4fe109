# ebbkv_facility-*: ebbkv growing through the facility (issue 16, item 4):
# its door runs in a node of the public domain and a private one; under a
# memcaslap load its NodeAllocator ("kh") asks the facility for a node
# with khget through the service interface, boots ebbkv's node appliance
# on it with khdo, moves a share of the keys there; when the load is over
# it moves them back and releases the node.  No request fails.
. "$(dirname "$0")/lib.sh"

free_port() {
	local p
	for _ in $(seq 50); do
		p=$((20000 + RANDOM % 20000))
		ss -Hltn "sport = :$p" | grep -q . || { echo "$p"; return; }
	done
}
P=$(free_port)
start_khd --nodes 8 --host kh.test --ssh-port "$P" --ssh-listen 127.0.0.1
ssh-keygen -q -t ed25519 -N '' -f "$D/key"
NB=$PWD/build/bin
# the nodes' appliance: ebbkv; the door's: ebbkv, the tools, ssh, the key,
# memcaslap, and the nodes' appliance to boot on the nodes it gets
khappliance -q -o "$D/kvnode.cpio.gz" busybox -f "$NB/ebbkv=/usr/bin/ebbkv" >/dev/null
khappliance -q -o "$D/kvdoor.cpio.gz" busybox ssh memcaslap -f "$NB/ebbkv=/usr/bin/ebbkv" \
	-f "$NB/khget=/usr/bin/khget" -f "$NB/khdo=/usr/bin/khdo" -f "$NB/khctl=/usr/bin/khctl" \
	-f "$D/key=/etc/kh/key" -f "$D/kvnode.cpio.gz=/etc/kh/kvnode.cpio.gz" >/dev/null
check "ebbkv_facility-1.1 the appliances are built" test -s "$D/kvdoor.cpio.gz"

blk=$(khget -i -p 1 -c pw alice 1)
khctl addkey -c pw alice "$D/key.pub"
C=$(head -n1 <<<"$blk" | cut -d@ -f1)
R=$(sed -n 's/^nodes: //p' <<<"$blk")
N=$(awk '/^network [0-9]+ :/ {print $2}' <<<"$blk")
H=$((R + 1))
IP=10.$((N >> 4)).$((((N & 15) << 4) + (H >> 8))).$((H & 255))
echo "$blk" | khdo -c pw alice loadramdisk "$D/kvdoor.cpio.gz" >/dev/null 2>&1
o=$(echo "$blk" | khdo -c pw alice --until 'appliance up' write 'run kboot' 2>&1)
check "ebbkv_facility-1.2 the door's node boots" grep -q 'appliance up' <<<"$o"
run() { node_run pw alice "$C" "$R" "$@"; }
node_bg pw alice "$C" "$R" "( KH_CRED=pw KH_SSH_KEY=/etc/kh/key ebbkv -p 11211 -l 127.0.0.1 -t 1 --msg $IP:7000 --grow 300 --shrink 50 --max-nodes 2 --alloc kh --user alice --appliance /etc/kh/kvnode.cpio.gz --netid $N 2>/tmp/kv.log )"
sleep 1
o=$(run 'memcaslap -s 127.0.0.1:11211 -t 15s -T 1 -c 4 -X 100 -v 0.1 2>&1 | tail -12')
echo "$o" | sed 's/^/# /' >&3
same "ebbkv_facility-2.1 memcaslap: no get missed a key it set" "$(awk '/^get_misses/ {print $2}' <<<"$o")" "0"
same "ebbkv_facility-2.2 memcaslap: no value failed verification" "$(awk '/^verify_failed/ {print $2}' <<<"$o")" "0"
log=$(run 'cat /tmp/kv.log')
echo "$log" | sed 's/^/# /' >&3
check "ebbkv_facility-2.3 it grew through the facility" grep -q "grow: node 1 at 10\.[0-9.]*:7000 serves a share of the keys" <<<"$log"
check "ebbkv_facility-2.4 the node was allocated by the door's key over the service interface" \
	grep -q 'svc: alice get (key SHA256:' "$D/khd.log"
same "ebbkv_facility-2.5 the door still runs" "$(run 'pidof ebbkv >/dev/null && echo yes' | head -n1)" "yes"
for _ in $(seq 60); do grep -q 'shrink: node 1 given back' <<<"$(run 'cat /tmp/kv.log')" && break; sleep 1; done
check "ebbkv_facility-3.1 it shrinks when the load is over" grep -q 'shrink: node 1 given back' <<<"$(run 'cat /tmp/kv.log')"
same "ebbkv_facility-3.2 ... and the node went back to the facility" "$(khctl nodes --user alice | wc -l)" "1"
same "ebbkv_facility-3.3 no request failed" "$(run 'printf "stats\r\nquit\r\n" | nc 127.0.0.1 11211' | tr -d '\r' | awk '$2 == "failed" {print $3}')" "0"
if [ -n "${KV_DEBUG:-}" ]; then
	run 'cat /tmp/kv.log; ps; printf "stats\r\nquit\r\n" | nc 127.0.0.1 11211' >&3
	khctl nodes --user alice >&3
fi
stop_khd
done_testing

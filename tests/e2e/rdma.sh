# rdma-*: the one-sided memory device (issue 12) end to end, as node
# software uses it: nodes boot the rdma appliance, expose regions with
# khrdma, and their peers read, write and use atomics on them; nodes of
# another domain or principal are refused; rmnet, reset, release and the
# node's end revoke from the moment they return; a hostile node scribbles
# over its rings and protocol and reaches nothing it was not granted; the
# bill and the metrics count what moved; an idle device costs no CPU.
. "$(dirname "$0")/lib.sh"
TOP=$(cd "$(dirname "$0")/../.." && pwd)

PORT=$((20000 + RANDOM % 20000))
start_khd --nodes 8 --metrics-port "$PORT"
APP=$D/rdma.cpio.gz
khappliance -q -o "$APP" -r "$TOP/appliances/rdma" \
	-f "$TOP/build/tests/rdmatest=/usr/bin/rdmatest" -f "$TOP/build/examples/counter=/usr/bin/counter"
check "rdma-0.1 the rdma appliance builds (busybox, khrdma, the test helper)" test -s "$APP"

A=$(khget -c pw alice 3)
CON=$(head -n1 <<<"$A" | cut -d@ -f1)
NET=$(awk '/^network/ {print $2}' <<<"$A")
IP0=$(awk '/^nodeinfo: 0 / {print $4}' <<<"$A")
IP2=$(awk '/^nodeinfo: 2 / {print $4}' <<<"$A")
B=$(khget -c pw bob 1) # bob's node 3, in bob's own domain
CONB=$(head -n1 <<<"$B" | cut -d@ -f1)
O=$(khget -p 1 -c pw alice 1) # alice's node 4, in a second domain of hers
CONO=$(head -n1 <<<"$O" | cut -d@ -f1)

boot() { # boot CRED USER CON
	khctl block -c "$1" "$2" "$3" | khdo -c "$1" "$2" loadramdisk "$APP" >/dev/null &&
		khctl block -c "$1" "$2" "$3" | khdo -c "$1" "$2" --until 'appliance up' write 'run kboot' >/dev/null
}
boot pw alice "$CON"
boot pw bob "$CONB"
boot pw alice "$CONO"

# on CON RANK CMD, bg CON RANK CMD: node_run, node_bg (lib.sh) as alice,
# or as bob on bob's channel.
on() {
	local user=alice
	[ "$1" = "$CONB" ] && user=bob
	node_run pw "$user" "$@"
}
bg() { node_bg pw alice "$@"; }
# keyof CON RANK FILE: the key an expose printed into FILE, once it did.
keyof() {
	local k
	for _ in $(seq 50); do
		k=$(on "$1" "$2" "cat $3 2>/dev/null" | awk '/^key / {print $2}')
		[ -n "$k" ] && { echo "$k"; return; }
		sleep 0.1
	done
}

# rdma-1: two nodes of one domain read and write each other's regions.
on "$CON" 0 'dd if=/dev/urandom of=/tmp/data bs=1024 count=1024 2>/dev/null; md5sum /tmp/data >/tmp/sum' >/dev/null
bg "$CON" 0 'khrdma expose eth0 1M --file /tmp/data >/tmp/k0'
K0=$(keyof "$CON" 0 /tmp/k0)
check "rdma-1.1 khrdma expose prints 'key KEY size SIZE'" grep -qE '^0x[0-9a-f]+$' <<<"$K0"
want=$(on "$CON" 0 'cut -d" " -f1 /tmp/sum' | head -n1)
got=$(on "$CON" 1 "khrdma read eth0 $IP0 $K0 0 1048576 | md5sum | cut -d' ' -f1" | head -n1)
same "rdma-1.2 node 1 reads node 0's whole region (by address): the same bytes" "$got" "$want"
got=$(on "$CON" 2 "khrdma read eth0 0 $K0 1000 24 | md5sum | cut -d' ' -f1" | head -n1)
want2=$(on "$CON" 0 "dd if=/tmp/data bs=1 skip=1000 count=24 2>/dev/null | md5sum | cut -d' ' -f1" | head -n1)
same "rdma-1.3 node 2 reads a slice (by rank)" "$got" "$want2"
o=$(on "$CON" 1 "echo 'written by node 1' | khrdma write eth0 $IP0 $K0 4096")
same "rdma-1.4 node 1 writes into node 0's region" "$(tail -n1 <<<"$o")" "status 0"
o=$(on "$CON" 2 "khrdma read eth0 $IP0 $K0 4096 18")
same "rdma-1.5 node 2 reads what node 1 wrote" "$(head -n1 <<<"$o")" "written by node 1"
bg "$CON" 2 'khrdma expose eth0 64K --fill 0 >/tmp/k2'
K2=$(keyof "$CON" 2 /tmp/k2)
o=$(on "$CON" 0 "khrdma fadd eth0 $IP2 $K2 8 5; khrdma fadd eth0 $IP2 $K2 8 5; khrdma cas eth0 $IP2 $K2 8 10 77; khrdma cas eth0 $IP2 $K2 8 10 99")
same "rdma-1.6 fetch-and-add and compare-and-swap give the values before" "$(head -n4 <<<"$o" | tr '\n' ' ')" "0 5 10 77 "
o=$(on "$CON" 1 "khrdma read eth0 $IP2 $K2 8 8 | od -An -tu8 | tr -d ' '")
same "rdma-1.7 ... and leave 77" "$(head -n1 <<<"$o")" "77"
o=$(on "$CON" 1 "counter use eth0 $IP2 $K2")
check "rdma-1.8 docs/rdma.md's example program works between two nodes" \
	grep -q "^board: hello from node 1 (10\." <<<"$o"
check "rdma-1.9 ... and its thousand fetch-and-adds all land" grep -q "^counter: 1000$" <<<"$o"
awk '/^```c counter.c$/ {f=1; next} /^```$/ {f=0} f' "$TOP/docs/rdma.md" >"$D/doc-counter.c"
check "rdma-1.10 the example in docs/rdma.md is examples/rdma/counter.c" cmp -s "$D/doc-counter.c" "$TOP/examples/rdma/counter.c"

# rdma-2: refusals: one line, a non-zero status.
refused() { # DESC PATTERN CON RANK CMD
	local d=$1 pat=$2 o
	o=$(on "$3" "$4" "$5 2>&1")
	if [ "$(tail -n1 <<<"$o")" = "status 0" ]; then
		nok "$d" "it succeeded: $o"
	elif [ "$(sed '$d' <<<"$o" | wc -l)" -ne 1 ] || ! head -n1 <<<"$o" | grep -qE "$pat"; then
		nok "$d" "output: $o"
	else
		ok "$d"
	fi
}
bg "$CON" 0 'khrdma expose eth0 8K --fill 82 --ro >/tmp/kro'
KRO=$(keyof "$CON" 0 /tmp/kro)
refused "rdma-2.1 a write to a read-only region" "^khrdma: remote access error: not permitted" \
	"$CON" 1 "echo x | khrdma write eth0 $IP0 $KRO 0"
refused "rdma-2.2 a read past the region's end" "out of the region's range" "$CON" 1 "khrdma read eth0 $IP0 $KRO 8190 4"
refused "rdma-2.3 an unknown key" "unknown or revoked key" "$CON" 1 "khrdma read eth0 $IP0 0x12345678 0 4"
refused "rdma-2.4 no such interface" "no domain interface eth3" "$CON" 1 "khrdma info eth3"
refused "rdma-2.5 a node of alice's other domain, by rank" "not a member of this domain" \
	"$CONO" 4 "khrdma read eth0 0 $K0 0 4"
refused "rdma-2.6 ... by an address outside its domain" "not a node's address in eth0's domain" \
	"$CONO" 4 "khrdma read eth0 $IP0 $K0 0 4"
refused "rdma-2.7 bob's node, with alice's key" "not a member of this domain" "$CONB" 3 "khrdma read eth0 0 $K0 0 4"
refused "rdma-2.8 a bad command line" "^usage: khrdma" "$CON" 1 "khrdma read eth0"

# rdma-3: revocation takes effect when the revoking call returns.
# stream_check DESC OUT T: every read that succeeded was posted before T
# (ns, when the revoking call returned), some failed after it, and none
# returned wrong bytes.
stream_check() {
	local d=$1 out=$2 t=$3 okn last first
	okn=$(sed -nE 's/.*ok=([0-9]+).*/\1/p' <<<"$out")
	last=$(sed -nE 's/.*last_ok_post=([0-9]+).*/\1/p' <<<"$out")
	first=$(sed -nE 's/.*first_err_post=([0-9]+).*/\1/p' <<<"$out")
	if [ -z "$okn" ] || [ "$okn" -eq 0 ] || grep -q CORRUPT <<<"$out"; then
		nok "$d" "the stream: $out"
	elif [ "$last" -ge "$t" ]; then
		nok "$d" "a read posted $(((last - t) / 1000)) us after the call returned got data: $out"
	elif [ "$first" -eq 0 ] || [ "$first" -gt $((t + 1000000000)) ]; then
		nok "$d" "no failure soon after the call: $out"
	else
		ok "$d"
		echo "# $okn reads got data, the last posted $(((t - last) / 1000)) us before the call returned;" \
			"the first failure posted $(((t - first) / 1000)) us before" >&3
	fi
}
ns_now() { local t=$EPOCHREALTIME; echo "${t/./}000"; }
start_stream() { # CON RANK PEER KEY BYTE
	bg "$1" "$2" "rdmatest stream eth0 $3 $4 200 $5 30 >/tmp/stream"
	for _ in $(seq 50); do
		on "$1" "$2" 'cat /tmp/stream' | grep -q started && break
		sleep 0.1
	done
	sleep 0.3
}
stream_out() { # CON RANK
	for _ in $(seq 100); do
		o=$(on "$1" "$2" 'cat /tmp/stream' | grep '^stream ok=')
		[ -n "$o" ] && { echo "$o"; return; }
		sleep 0.2
	done
}
start_stream "$CON" 1 "$IP0" "$KRO" 82
khctl rmnet -c pw alice "$NET" 0
T=$(ns_now)
stream_check "rdma-3.1 rmnet of the target: reads fail from the moment it returns" "$(stream_out "$CON" 1)" "$T"
khctl addnet -c pw alice "$NET" 0
refused "rdma-3.2 ... and coming back does not bring its keys back" "unknown or revoked key" \
	"$CON" 1 "khrdma read eth0 $IP0 $KRO 0 4"
bg "$CON" 2 'khrdma expose eth0 64K --fill 51 >/tmp/k3'
K3=$(keyof "$CON" 2 /tmp/k3)
start_stream "$CON" 0 "$IP2" "$K3" 51
start_stream "$CON" 1 "$IP2" "$K3" 51
khctl rmnet -c pw alice "$NET" 1
T=$(ns_now)
stream_check "rdma-3.3 rmnet of the requester: its reads fail from the moment it returns" "$(stream_out "$CON" 1)" "$T"
khctl reset -c pw alice 2
T=$(ns_now)
stream_check "rdma-3.4 reset of the target revokes" "$(stream_out "$CON" 0)" "$T"
khctl addnet -c pw alice "$NET" 1
khctl reset -c pw alice 1 2
{ printf 'mrw $ramfsaddr %d\n' "$(stat -c %s "$APP")"; cat "$APP"; echo 'run kboot'; } |
	khcon -c pw alice -n 1-2 --until 'appliance up' --count 2 --timeout 30 "$CON" >/dev/null
bg "$CON" 2 'khrdma expose eth0 64K --fill 7 >/tmp/k2'
K2=$(keyof "$CON" 2 /tmp/k2)
start_stream "$CON" 1 "$IP2" "$K2" 7
printf 'exit\n' | khcon -c pw alice -n 2 --until 'back in the monitor' --timeout 20 "$CON" >/dev/null
T=$(ns_now)
stream_check "rdma-3.5 the node's end (everything in it exited) revokes" "$(stream_out "$CON" 1)" "$T"
printf 'run kboot\n' | khcon -c pw alice -n 2 --until 'appliance up' --timeout 20 "$CON" >/dev/null
R=$(khget -n "$NET" -c pw alice 1)
CONR=$(head -n1 <<<"$R" | cut -d@ -f1)
RR=$(awk '/^nodes:/ {print $2}' <<<"$R")
IPR=$(awk '/^nodeinfo:/ {print $4}' <<<"$R")
boot pw alice "$CONR"
bg "$CONR" "$RR" 'khrdma expose eth0 64K --fill 9 >/tmp/kr'
KR=$(keyof "$CONR" "$RR" /tmp/kr)
start_stream "$CON" 1 "$IPR" "$KR" 9
khctl release -c pw alice "$CONR"
T=$(ns_now)
stream_check "rdma-3.6 release of the target revokes" "$(stream_out "$CON" 1)" "$T"

# rdma-4: a hostile node.  Node 0 holds a secret ('S'); node 1 was granted
# a read-only region ('P') of node 2 and storms the device for 5 s.
bg "$CON" 0 'khrdma expose eth0 64K --fill 83 >/tmp/ks'
KS=$(keyof "$CON" 0 /tmp/ks)
bg "$CON" 2 'khrdma expose eth0 64K --fill 80 --ro >/tmp/kp'
KP=$(keyof "$CON" 2 /tmp/kp)
o=$(on "$CON" 1 "rdmatest storm eth0 $IP2 $KP 5")
s=$(grep "^storm" <<<"$o")
echo "# $s" >&3
check "rdma-4.1 the storm ran (operations completed, contexts ended by the engine)" \
	grep -qE 'ops=[1-9][0-9]* .*contexts_ended=[1-9]' <<<"$s"
check "rdma-4.2 ... its malformed messages and registrations were all refused" grep -q 'refused=11$' <<<"$s"
check "rdma-4.3 ... it read its granted region" grep -qE 'granted_ok=[1-9]' <<<"$s"
check "rdma-4.4 ... and never a byte of the secret" grep -q 'breach=0' <<<"$s"
got=$(on "$CON" 2 "khrdma read eth0 $IP0 $KS 0 65536 | tr -d S | wc -c" | head -n1)
same "rdma-4.5 the secret region is intact" "$got" "0"
got=$(on "$CON" 0 "khrdma read eth0 $IP2 $KP 0 65536 | tr -d P | wc -c" | head -n1)
same "rdma-4.6 the granted read-only region is intact" "$got" "0"
check "rdma-4.7 khd answers" khctl info >/dev/null
o=$(on "$CON" 2 "khrdma read eth0 $IP0 $KS 0 4")
same "rdma-4.8 the device serves the others" "$(head -n1 <<<"$o")" "SSSS"
check "rdma-4.9 khd.log names the node that broke its ring" grep -q "node 1 wrote nonsense into its ring" "$D/khd.log"

# rdma-5: metering and metrics.
sleep 1.5
u=$(khbill usage -c pw alice)
rd=$(awk -v r="rdma-rd:$NET" '$1 == r {print $2}' <<<"$u")
check "rdma-5.1 khbill usage bills the bytes alice's nodes read, per domain (>= 1 MiB)" \
	test "${rd:-0}" -ge 1048576
check "rdma-5.2 ... the bytes they wrote" grep -qE "^rdma-wr:$NET [1-9]" <<<"$u"
check "rdma-5.3 ... and the operations" grep -qE "^rdma-ops:$NET [1-9][0-9]* op$" <<<"$u"
u=$(khbill usage -c pw bob)
check "rdma-5.4 bob's refused attempt is an operation, no bytes" \
	test "$(awk '$1 ~ /^rdma-ops:/ {print $2}' <<<"$u")" = 1 -a -z "$(awk '$1 ~ /^rdma-rd:/' <<<"$u")"
m=$(curl -s "http://127.0.0.1:$PORT/metrics")
check "rdma-5.5 OpenMetrics counts reads" grep -qE '^kh_rdma_operations_total\{op="read"\} [1-9]' <<<"$m"
check "rdma-5.6 ... and bytes" grep -qE '^kh_rdma_bytes_total\{dir="read"\} [1-9]' <<<"$m"

# rdma-6: an idle device costs no CPU (regions exposed, nobody operating).
EP=$(pgrep -f '^kh-rdma-engine' | while read -r p; do
	[ "$(awk '/^PPid/ {print $2}' "/proc/$p/status")" = "$(khd_pid "$D")" ] && echo "$p"; done | head -n1)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
sleep 0.5
c0=$(cpu "$EP")
sleep 2
c1=$(cpu "$EP")
check "rdma-6.1 the idle engine used no CPU in 2 s (ticks: $((c1 - c0)))" test $((c1 - c0)) -le 1

# rdma-7: an engine that dies is replaced at once; every context of the
# old one is gone (its users see the device closed), new ones work.
kill -9 "$EP"
for _ in $(seq 50); do
	EP2=$(pgrep -P "$(khd_pid "$D")" -f '^kh-rdma-engine' | head -n1)
	[ -n "$EP2" ] && [ "$EP2" != "$EP" ] && break
	sleep 0.1
done
check "rdma-7.1 a killed engine is replaced without a request" test -n "$EP2" -a "$EP2" != "$EP"
check "rdma-7.2 ... and khd.log says so" grep -q "rdma: the engine is gone; starting a new one" "$D/khd.log"
refused "rdma-7.3 the old regions are gone with it" "unknown or revoked key" "$CON" 2 "khrdma read eth0 $IP0 $KS 0 4"
bg "$CON" 0 'khrdma expose eth0 4K --fill 88 >/tmp/k7'
K7=$(keyof "$CON" 0 /tmp/k7)
o=$(on "$CON" 2 "khrdma read eth0 $IP0 $K7 0 4")
same "rdma-7.4 a new region on the new engine serves" "$(head -n1 <<<"$o")" "XXXX"
check "rdma-7.5 khd answers" khctl info >/dev/null
EP=$EP2
stop_khd
check "rdma-7.6 the engine stops with khd" bash -c "! kill -0 $EP 2>/dev/null"
done_testing

# adopt_rdma-*: a node's RDMA device outlives khd (issue 18 item 2) as a
# program in a node relies on it: node 0 exposes a region and keeps its
# device context open; node 1 reads it in a loop that runs across a kill -9
# of khd and its restart.  Every read succeeds (the engine serves without
# khd), the region and its key are still good after the restart, the next
# khd has taken over the same engine, and the bill counts exactly the bytes
# read, those read while no khd ran included.  Then a release revokes an
# adopted node's device, and a stop that keeps no node stops the engine.
. "$(dirname "$0")/lib.sh"
TOP=$(cd "$(dirname "$0")/../.." && pwd)

start_khd --nodes 4
APP=$D/rdma.cpio.gz
khappliance -q -o "$APP" -r "$TOP/appliances/rdma"
check "adopt_rdma-0.1 the rdma appliance builds" test -s "$APP"
A=$(khget -c pw alice 2)
CON=$(head -n1 <<<"$A" | cut -d@ -f1)
NET=$(awk '/^network/ {print $2}' <<<"$A")
IP0=$(awk '/^nodeinfo: 0 / {print $4}' <<<"$A")
khctl block -c pw alice "$CON" | khdo -c pw alice loadramdisk "$APP" >/dev/null
khctl block -c pw alice "$CON" | khdo -c pw alice --until 'appliance up' write 'run kboot' >/dev/null
on() { node_run pw alice "$CON" "$@"; }
# the engine of khd $1 (its child)
engine() { pgrep -f '^kh-rdma-engine' | while read -r p; do
	[ "$(awk '/^PPid/ {print $2}' "/proc/$p/status")" = "$1" ] && echo "$p"; done | head -n1; }
# expose RANK FILE ARGS: node RANK exposes a region (khrdma expose ARGS,
# in the background, its line in FILE); prints its key once printed.
expose() {
	local k
	node_bg pw alice "$CON" "$1" "khrdma expose $3 >$2"
	for _ in $(seq 50); do
		k=$(on "$1" "cat $2 2>/dev/null" | awk '/^key / {print $2}')
		[ -n "$k" ] && { echo "$k"; return; }
		sleep 0.1
	done
}
billed_rd() { khbill usage -c pw alice | awk -v r="rdma-rd:$NET" '$1 == r {print $2}'; }

K0=$(expose 0 /tmp/k0 "eth0 64K --fill 7")
check "adopt_rdma-1.1 node 0 exposes a region ($K0)" test -n "$K0"
got=$(on 1 "khrdma read eth0 $IP0 $K0 0 4 | od -An -tu1 | tr -s ' '" | head -n1)
same "adopt_rdma-1.2 node 1 reads it" "$got" " 7 7 7 7"
E1=$(engine "$(khd_pid "$D")")
check "adopt_rdma-1.3 khd runs an RDMA engine ($E1)" test -n "$E1"

# 60 reads of the whole region, 0.1 s apart, across the kill and restart;
# each says in /tmp/reads whether it got every byte right.
on 1 "head -c 65536 /dev/zero | tr '\\000' '\\007' >/tmp/ref" >/dev/null
node_bg pw alice "$CON" 1 "sh -c 'i=0; while [ \$i -lt 60 ]; do i=\$((i+1)); if khrdma read eth0 $IP0 $K0 0 65536 >/tmp/r && cmp -s /tmp/r /tmp/ref; then echo ok; else echo bad; fi >>/tmp/reads; sleep 0.1; done; echo READS-DONE >>/tmp/reads'"
sleep 1
kill9_khd
sleep 2
check "adopt_rdma-2.1 without khd the engine runs on" kill -0 "$E1"
restart_khd
check "adopt_rdma-2.2 the next khd takes over the same engine ($E1)" \
	grep -q "took over the engine an earlier khd left running (pid $E1), with the devices of 2 nodes" "$D/khd.log"
for _ in $(seq 100); do on 1 'cat /tmp/reads' | grep -q READS-DONE && break; sleep 0.2; done
r=$(on 1 'cat /tmp/reads')
same "adopt_rdma-2.3 all 60 reads across the kill succeeded, every byte right" \
	"$(grep -c '^ok$' <<<"$r") $(grep -c READS-DONE <<<"$r")" "60 1"
got=$(on 1 "khrdma read eth0 $IP0 $K0 65532 4 | od -An -tu1 | tr -s ' '" | head -n1)
same "adopt_rdma-2.4 after the restart the region and its key are still good" "$got" " 7 7 7 7"
K1=$(expose 0 /tmp/k1 "eth0 4K --fill 9")
got=$(on 1 "khrdma read eth0 $IP0 $K1 0 2 | od -An -tu1 | tr -s ' '" | head -n1)
same "adopt_rdma-2.5 ... and a region exposed after it is read too" "$got" " 9 9"
# 4 + 60 * 65536 + 4 + 2 bytes, billed once, none lost in the gap.
sleep 1.5
same "adopt_rdma-3.1 the bill counts every byte read, those while no khd ran too" \
	"$(billed_rd)" "$((4 + 60 * 65536 + 4 + 2))"

# adopt_rdma-4: a release revokes an adopted node's device; a stop that
# leaves no node running stops the engine.
khctl release -c pw alice "$CON" >/dev/null
check "adopt_rdma-4.1 a release removes the adopted nodes' device sockets" \
	test ! -e "$D/run/rdma/n0.sock" -a ! -e "$D/run/rdma/n1.sock"
stop_khd
for _ in $(seq 50); do kill -0 "$E1" 2>/dev/null || break; sleep 0.1; done
check "adopt_rdma-4.2 khd's stop stops the engine it took over" bash -c "! kill -0 $E1 2>/dev/null"
check "adopt_rdma-4.3 ... and removes its socket" test ! -e "$D/run/rdma/engine.sock"

# adopt_rdma-5: the processes khd starts and leaves running (spawner, RDMA
# engine, console holder) do not keep the standard streams of whoever
# started khd: a caller reading khd's output through a pipe sees it end.
D2=$(mktemp -d /tmp/kh-e2e-XXXXXX)
T_DIRS+=("$D2")
check "adopt_rdma-5.1 khd -d DIR 2>&1 | cat returns once khd serves" timeout 30 bash -c "khd -d '$D2' --nodes 2 2>&1 | cat"
stop_khd "$D2"

done_testing

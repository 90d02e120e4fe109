# hosts-*: a facility of 3 hosts on this machine (examples/cluster.sh:
# each host a network namespace with its own khagent over a veth
# underlay, the front end khd here with its state in PostgreSQL), used as
# a principal uses one facility: khget with placement, a broadcast load
# and boot across hosts, consoles merged, domains across hosts (and their
# isolation), then an agent killed (its nodes lost, the others untouched),
# restarted (reconciled), the front end killed and restarted (nothing
# lost), and bad configuration; `cluster.sh down` leaves nothing behind.
. "$(dirname "$0")/lib.sh"
export KH_BIN=$BIN
CL=$(mktemp -d /tmp/kh-e2e-cl-XXXXXX)
rmdir "$CL"
export KH_CLUSTER=$CL
cluster() { examples/cluster.sh "$@"; }
trap 'cluster down >/dev/null 2>&1; cleanup' EXIT

APP=$(mktemp -d /tmp/kh-e2e-app-XXXXXX)
T_DIRS+=("$APP")
printf '#!/bin/sh\necho init-running on $(hostname)\nexec sh\n' >"$APP/init"
tests/lib/mkbusybox.sh "$APP/app.cpio" "$APP/init" >/dev/null
SIZE=$(stat -c %s "$APP/app.cpio")
# another appliance (another content) for bob
printf '#!/bin/sh\necho init-running on $(hostname): bob\nexec sh\n' >"$APP/init2"
tests/lib/mkbusybox.sh "$APP/app2.cpio" "$APP/init2" >/dev/null
SIZE2=$(stat -c %s "$APP/app2.cpio")

# hosts-1: up.
o=$(cluster up 3 4 2>&1)
check "hosts-1.1 cluster.sh up 3 prints the KH_SOCKET to use" grep -q "^export KH_SOCKET=$CL/front/khd.sock" <<<"$o"
export KH_SOCKET=$CL/front/khd.sock
TAG=$(cat "$CL/tag")
same "hosts-1.2 khctl info: 3 hosts up, 4 nodes each" \
	"$(khctl info | grep '^host ' | awk '{print $1, $2, $4, $5}')" \
	"host h1 state=up nodes=4
host h2 state=up nodes=4
host h3 state=up nodes=4"
check "hosts-1.3 ... each an agent in its own network namespace" \
	test "$(ip netns list | grep -c "^$TAG-h[123] ")" = 3
check "hosts-1.4 the front end's state is in PostgreSQL" grep -q "^state postgresql:" "$CL/front/khd.conf"

# hosts-2: placement (khget --place; the operator's default here: pack).
c1=$(khget -c pw alice --place spread 3 | head -n1 | cut -d@ -f1)
same "hosts-2.1 khget --place spread 3: one node on each host" \
	"$(khctl nodes --user alice | awk '{print $7}' | sort | tr '\n' ' ')" "h1 h2 h3 "
c2=$(khget -c pw bob 3 | head -n1 | cut -d@ -f1)
same "hosts-2.2 khget 3 (pack, khd.conf's): all on one host" \
	"$(khctl nodes --user bob | awk '{print $7}' | sort -u | wc -l)" "1"
o=$(khget -c pw bob --place nowhere 1 2>&1)
rc=$?
check "hosts-2.3 --place nowhere: one line, non-zero, nothing allocated" \
	test "$rc" -ne 0 -a "$(wc -l <<<"$o")" = 1 -a "$(khctl nodes --user bob | wc -l)" = 3
o=$(khget -c pw carol --place pack 5 2>&1)
check "hosts-2.4 5 nodes packed on hosts of 4: on 2 hosts (the fewest)" \
	test "$(khctl nodes --user carol | awk '{print $7}' | sort -u | wc -l)" = 2
khctl release -c pw carol "$(khctl nodes --user carol | awk '{print $4}' | head -n1)" >/dev/null

# hosts-3: a broadcast load and boot across the hosts.
sent0=$(khctl info | awk '/^host h1 /{for(i=1;i<=NF;i++) if ($i ~ /^sent=/) print substr($i,6)}')
{ printf 'mrw $ramfsaddr %d\n' "$SIZE"; cat "$APP/app.cpio"; echo 'echo loaded-$?'; } |
	khcon -c pw alice --timeout 30 --until loaded-0 --count 3 "$c1" >/dev/null
out=$(echo 'run kboot' | khcon -c pw alice --prefix --timeout 30 --until init-running --count 3 "$c1" | tr -d '\r')
same "hosts-3.1 run kboot: every node's /init runs, on its host" \
	"$(grep -o 'init-running on kh[0-9a-f]*-n[0-9]*' <<<"$out" | sort | awk '{print $3}' | sed 's/.*-n/n/' | tr '\n' ' ')" \
	"$(khctl nodes --user alice | awk '{print "n"$1}' | sort | tr '\n' ' ')"
same "hosts-3.2 khctl nodes: running on h1 h2 h3" \
	"$(khctl nodes --user alice | awk '{print $2, $7}' | sort | tr '\n' ' ')" "running h1 running h2 running h3 "
out=$(echo 'echo hello-$((6*7)) on $(hostname)' | khcon -c pw alice --prefix --timeout 10 --until hello-42 --count 3 "$c1" | tr -d '\r')
same "hosts-3.3 console input broadcast to all three hosts, output merged with ranks" \
	"$(grep -c '^\[[0-9]*\] hello-42 on ' <<<"$out")" "3"
# bob's 3 nodes sit on one host: a load for them crosses to it once.
BH=$(khctl nodes --user bob | awk '{print $7}' | head -n1)
b0=$(khctl info | awk -v h="$BH" '$1=="host" && $2==h {for(i=1;i<=NF;i++) if ($i ~ /^sent=/) print substr($i,6)}')
{ printf 'mrw $ramfsaddr %d\n' "$SIZE2"; cat "$APP/app2.cpio"; echo 'echo loaded-$?'; } |
	khcon -c pw bob --timeout 30 --until loaded-0 --count 3 "$c2" >/dev/null
echo 'run kboot' | khcon -c pw bob --timeout 30 --until init-running --count 3 "$c2" >/dev/null
b1=$(khctl info | awk -v h="$BH" '$1=="host" && $2==h {for(i=1;i<=NF;i++) if ($i ~ /^sent=/) print substr($i,6)}')
d=$((b1 - b0))
check "hosts-3.4 3 nodes on one host booted from a new $SIZE2-byte ramdisk: it crossed once ($d bytes sent)" \
	test "$d" -ge "$SIZE2" -a "$d" -lt $((2 * SIZE2))
b0=$b1
echo 'echo x-$((5*5))' | khcon -c pw bob --timeout 10 --until x-25 --count 3 "$c2" >/dev/null
b1=$(khctl info | awk -v h="$BH" '$1=="host" && $2==h {for(i=1;i<=NF;i++) if ($i ~ /^sent=/) print substr($i,6)}')
d=$((b1 - b0))
check "hosts-3.5 a console line for its 3 nodes crossed once (one frame: $d bytes, < 3 copies)" \
	test "$d" -lt $((3 * 20 + 3 * 12))
: "$sent0"

# hosts-4: domains across hosts, and their isolation.
ranks=($(khctl nodes --user alice | awk '{print $1}'))
ipof() { node_run pw "$1" "$2" "$3" "ip -4 -o addr show eth0" | awk '{print $4}' | cut -d/ -f1 | head -n1; }
ip2=$(ipof alice "$c1" "${ranks[2]}")
o=$(node_run pw alice "$c1" "${ranks[0]}" "ping -c 2 -W 2 $ip2")
check "hosts-4.1 alice's node on h1 pings hers on h3 (one domain over VXLAN)" grep -q "^status 0" <<<"$o"
ip1=$(ipof alice "$c1" "${ranks[1]}")
o=$(node_run pw alice "$c1" "${ranks[2]}" "ping -c 2 -W 2 $ip1")
check "hosts-4.2 ... and h3 reaches h2" grep -q "^status 0" <<<"$o"
bob0=$(khctl nodes --user bob | awk '{print $1}' | head -n1)
o=$(node_run pw bob "$c2" "$bob0" "ping -c 2 -W 1 $ip2")
check "hosts-4.3 bob's node (his own domain) does not reach alice's across hosts" grep -q "^status 1" <<<"$o"
o=$(node_run pw bob "$c2" "$bob0" "arping -c 2 -w 2 -I eth0 $ip2")
check "hosts-4.4 ... not even by ARP" grep -vq "reply from" <<<"$o"

# hosts-4b: a partition: h2's underlay link goes down.  Its lease
# expires (FRONT_LEASE_MS 3 s, pings every 0.5 s): its nodes are lost
# meanwhile; when the link is back the agent's nodes, which ran on, are
# taken back as they were, none given twice.
before=$(khctl nodes)
H2=$(khctl nodes --user alice | awk '$7=="h2"{print $1}')
ip -n "$TAG-u" link set "$TAG-v2" down
t0=$(date +%s%N)
for _ in $(seq 120); do khctl nodes | grep -q "^$H2 lost " && break; sleep 0.05; done
ms=$((($(date +%s%N) - t0) / 1000000))
check "hosts-4b.1 partitioned host: its node lost within the lease bound ($ms ms <= 4000)" \
	test "$(khctl nodes | awk -v r="$H2" '$1==r{print $2}')" = lost -a "$ms" -le 4000
ip -n "$TAG-u" link set "$TAG-v2" up
for _ in $(seq 100); do khctl info | grep -q "^host h2 .*state=up" && break; sleep 0.05; done
check "hosts-4b.2 healed: host h2 up again" grep -q "^host h2 .*state=up" <<<"$(khctl info)"
same "hosts-4b.3 ... every node where it was, none given twice" "$(khctl nodes)" "$before"
out=$(echo 'echo healed-$((6*7))' | khcon -c pw alice --prefix -n "$H2" --timeout 5 --until healed-42 "$c1" | tr -d '\r')
check "hosts-4b.4 ... the node ran on through the partition and answers" grep -q "healed-42" <<<"$out"

# hosts-5: an agent dies: its nodes are lost, the others untouched.
H3=$(khctl nodes --user alice | awk '$7=="h3"{print $1}')
kill -9 "$(cat "$CL/h3/agent.pid")"
t0=$(date +%s%N)
for _ in $(seq 100); do khctl nodes | grep -q "^$H3 lost " && break; sleep 0.05; done
ms=$((($(date +%s%N) - t0) / 1000000))
check "hosts-5.1 killed agent: its node shows lost in khctl nodes (after $ms ms)" \
	grep -q "^$H3 lost alice" <<<"$(khctl nodes)"
check "hosts-5.2 ... khctl info: host h3 state=lost" grep -q "^host h3 .*state=lost" <<<"$(khctl info)"
out=$(echo 'echo alive-$((6*7))' | khcon -c pw alice --prefix --timeout 5 --until alive-42 --count 2 "$c1" | tr -d '\r')
same "hosts-5.3 the nodes on h1 and h2 still run and answer" "$(grep -c 'alive-42' <<<"$out")" "2"
same "hosts-5.4 ... and show running" \
	"$(khctl nodes --user alice | awk '$7!="h3"{print $2}' | sort -u)" "running"
# metering stops at the loss: alice's node time grows by her 2 nodes left,
# not 3 (the lost one is not charged while its host is lost)
nt() { khbill usage -c pw alice --json | jq -r '[.usage[] | select(.resource == "node-time:ct1") | .base] | add // 0'; }
sleep 1.2
n0=$(nt)
t0=$(date +%s%N)
sleep 3
sleep 1.2 # a tick after
n1=$(nt)
el=$((($(date +%s%N) - t0) / 1000000))
dn=$((n1 - n0))
check "hosts-5.6 while h3 is lost its node is not charged: alice's node time grew $dn ms in ~$el ms (2 nodes, not 3)" \
	test "$dn" -ge $((el * 3 / 2 - 1000)) -a "$dn" -le $((el * 5 / 2))
o=$(khget -c pw dave --place spread 3 2>&1)
check "hosts-5.5 nothing is placed on a lost host (spread over the 2 left, or refused)" \
	test "$(khctl nodes --user dave | awk '$7=="h3"' | wc -l)" = 0

# hosts-6: the agent comes back: it reconciles.
ip3=$(awk '/^host h3 /{print $3}' "$CL/front/khd.conf")
nsenter --net="/run/netns/$TAG-h3" setsid "$BIN/khagent" -d "$CL/h3" --listen "$ip3" --key "$CL/key" --name h3 \
	</dev/null >>"$CL/h3/agent.out" 2>&1 &
echo $! >"$CL/h3/agent.pid"
for _ in $(seq 100); do khctl info | grep -q "^host h3 .*state=up" && break; sleep 0.05; done
check "hosts-6.1 a restarted agent: host h3 up again" grep -q "^host h3 .*state=up" <<<"$(khctl info)"
same "hosts-6.2 ... its node, stopped with it, is back in the monitor" \
	"$(khctl nodes | awk -v r="$H3" '$1==r{print $2}')" "monitor"
out=$(echo 'run kboot' | khcon -c pw alice -n "$H3" --timeout 20 --until init-running "$c1" | tr -d '\r')
check "hosts-6.3 ... and boots again there" grep -q "init-running" <<<"$out"

# hosts-7: the front end is killed with -9 and started again (in the
# middle of a CPU burn in alice's node on h1, which has run since hosts-3).
before=$(khctl nodes)
FAC=$(khctl info | awk 'NR==1 {print $4}')
H1=$(khctl nodes --user alice | awk '$7=="h1"{print $1}')
h1cg() { # its CPU by its cgroup, us
	local f
	for f in /sys/fs/cgroup/cpuacct/kh-$FAC/n$H1/cpuacct.usage \
		/sys/fs/cgroup/cpu,cpuacct/kh-$FAC/n$H1/cpuacct.usage /sys/fs/cgroup/kh-$FAC/n$H1/cpu.stat; do
		[ -f "$f" ] || continue
		case $f in
		*cpu.stat) awk '/^usage_usec/ {print $2}' "$f" ;;
		*) echo $(($(cat "$f") / 1000)) ;;
		esac
		return
	done
	echo 0
}
bill() { khbill usage -c pw alice --json | jq -r '[.usage[] | select(.resource == "cpu") | .base] | add // 0'; }
sleep 1.2 # a tick: the bill has caught up
cg0=$(h1cg)
b0=$(bill)
node_bg pw alice "$c1" "$H1" 'e=$(($(date +%s) + 2)); while [ $(date +%s) -lt $e ]; do :; done'
sleep 1
kill -9 "$(head -n1 "$CL/front/khd.lock")"
sleep 0.3
# h1 is out of reach for the new front end's first seconds (its meter
# ticks before h1's agent says what runs there)
ip -n "$TAG-u" link set "$TAG-v1" down
restart() { khd -d "$CL/front" 2>>"$CL/front/khd.err"; }
check "hosts-7.1 khd starts again on the same state" restart
sleep 2.5
ip -n "$TAG-u" link set "$TAG-v1" up
for _ in $(seq 100); do [ "$(khctl info | grep -c 'state=up')" = 3 ] && break; sleep 0.05; done
same "hosts-7.2 ... every host up again" "$(khctl info | grep -c '^host .*state=up')" "3"
same "hosts-7.3 ... khctl nodes as before: nothing lost, the running nodes adopted" "$(khctl nodes)" "$before"
out=$(echo 'echo again-$((6*7))' | khcon -c pw alice --prefix --timeout 10 --until again-42 --count 3 "$c1" | tr -d '\r')
same "hosts-7.4 ... their consoles answer through the new front end" "$(grep -c 'again-42' <<<"$out")" "3"
sleep 2.5 # the burn is over; two ticks of the meter
dcg=$(($(h1cg) - cg0))
db=$(($(bill) - b0))
check "hosts-7.5 ... alice's bill grew by her node's CPU across the kill, none counted twice ($db us, its cgroup $dcg us)" \
	test "$dcg" -ge 500000 -a "$db" -ge $((dcg * 90 / 100)) -a "$db" -le $((dcg * 110 / 100 + 100000))

# hosts-8: bad configuration.
E=$(mktemp -d /tmp/kh-e2e-XXXXXX)
T_DIRS+=("$E")
printf 'host a 10.9.9.9:7405\n' >"$E/khd.conf"
o=$(khd -d "$E" 2>&1)
rc=$?
check "hosts-8.1 host lines without cluster_key: khd stops with one line" \
	test "$rc" -ne 0 -a "$(wc -l <<<"$o")" = 1
check "hosts-8.2 ... naming cluster_key" grep -q cluster_key <<<"$o"
o=$(khagent -d "$E/a" --listen 10.9.9.9:70000 --key "$CL/key" 2>&1)
rc=$?
check "hosts-8.3 khagent --listen with a bad port: one line, exit 2" test "$rc" = 2 -a "$(wc -l <<<"$o")" = 1
head -c 10 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$E/shortkey"
o=$(khagent -d "$E/a" --listen 127.0.0.1:0 --key "$E/shortkey" 2>&1)
rc=$?
check "hosts-8.4 khagent with a key that is not 64 hex digits: one line, exit 2" \
	test "$rc" = 2 -a "$(wc -l <<<"$o")" = 1
# An agent that holds another key is never trusted.
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$E/otherkey"
nsenter --net="/run/netns/$TAG-h3" true # (the namespace is there)
kill "$(cat "$CL/h2/agent.pid")"
for _ in $(seq 100); do kill -0 "$(cat "$CL/h2/agent.pid")" 2>/dev/null || break; sleep 0.05; done
ip2h=$(awk '/^host h2 /{print $3}' "$CL/front/khd.conf")
nsenter --net="/run/netns/$TAG-h2" setsid "$BIN/khagent" -d "$CL/h2x" --listen "$ip2h" --key "$E/otherkey" --name h2 \
	</dev/null >"$E/h2x.out" 2>&1 &
echo $! >"$CL/h2/agent.pid"
sleep 2.5
check "hosts-8.5 an agent with another key: host h2 is not up" grep -q "^host h2 .*state=lost" <<<"$(khctl info)"
check "hosts-8.6 ... the agent refused the front end's proof" grep -q "wrong cluster key" "$CL/h2x/khagent.log"

# A hostile agent (it holds the key): every kind of nonsense ends its link,
# the front end stays up and serves, the host stays out of the facility.
kill "$(cat "$CL/h2/agent.pid")"
for _ in $(seq 100); do kill -0 "$(cat "$CL/h2/agent.pid")" 2>/dev/null || break; sleep 0.05; done
o=$(nsenter --net="/run/netns/$TAG-h2" timeout 60 python3 tests/tools/fakeagent.py "$ip2h" "$CL/key" 2>&1)
same "hosts-8.7 a hostile agent's 8 kinds of bad frames: the front end closes each link" \
	"$(grep -c 'closed by the front end' <<<"$o")" "8"
check "hosts-8.8 ... khd still runs and answers" khctl info
check "hosts-8.9 ... and host h2 is not up" grep -q "^host h2 .*state=lost" <<<"$(khctl info)"

# A hostile front end (it holds the key) against h1's agent: each kind of
# nonsense ends its link; the agent keeps serving, its nodes run on, and the
# real front end takes it back.
FAC=$(khctl info | awk 'NR==1 {print $4}')
ip1h=$(awk '/^host h1 /{print $3}' "$CL/front/khd.conf")
H1=$(khctl nodes --user alice | awk '$7=="h1"{print $1}')
o=$(timeout 60 python3 tests/tools/fakefront.py "$ip1h" "$CL/key" "$FAC" 0 4 2>&1)
same "hosts-8.10 a hostile front end's 10 kinds of bad frames: the agent closes each link" \
	"$(grep -c 'closed by the agent' <<<"$o")" "10"
check "hosts-8.11 ... the agent still runs" kill -0 "$(cat "$CL/h1/agent.pid")"
for _ in $(seq 100); do khctl info | grep -q "^host h1 .*state=up" && break; sleep 0.05; done
out=$(echo 'echo survived-$((6*7))' | khcon -c pw alice --prefix -n "$H1" --timeout 5 --until survived-42 "$c1" | tr -d '\r')
check "hosts-8.12 ... the real front end has it back, and its node answers" grep -q "survived-42" <<<"$out"

# hosts-9: down leaves nothing behind.
cluster down >/dev/null 2>&1
check "hosts-9.1 cluster.sh down: no namespace of the cluster left" test -z "$(ip netns list | grep "^$TAG-")"
check "hosts-9.2 ... no agent, no khd of it running" test -z "$(pgrep -f "$CL" || true)"
check "hosts-9.3 ... no mount under it, and its directory gone" \
	test -z "$(grep " $CL" /proc/mounts)" -a ! -e "$CL"
done_testing

# meter-*: metering and billing end to end (issue 7), driven as a user
# and an operator do: nodes burn CPU and exchange traffic, khbill reads
# the bill, exports and verifies the signed ledger, prices it; khd is
# killed with -9 in the middle of a burn and again in the middle of a
# transfer; the OpenMetrics endpoint is read with a real parser.
. "$(dirname "$0")/lib.sh"
LIB=$(cd "$(dirname "$0")/../lib" && pwd)

PORT=$((20000 + RANDOM % 20000))
start_khd --nodes 8 --metrics-port "$PORT"
FAC=$(khctl info | head -n1 | awk '{print $4}')
APP=$D/app.cpio.gz
# The console hangs up when khd dies; the node lives on (until the next
# khd stops it) when its init is not the shell reading that console.
cat >"$D/init" <<'EOS'
#!/bin/sh
trap "" HUP
echo "appliance up on $(hostname)"
/bin/sh
while :; do sleep 1000; done
EOS
"$LIB/mkbusybox.sh" "$APP" "$D/init"

# alloc USER -> the control block; CON_<USER> and RANK_<USER> are set.
alloc() {
	local u=$1 out
	shift
	out=$(khget "$@" -c "pw-$u" "$u" 1)
	eval "CON_$u=$(head -n1 <<<"$out" | cut -d@ -f1)"
	eval "RANK_$u=$(awk '/^nodes:/ {print $2}' <<<"$out")"
	eval "IP_$u=$(awk '/^nodeinfo:/ {print $4}' <<<"$out")"
}
con() { # con USER SECS UNTIL: the channel until UNTIL was printed
	local u=$1 c
	eval "c=\$CON_$u"
	khcon -c "pw-$u" "$u" --prefix --timeout "$2" --until "$3" "$c" | tr -d '\r'
}
boot() {
	{ printf 'mrw $ramfsaddr %d\n' "$(stat -c %s "$APP")"; cat "$APP"; echo 'run kboot'; } |
		con "$1" 20 "appliance up on" >/dev/null
}
# billed USER RES: the base quantity of RES in USER's totals (0 if none).
billed() {
	khbill usage -c "pw-$1" "$1" --json | jq -r --arg r "$2" '[.usage[] | select(.resource == $r) | .base] | add // 0'
}
# cgcpu RANK: the node cgroup's own CPU counter, in us.
cgcpu() {
	local f
	f=$(find /sys/fs/cgroup -path "*kh-$FAC/n$1/cpuacct.usage" 2>/dev/null | head -n1)
	if [ -n "$f" ]; then echo $(($(cat "$f") / 1000)); return; fi
	f=$(find /sys/fs/cgroup -path "*kh-$FAC/n$1/cpu.stat" 2>/dev/null | head -n1)
	[ -n "$f" ] && awk '/^usage_usec/ {print $2}' "$f"
}
# within A B PCT: |A - B| <= PCT% of B
within() { awk -v a="$1" -v b="$2" -v p="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(b > 0 && d <= b * p / 100) }'; }
tick() { sleep 1.3; } # one sample tick, and a little

# A burn of 3 s of the node's own CPU time (utime+stime of the shell that
# spins, read from its /proc/PID/stat), whatever else the host runs; it
# ignores the hangup a dying khd's console gives it.
cat >"$D/burn" <<'EOS'
sh -c 'trap "" HUP; while :; do read p c s a b e f g h i j k l ut st x </proc/$$/stat; [ $((ut+st)) -ge 300 ] && break; done; echo BURN""ED' &
EOS

alloc alice -i
alloc bob -i
boot alice
boot bob

# meter-1: CPU time is billed from the node's cgroup.
tick
b0=$(billed alice cpu)
c0=$(cgcpu "$RANK_alice")
{ cat "$D/burn"; } | con alice 30 BURNED >/dev/null
tick
b1=$(billed alice cpu)
c1=$(cgcpu "$RANK_alice")
check "meter-1.1 a node burning 3 s of CPU is billed 3 s within 5% ($((b1 - b0)) us)" within $((b1 - b0)) 3000000 5
check "meter-1.2 ... and the bill matches the cgroup's own counter within 5% ($b1 us, cgroup $c1 us)" within "$b1" "$c1" 5
check "meter-1.3 usage prints one line per resource: cpu in seconds" \
	bash -c "khbill usage -c pw-alice alice | grep -qE '^cpu [0-9]+\.[0-9]{2} s$'"
o=$(khbill usage -c pw-alice alice)
check "meter-1.4 ... node-time in total and per node type" grep -qE '^node-time [0-9]+\.[0-9] s$' <<<"$o"
check "meter-1.5 ... console bytes both ways" grep -qE '^console-in [0-9]+ B$' <<<"$o"
check "meter-1.6 ... memory as byte-seconds and its peak" bash -c "grep -qE '^mem [0-9.e]+ B\*s$' <<<'$o' && grep -qE '^mem-peak [0-9]+ B$' <<<'$o'"

# meter-2: traffic between two principals' nodes of one domain (the public
# one) is billed to both, within 1% of the interfaces' own counters.
echo 'nc -l -p 5000 >/dev/null & echo LIS""TENING' | con bob 10 LISTENING >/dev/null
sleep 0.3
echo "dd if=/dev/zero bs=64k count=320 2>/dev/null | nc $IP_bob 5000; echo SE""NT" | con alice 30 SENT >/dev/null
sleep 0.5
# The nodes' own view: eth0 in /proc/net/dev (rx bytes, rx packets, tx bytes, tx packets).
ifc() { echo "grep eth0: /proc/net/dev | tr -s ' :' ' ' | awk '{print \"IF\", \$2, \$3, \$10, \$11}'" | con "$1" 10 "IF " | grep -o 'IF [0-9 ]*' | tail -n1; }
read -r _ arx arxp atx atxp <<<"$(ifc alice)"
read -r _ brx brxp btx btxp <<<"$(ifc bob)"
tick
check "meter-2.1 alice's node sent 20 MiB ($atx B) and is billed net-tx within 1% ($(billed alice net-tx:2) B)" within "$(billed alice net-tx:2)" "$atx" 1
check "meter-2.2 bob's node received it and is billed net-rx within 1% ($(billed bob net-rx:2) B of $brx)" within "$(billed bob net-rx:2)" "$brx" 1
check "meter-2.3 packets too: alice's net-txpk within 1% of $atxp" within "$(billed alice net-txpk:2)" "$atxp" 1
check "meter-2.4 ... bob's net-rxpk within 1% of $brxp" within "$(billed bob net-rxpk:2)" "$brxp" 1
check "meter-2.5 the transfer is all there (>= 20 MiB sent)" test "$atx" -ge 20971520
o=$(khbill usage -c pw-alice alice)
check "meter-2.6 usage shows the total and the per-domain line" bash -c "grep -qE '^net-tx [0-9]+ B$' <<<'$o' && grep -qE '^net-tx:2 [0-9]+ B$' <<<'$o'"

# meter-3: node-time is the time between allocation and release, and the
# release stops everything.
ms() { date +%s%3N; }
a1=$(ms)
alloc carol
a2=$(ms)
sleep 2.2
r1=$(ms)
khctl release -c pw-carol carol "$CON_carol"
r2=$(ms)
nt=$(billed carol node-time)
check "meter-3.1 node-time equals the allocation's time ($nt ms, between $((r1 - a2)) and $((r2 - a1)))" \
	test "$nt" -ge $((r1 - a2)) -a "$nt" -le $((r2 - a1))
before=$(khbill usage -c pw-carol carol --json)
sleep 2.5
same "meter-3.2 after the release nothing more accrues" "$(khbill usage -c pw-carol carol --json)" "$before"

# meter-4: the ledger: an export verifies with the public key alone, and
# any altered, dropped or reordered record is found and named.
khbill export -c pw-alice alice -o "$D/alice.exp"
check "meter-4.1 an export verifies with the facility's public key" bash -c "khbill verify '$D/alice.exp' --key '$D/ledger.pub' | grep -q '^ok: alice'"
check "meter-4.2 ... the key defaults to ledger.pub beside the socket" bash -c "khbill verify '$D/alice.exp' >/dev/null"
same "meter-4.3 the secret key is private to khd" "$(stat -c %a "$D/ledger.key")" "600"
n=$(grep -c '^r ' "$D/alice.exp")
check "meter-4.4 ... and has records ($n)" test "$n" -ge 5
mid=$(grep -n '^r ' "$D/alice.exp" | sed -n "$((n / 2))p" | cut -d: -f1)
seq=$(sed -n "${mid}p" "$D/alice.exp" | awk '{print $3}')
# alter: a quantity of the middle record
sed "${mid}s/node-time:ct1=\([0-9]*\)/node-time:ct1=1\1/" "$D/alice.exp" >"$D/t1"
o=$(khbill verify "$D/t1" 2>&1)
check "meter-4.5 an altered record is named: $o" grep -q "record $((seq)) (seq $seq): hash does not match (altered)" <<<"$o"
# drop it
sed "${mid}d" "$D/alice.exp" >"$D/t2"
o=$(khbill verify "$D/t2" 2>&1)
check "meter-4.6 a dropped record is named: $o" grep -q "seq $seq missing after $((seq - 1)) (dropped)" <<<"$o"
# swap it with the next record
awk -v m="$mid" 'NR == m {keep = $0; next} NR == m + 1 {print; print keep; next} 1' "$D/alice.exp" >"$D/t3"
o=$(khbill verify "$D/t3" 2>&1)
check "meter-4.7 swapped records are found: $o" grep -q "out of order" <<<"$o"
# the last record altered with its hash recomputed does not pass either
last=$(grep -n '^r ' "$D/alice.exp" | tail -n1 | cut -d: -f1)
sed "${last}s/ [0-9a-f]\{64\}$/ $(printf '%064d' 0)/" "$D/alice.exp" >"$D/t4"
o=$(khbill verify "$D/t4" 2>&1)
check "meter-4.8 a forged hash is found: $o" grep -q "record" <<<"$o"
for f in t1 t2 t3 t4; do
	khbill verify "$D/$f" >/dev/null 2>&1 && nok "meter-4.9 verify of a tampered export ($f) exits non-zero"
done
ok "meter-4.9 verify of every tampered export exits non-zero"
head -n -2 "$D/alice.exp" >"$D/t5"
rejects "meter-4.10 a truncated export does not verify" "truncated|not covered|end line" khbill verify "$D/t5"
printf '%064d\n' 7 >"$D/other.pub"
rejects "meter-4.11 another key does not verify it" "key" khbill verify "$D/alice.exp" --key "$D/other.pub"

# meter-5: kill -9 of khd in the middle of a CPU burn loses no second: the
# next khd charges the leftover cgroup up to where it stopped, and the
# node-time goes on without a gap.
tick
khcon -c pw-bob bob --timeout 3 --idle 500 "$CON_bob" <"$D/burn" >/dev/null
sleep 1
kill9_khd
# the burn goes on without khd; wait for it to end, then read its cgroup
prev=-1
for _ in $(seq 100); do
	cur=$(cgcpu "$RANK_bob")
	[ "$cur" = "$prev" ] && break
	prev=$cur
	sleep 0.5
done
cfinal=$(cgcpu "$RANK_bob")
restart_khd --metrics-port "$PORT"
tick
bb=$(billed bob cpu)
check "meter-5.1 after kill -9 the bill has the cgroup's final CPU within 5% ($bb us, cgroup $cfinal us)" within "$bb" "$cfinal" 5
check "meter-5.2 ... which includes the whole burn (>= 3 s)" test "$bb" -ge 2900000
khbill export -c pw-bob bob -o "$D/bob.exp"
check "meter-5.3 bob's export verifies across the restart" bash -c "khbill verify '$D/bob.exp' | grep -q '^ok: bob'"
gaps=$(awk '$1 == "r" { if (seen && $4 != t1) g++; t1 = $5; seen = 1 } END { print g + 0 }' "$D/bob.exp")
same "meter-5.4 node-time is continuous: each record starts where the last ended" "$gaps" "0"
span=$(awk '$1 == "r" { if (!s) s = $4; e = $5 } END { print e - s }' "$D/bob.exp")
nt=$(awk '$1 == "r" { for (i = 6; i < NF; i++) if ($i ~ /^node-time:/) { split($i, a, "="); t += a[2] } } END { print t }' "$D/bob.exp")
same "meter-5.5 ... and adds up to the whole time since allocation" "$nt" "$span"
check "meter-5.6 the restart logged what it charged" grep -q "meter: charged .* nodes" "$D/khd.log"

# meter-6: who sees what.
rejects "meter-6.1 a principal cannot see another's usage" "credential" khbill usage -c pw-alice bob
rejects "meter-6.2 ... nor export another's ledger" "credential" khbill export -c pw-alice bob
rejects "meter-6.3 ... nor everyone's" "operator" khbill usage --all -c pw-alice
o=$(khbill usage --operator --all)
check "meter-6.4 the operator sees everyone's usage" bash -c "grep -q '^alice cpu' <<<'$o' && grep -q '^bob cpu' <<<'$o' && grep -q '^carol node-time' <<<'$o'"
check "meter-6.5 ... and any one principal's" bash -c "khbill usage --operator bob | grep -q '^cpu'"
chmod 711 "$D"
chmod 666 "$KH_SOCKET"
if command -v setpriv >/dev/null; then
	o=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$BIN/khbill" usage --operator --all 2>&1)
	check "meter-6.6 operator rights need uid 0 or khd's: $o" grep -q "operator rights need uid 0" <<<"$o"
fi
chmod 660 "$KH_SOCKET"
chmod 700 "$D"

# meter-7: bad inputs: one line, non-zero, nothing changed.
rejects "meter-7.1 a bad time" "invalid time" khbill usage -c pw-alice alice --from yesterday
rejects "meter-7.2 from after to" "before" khbill usage -c pw-alice alice --from 2000 --to 1000
rejects "meter-7.3 an unknown principal (operator)" "unknown principal" khbill usage --operator nobody
rejects "meter-7.4 a wrong credential" "wrong credential" khbill usage -c nope alice
rejects "meter-7.5 verify of a missing file" "No such file" khbill verify "$D/none.exp"
rejects "meter-7.6 export into a missing directory" "No such file" khbill export -c pw-alice alice -o "$D/no/dir/x"
rejects "meter-7.7 invoice without a plan" "plan" khbill invoice -c pw-alice alice
printf 'currency EUR\nprice cpu lots per h\n' >"$D/bad.conf"
rejects "meter-7.8 invoice with a bad plan names its line" "bad.conf:2" khbill invoice -c pw-alice alice --plan "$D/bad.conf"
rejects "meter-7.9 an unknown command" "unknown command" khbill frob
o=$(send $'usage user=alice cred=pw-alice from=x\n')
check "meter-7.10 the protocol refuses a bad time too" grep -q '^err badarg' <<<"$o"
o=$(send $'usage all=1 operator=1 user=alice\n')
check "meter-7.11 ... and a principal with all" grep -q '^err badarg' <<<"$o"

# meter-8: usage over a period and invoices.
now=$(date +%s)
same "meter-8.1 usage of a period before any use is empty" "$(khbill usage -c pw-alice alice --from 2001-01-01 --to 2001-01-02)" ""
t1=$(khbill usage -c pw-alice alice --json | jq -c '[.usage[] | select(.resource == "cpu")]')
t2=$(khbill usage -c pw-alice alice --from 0 --to $((now + 100)) --json | jq -c '[.usage[] | select(.resource == "cpu")]')
same "meter-8.2 usage over all time equals the running totals" "$t2" "$t1"
cat >"$D/prices.conf" <<'EOF'
currency EUR
price cpu 50000 per h
price node-time 10000 per h
price net-tx 20000 per GB
EOF
o=$(khbill invoice -c pw-alice alice)
check "meter-8.3 an invoice from the facility's plan (prices.conf beside the socket)" grep -qi 'total' <<<"$o"
o=$(khbill invoice -c pw-alice alice --plan "$D/prices.conf" --csv)
check "meter-8.4 ... as CSV" grep -q '^item,resource,quantity,unit,.*,amount,currency$' <<<"$(head -n1 <<<"$o" | tr -d '\r')"
o=$(khbill invoice -c pw-alice alice --plan "$D/prices.conf" --json)
check "meter-8.5 ... as JSON, whose total is the sum of its lines" \
	bash -c "jq -e '(.lines | map(.amount_micro) | add) == .total_micro and .total_micro > 0' <<<'$o' >/dev/null"

# meter-8.6: a clean stop and start: the nodes stay allocated while khd
# is down, and that time is charged, without a gap.
stop_khd
sleep 1
restart_khd --metrics-port "$PORT"
tick
khbill export -c pw-bob bob -o "$D/bob2.exp"
gaps=$(awk '$1 == "r" { if (seen && $4 != t1) g++; t1 = $5; seen = 1 } END { print g + 0 }' "$D/bob2.exp")
span=$(awk '$1 == "r" { if (!s) s = $4; e = $5 } END { print e - s }' "$D/bob2.exp")
nt=$(awk '$1 == "r" { for (i = 6; i < NF; i++) if ($i ~ /^node-time:/) { split($i, a, "="); t += a[2] } } END { print t }' "$D/bob2.exp")
same "meter-8.6 after a stop and a start bob's node-time has no gap" "$gaps $nt" "0 $span"

# meter-9: OpenMetrics.
curl -sf "http://127.0.0.1:$PORT/metrics" >"$D/metrics.txt"
same "meter-9.1 the exposition ends with # EOF" "$(tail -n1 "$D/metrics.txt")" "# EOF"
ct=$(curl -sfI "http://127.0.0.1:$PORT/metrics" | tr -d '\r' | awk -F': ' 'tolower($1) == "content-type" {print $2}')
same "meter-9.2 ... as application/openmetrics-text" "$ct" "application/openmetrics-text; version=1.0.0; charset=utf-8"
PY=/usr/bin/python3
if $PY -c 'import prometheus_client.openmetrics.parser' 2>/dev/null; then
	o=$($PY - "$D/metrics.txt" <<'EOF'
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
nodes = {}
usage = {}
for fam in text_string_to_metric_families(open(sys.argv[1]).read()):
    for s in fam.samples:
        if s.name == "kh_nodes":
            nodes[s.labels["state"]] = nodes.get(s.labels["state"], 0) + s.value
        if s.name == "kh_usage_total" and s.labels["resource"] == "cpu":
            usage[s.labels["principal"]] = s.value
print("nodes", int(sum(nodes.values())), "free", int(nodes.get("free", 0)))
print("cpu", " ".join("%s=%.2f" % kv for kv in sorted(usage.items())))
EOF
)
	check "meter-9.3 the prometheus_client OpenMetrics parser reads it: all 8 nodes" grep -q '^nodes 8 ' <<<"$o"
	check "meter-9.4 ... with each principal's CPU" grep -qE '^cpu alice=[0-9.]+ bob=[0-9.]+' <<<"$o"
else
	ok "meter-9.3 # skip python3-prometheus-client not installed"
	ok "meter-9.4 # skip python3-prometheus-client not installed"
fi
D2=$(mktemp -d /tmp/kh-e2e-XXXXXX)
T_DIRS+=("$D2")
o=$(khd -d "$D2" --nodes 1 --metrics-port "$PORT" 2>&1)
rc=$?
check "meter-9.5 a metrics port already taken stops khd at start, with one line: $o" \
	test "$rc" -ne 0 -a "$(wc -l <<<"$o")" -eq 1
check "meter-9.6 ... naming the port" grep -q "port $PORT" <<<"$o"
o=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/nothing")
same "meter-9.7 other paths are 404" "$o" "404"

# meter-10: kill -9 of khd in the middle of a transfer between two nodes
# of one principal's domain loses no byte and no packet.  The dead khd's
# fabric namespace stays pinned at DIR/run/fabric.net, so the nodes'
# interfaces live on with their processes; the next khd reads them before
# it stops the nodes and charges the difference from the baselines stored
# with the last tick.  What is compared: the two nodes' eth0 counters as
# the kernel keeps them in each node's own network namespace (read from
# the host with nsenter, /proc/net/dev), summed, against dave's per-domain
# totals.  Both come from zero at the allocation, so they must be equal.
MiB30=31457280
out=$(khget -c pw-dave dave 2)
CON_dave=$(head -n1 <<<"$out" | cut -d@ -f1)
NET=$(awk '/^network / {print $2; exit}' <<<"$out")
read -r RA RB <<<"$(awk '/^nodes:/ {print $2, $3}' <<<"$out")"
IPB=$(awk -v r="$RB" '$1 == "nodeinfo:" && $2 == r {print $4}' <<<"$out")
{ printf 'mrw $ramfsaddr %d\n' "$(stat -c %s "$APP")"; cat "$APP"; echo 'run kboot'; } |
	khcon -c pw-dave dave --timeout 20 --until "appliance up on" --count 2 "$CON_dave" >/dev/null
declare -A PROCS
for r in "$RA" "$RB"; do
	PROCS[$r]=$(find /sys/fs/cgroup -path "*kh-$FAC/n$r/cgroup.procs" 2>/dev/null | head -n1)
done
# hostifc RANK: the node's eth0 counters, read from the host inside the
# node's network namespace (that of a process in its cgroup): rx bytes,
# rx packets, tx bytes, tx packets.
hostifc() {
	local p
	p=$(head -n1 "${PROCS[$1]}")
	nsenter -t "$p" -n cat /proc/net/dev | sed 's/:/ /' | awk '$1 == "eth0" {print $2, $3, $10, $11}'
}
# Both ends ignore the hangup of the console when khd dies; the listener
# reads from a pipe, not from the console (which ends with khd).
echo "sh -c 'trap \"\" HUP; sleep 100000 | nc -l -p 5000 >/dev/null' & echo LIS\"\"TENING" |
	khcon -c pw-dave dave -n "$RB" --timeout 10 --until LISTENING "$CON_dave" >/dev/null
sleep 0.3
# 30 MiB in 1 MiB steps, 0.2 s apart: about 7 s.
echo "sh -c 'trap \"\" HUP; for i in \$(seq 30); do dd if=/dev/zero bs=64k count=16 2>/dev/null; usleep 200000; done | nc $IPB 5000' & echo STA\"\"RTED" |
	khcon -c pw-dave dave -n "$RA" --timeout 10 --until STARTED "$CON_dave" >/dev/null
for _ in $(seq 100); do
	read -r brx _ <<<"$(hostifc "$RB")"
	[ "${brx:-0}" -ge 4194304 ] && break
	sleep 0.1
done
kill9_khd
read -r krx _ <<<"$(hostifc "$RB")"
check "meter-10.1 khd was killed while the transfer ran (node $RB had received $krx B of $MiB30)" \
	test "${krx:-0}" -gt 0 -a "${krx:-0}" -lt "$MiB30"
check "meter-10.2 after the kill -9 the fabric's namespace is still pinned at run/fabric.net" \
	test "$(stat -f -c %T "$D/run/fabric.net" 2>/dev/null)" = nsfs
# the transfer goes on without khd; wait until both nodes are quiet
prev=
for _ in $(seq 60); do
	cur="$(hostifc "$RA") $(hostifc "$RB")"
	[ "$cur" = "$prev" ] && break
	prev=$cur
	sleep 1
done
read -r arx arxp atx atxp <<<"$(hostifc "$RA")"
read -r brx brxp btx btxp <<<"$(hostifc "$RB")"
check "meter-10.3 the whole transfer arrived while khd was down ($brx B at node $RB)" test "$brx" -ge "$MiB30"
restart_khd --metrics-port "$PORT"
# exact: the difference printed, and 0.1% allowed
net() { # net N RES WANT
	local b
	b=$(billed dave "$2:$NET")
	check "meter-10.$1 dave is billed $2:$NET $b for the nodes' counters $3 (off by $((b - $3)))" within "$b" "$3" 0.1
}
net 4 net-tx $((atx + btx))
net 5 net-rx $((arx + brx))
net 6 net-txpk $((atxp + btxp))
net 7 net-rxpk $((arxp + brxp))
o=$(grep "meter: charged" "$D/khd.log" | tail -n1)
check "meter-10.8 the restart read the interfaces of both nodes left running: $o" \
	grep -qE " [1-9][0-9]* B of traffic .*interfaces of 2 left running" <<<"$o"
khbill export -c pw-dave dave -o "$D/dave.exp"
check "meter-10.9 dave's export verifies across the restart" bash -c "khbill verify '$D/dave.exp' | grep -q '^ok: dave'"

stop_khd
check "meter-10.10 after a clean stop the pin is gone" test ! -e "$D/run/fabric.net"
done_testing

# policy-*: policy modules where khd decides on allocation (issue 15 item 3,
# docs/policy.md): protective limits per principal from khd.conf, each
# refusing with its reason and leaving nothing allocated, held through a
# restart; khctl policy shows them; a bad policy line stops khd.
. "$(dirname "$0")/lib.sh"

D=$(mktemp -d /tmp/kh-e2e-XXXXXX)
T_DIRS+=("$D")
export KH_SOCKET=$D/khd.sock
cat >"$D/khd.conf" <<'EOF'
host pol.test
policy limits single
limits * max_nodes=6 max_channels=2
limits bob max_nodes=none max_channels=none
limits erin max_rate=6/m burst=1
limits carol max_rate=1/h
EOF
restart_khd --nodes 40 --no-fabric --no-rdma

# policy-1: the operator sees the chain and the limits.
same "policy-1.1 khctl info names the policy chain" "$(khctl info | grep ^policy)" "policy limits single"
same "policy-1.2 khctl policy: the chain, the default, the overrides, the host" "$(khctl policy)" \
	"policy limits single
limits * max_nodes=6 max_channels=2 max_rate=none
limits bob max_nodes=none max_channels=none max_rate=none nodes=0 channels=0
limits erin max_nodes=6 max_channels=2 max_rate=6/m burst=1 nodes=0 channels=0 tokens=1.0
limits carol max_nodes=6 max_channels=2 max_rate=1/h burst=1 nodes=0 channels=0 tokens=1.0
single host pol.test"
same "policy-1.3 khctl policy --json" "$(khctl policy --json | jq -c '[.modules[].name, .modules[0].state.default.max_nodes]')" \
	'["limits","single",6]'

# policy-2: most nodes held.
check "policy-2.1 alice gets 4 nodes" bash -c "khget -c pw alice 4 >/dev/null"
rejects "policy-2.2 alice asking 3 more is refused with the limit, its value, what she holds" \
	'^khget: refused by policy limits: alice may hold at most 6 nodes \(holds 4, asked 3\)$' \
	khget -c pw alice 3
khget -c pw alice 3 >/dev/null 2>&1
same "policy-2.3 ... with a non-zero exit" "$?" "1"
same "policy-2.4 ... and the protocol's code policy" "$(send $'get user=alice cred=pw count=3\n')" \
	"err policy refused by policy limits: alice may hold at most 6 nodes (holds 4, asked 3)"
rejects "policy-2.5 a new principal asking past the limit is refused" \
	'^khget: refused by policy limits: dave may hold at most 6 nodes \(holds 0, asked 7\)$' \
	khget -c pw dave 7
same "policy-2.6 ... and is not created" "$(send $'nodes user=dave\n')" "err notfound unknown principal 'dave'"
check "policy-2.7 within the limit alice still gets nodes" bash -c "khget -c pw alice 2 >/dev/null"
same "policy-2.8 alice holds 6" "$(khctl nodes --user alice | wc -l)" "6"

# policy-3: most channels (allocations held at once).
check "policy-3.1 frank gets two allocations" bash -c "khget -c pw frank 1 >/dev/null && khget -c pw frank 1 >/dev/null"
rejects "policy-3.2 a third is refused: one channel per allocation" \
	'^khget: refused by policy limits: frank may hold at most 2 channels, one per allocation \(holds 2\)$' \
	khget -c pw frank 1

# policy-4: other principals are not affected; overrides lift limits.
check "policy-4.1 bob (max_nodes=none) gets 10 nodes while alice is at her limit" \
	bash -c "khget -c pw bob 10 >/dev/null"
check "policy-4.2 ... and a third allocation (max_channels=none)" \
	bash -c "khget -c pw bob 1 >/dev/null && khget -c pw bob 1 >/dev/null"
check "policy-4.3 gina, new, gets 6" bash -c "khget -c pw gina 6 >/dev/null"

# policy-5: released nodes count no more.
a1=$(khctl nodes --user alice | awk '{print $4}' | sort -u | head -n1)
check "policy-5.1 alice releases $a1 (4 nodes)" khctl release -c pw alice "$a1"
same "policy-5.2 khctl policy counts what alice holds" \
	"$(khctl policy | grep '^limits alice ' | grep -o 'nodes=[0-9]* channels=[0-9]*')" "nodes=2 channels=1"
check "policy-5.3 alice gets 4 again" bash -c "khget -c pw alice 4 >/dev/null"
rejects "policy-5.4 ... and no more" 'alice may hold at most 6 nodes \(holds 6, asked 1\)$' khget -c pw alice 1
f1=$(khctl nodes --user frank | awk '{print $4}' | head -n1)
khctl release -c pw frank "$f1"
check "policy-5.5 frank, a channel released, makes an allocation again" bash -c "khget -c pw frank 1 >/dev/null"

# policy-6: allocations per unit of time (token bucket); time refills it.
check "policy-6.1 erin (6/m, burst 1) gets a node" bash -c "khget -c pw erin 1 >/dev/null"
rejects "policy-6.2 her next allocation at once is refused, saying when" \
	'^khget: refused by policy limits: erin may make at most 6 allocations per minute \(burst 1\); the next in (10|[0-9])\.[0-9] s$' \
	khget -c pw erin 1
sleep 10.1
check "policy-6.3 10 s later she gets one again" bash -c "khget -c pw erin 1 >/dev/null"
check "policy-6.4 carol (1/h) gets a node" bash -c "khget -c pw carol 1 >/dev/null"
rejects "policy-6.5 ... and not another this hour" \
	'^khget: refused by policy limits: carol may make at most 1 allocation per hour \(burst 1\); the next in 3[0-9]{3}\.[0-9] s$' \
	khget -c pw carol 1

# policy-7: limits hold through a restart of khd, kill -9 included.
# (principals in any order: khd counts them again in its own)
before=$(khctl policy | grep -v tokens= | sort)
beforet=$(khctl policy | grep -o '^limits [a-z*]* .*nodes=[0-9]* channels=[0-9]*' | sort)
kill9_khd
restart_khd --nodes 40 --no-fabric --no-rdma
same "policy-7.1 after kill -9 and a restart, khctl policy counts the same holdings" \
	"$(khctl policy | grep -o '^limits [a-z*]* .*nodes=[0-9]* channels=[0-9]*' | sort)" "$beforet"
same "policy-7.2 ... and the same limits" "$(khctl policy | grep -v tokens= | sort)" "$before"
rejects "policy-7.3 alice is still at her limit" \
	'^khget: refused by policy limits: alice may hold at most 6 nodes \(holds 6, asked 1\)$' khget -c pw alice 1
rejects "policy-7.4 frank still holds two channels" 'frank may hold at most 2 channels' khget -c pw frank 1
rejects "policy-7.5 carol's bucket is replayed from her channel's time" \
	'carol may make at most 1 allocation per hour \(burst 1\); the next in 3[0-9]{3}\.[0-9] s$' khget -c pw carol 1
check "policy-7.6 bob still gets nodes" bash -c "khget -c pw bob 2 >/dev/null"

# policy-7.7: a khfs session's res meets the same limit: EDQUOT, and the
# reason in N/status.
if [ -e /dev/fuse ] && command -v fusermount3 >/dev/null; then
	M=$D/mnt
	mkdir -p "$M"
	khfs -c pw alice "$M" 2>>"$D/khfs.err" &
	FSPID=$!
	for _ in $(seq 100); do mountpoint -q "$M" && break; sleep 0.05; done
	exec 7<"$M/clone"
	read -r N <&7
	out=$(bash -c "echo 'res 1' >$M/$N/ctl" 2>&1)
	check "policy-7.7 khfs: res past alice's limit fails with EDQUOT" grep -q "Disk quota exceeded" <<<"$out"
	check "policy-7.8 ... with the reason in N/status" \
		grep -q "refused by policy limits: alice may hold at most 6 nodes (holds 6, asked 1)" "$M/$N/status"
	exec 7<&-
	kill -TERM "$FSPID"
	wait "$FSPID"
	# policy-7.9: most sessions: a khfs session that allocates holds one
	# channel, so max_channels bounds hank's sessions holding nodes (2
	# here); a session adopting one of his channels (res con<C>) makes no
	# allocation and is not refused.
	khfs -c pw hank "$M" 2>>"$D/khfs.err" &
	FSPID=$!
	for _ in $(seq 100); do mountpoint -q "$M" && break; sleep 0.05; done
	exec 7<"$M/clone" 8<"$M/clone" 9<"$M/clone"
	read -r S1 <&7
	read -r S2 <&8
	read -r S3 <&9
	check "policy-7.9 khfs: hank's first two sessions get nodes" \
		bash -c "echo 'res 1' >$M/$S1/ctl && echo 'res 1' >$M/$S2/ctl"
	out=$(bash -c "echo 'res 1' >$M/$S3/ctl" 2>&1)
	check "policy-7.10 ... his third session's res: EDQUOT" grep -q "Disk quota exceeded" <<<"$out"
	check "policy-7.11 ... with the reason in N/status" \
		grep -q "refused by policy limits: hank may hold at most 2 channels, one per allocation (holds 2)" "$M/$S3/status"
	C1=$(head -n1 "$M/$S1/status" | awk '{print $5}')
	check "policy-7.12 ... while adopting his own channel (res con<C>) is no allocation" \
		bash -c "echo 'res $C1' >$M/$S3/ctl"
	exec 8<&-
	for _ in $(seq 50); do [ "$(khctl nodes --user hank | wc -l)" = 1 ] && break; sleep 0.1; done
	check "policy-7.13 a session ended (its channel released): a new one gets nodes again" \
		bash -c "exec 8<$M/clone; read -r n <&8; echo 'res 1' >$M/\$n/ctl"
	exec 7<&- 9<&-
	kill -TERM "$FSPID"
	wait "$FSPID"
else
	T_N=$((T_N + 1))
	echo "ok $T_N - policy-7.7 # SKIP no /dev/fuse or fusermount3" >&3
fi

# policy-8: a bad policy line stops khd at start with one clear line.
stop_khd
cp "$D/khd.conf" "$D/khd.conf.good"
badconf() {
	local d=$1 text=$2 want=$3 err rc
	printf '%s\n' "$text" >"$D/khd.conf"
	err=$(khd -d "$D" --nodes 40 --no-fabric --no-rdma 2>&1)
	rc=$?
	if [ $rc -eq 0 ]; then
		nok "$d" "khd started"
		stop_khd
	elif [ "$(printf '%s\n' "$err" | wc -l)" -ne 1 ] || [ "$err" != "$want" ]; then
		nok "$d" "got:  $err
want: $want"
	else
		ok "$d"
	fi
}
badconf "policy-8.1 a bad value" "limits * max_nodes=lots" \
	"khd: $D/khd.conf: line 1: max_nodes must be 0..1000000 or none, once"
badconf "policy-8.2 an unknown module" $'host h\npolicy limits placement' \
	"khd: $D/khd.conf: line 2: unknown policy module 'placement' (there are: limits single pack spread)"
badconf "policy-8.3 an unknown limit" "limits alice max_cpus=3" \
	"khd: $D/khd.conf: line 1: unknown limit 'max_cpus' (max_nodes max_channels max_rate burst)"
badconf "policy-8.4 settings for a module left out of the chain" $'limits * max_nodes=1\npolicy single' \
	"khd: $D/khd.conf: line 1: settings for policy module limits, which the policy line (line 2) leaves out"
badconf "policy-8.5 a rate without its unit" "limits * max_rate=10" \
	"khd: $D/khd.conf: line 1: max_rate must be N/s, N/m or N/h (N 1..1000000) or none, once"
badconf "policy-8.7 a host line without a port" $'host h\nhost a 10.0.0.1' \
	"khd: $D/khd.conf: line 2: host takes one name, or a name and its agent's address IPv4:PORT ('10.0.0.1' is not one)"
badconf "policy-8.8 a placement line" $'placement hints=perhaps' \
	"khd: $D/khd.conf: line 1: placement takes hints=yes or hints=no"
mv "$D/khd.conf.good" "$D/khd.conf"
restart_khd --nodes 40 --no-fabric --no-rdma
same "policy-8.6 fixed, khd starts again with what it held" "$(khctl nodes --user alice | wc -l)" "6"

# policy-9: the operator changes the limits: the next start applies them to
# what is held.
stop_khd
sed -i "s/^limits \* max_nodes=6 max_channels=2/limits * max_nodes=8 max_channels=4/" "$D/khd.conf"
restart_khd --nodes 40 --no-fabric --no-rdma
check "policy-9.1 with max_nodes=8 alice gets 2 more" bash -c "khget -c pw alice 2 >/dev/null"
rejects "policy-9.2 ... and no more" 'alice may hold at most 8 nodes \(holds 8, asked 1\)$' khget -c pw alice 1
stop_khd
printf 'host pol.test\n' >"$D/khd.conf"
restart_khd --nodes 40 --no-fabric --no-rdma
same "policy-9.3 without policy lines: the default chain, no limit" \
	"$(khctl policy | head -n2)" "policy limits single
limits * max_nodes=none max_channels=none max_rate=none"
check "policy-9.4 ... alice gets 5 more" bash -c "khget -c pw alice 5 >/dev/null"

# policy-10: hosts and placement (issue 17) on a facility of one host: the
# host is named after the facility, local, every node; a principal's
# placement hint is pack or spread, anything else is refused whole.
same "policy-10.1 khctl nodes: the host is the last, seventh column" \
	"$(khctl nodes | awk '{print NF, $NF}' | sort -u)" "7 pol.test"
same "policy-10.2 khctl nodes --json: each node's host" \
	"$(khctl nodes --json | jq -r '[.[].host] | unique | .[]')" "pol.test"
nfree=$(khctl nodes --free | wc -l)
same "policy-10.3 khctl info lists the host last" "$(khctl info | tail -n1)" \
	"host pol.test addr=- state=local nodes=40 free=$nfree"
same "policy-10.4 khctl info --json: hosts" \
	"$(khctl info --json | jq -c '.hosts | map([.name, .addr, .state, .nodes, .free])')" \
	"[[\"pol.test\",null,\"local\",40,$nfree]]"
rejects "policy-10.5 khget --place takes pack or spread only" \
	'^khget: --place must be pack or spread' khget -c pw alice --place nearby 1
same "policy-10.6 khget --place spread: one host, every node there" \
	"$(khget -c pw --place spread alice 1 | grep -c '^nodeinfo: ')" "1"
same "policy-10.7 ... and --place pack" "$(khget -c pw alice 1 --place=pack | grep -c '^nodeinfo: ')" "1"
same "policy-10.8 the free count follows" "$(khctl info | tail -n1)" \
	"host pol.test addr=- state=local nodes=40 free=$((nfree - 2))"
stop_khd

# policy-11: a facility of three hosts (host NAME IP:PORT): the layout and
# the hosts as the operator sees them.  No agent connects here (agents are
# the front end's part of issue 17), so every host stays down and nothing
# can be given.
D=$(mktemp -d /tmp/kh-e2e-XXXXXX)
T_DIRS+=("$D")
export KH_SOCKET=$D/khd.sock
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$D/cluster.key"
cat >"$D/khd.conf" <<'EOF'
host pol.test
cluster_key cluster.key
policy limits pack
host a 127.0.0.1:7071
host b 127.0.0.1:7072
host c 127.0.0.1:7073
type ct1 count=3
EOF
restart_khd --no-fabric --no-rdma
same "policy-11.1 khctl info: three hosts, down until their agents connect" \
	"$(khctl info | grep '^host ')" "host a addr=127.0.0.1:7071 state=down nodes=3 free=0 sent=0
host b addr=127.0.0.1:7072 state=down nodes=3 free=0 sent=0
host c addr=127.0.0.1:7073 state=down nodes=3 free=0 sent=0"
same "policy-11.2 khctl nodes: ranks host-major, each node's host last" \
	"$(khctl nodes | awk '{print $1 ":" $NF}' | tr '\n' ' ')" "0:a 1:a 2:a 3:b 4:b 5:b 6:c 7:c 8:c "
same "policy-11.3 no node is free on a host that is down" "$(khctl nodes --free | wc -l)" "0"
rejects "policy-11.4 khget: not enough nodes, nothing allocated" \
	'^khget: not enough nodes available' khget -c pw alice 1
stop_khd

done_testing

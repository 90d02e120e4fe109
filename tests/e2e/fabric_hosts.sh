# fabric_hosts-*: domains across hosts (issue 17, item 3).  Three "hosts",
# each a network namespace on an underlay (a bridge in a fourth namespace,
# MTU 9100), each running its own fabric (tests/tools/fabhost, the real
# src/fabric); nodes of domains A, B and C on them; A, B and the external
# domain span all three hosts, C only hosts 1 and 2 (host 3 has a C node of
# its own).  From inside the nodes' namespaces (root, every capability):
# ping matrices, broadcasts, raw frames with forged addresses and VLAN
# tags, a node's own macvlan, VXLAN forged by an external node: a frame
# reaches exactly the nodes of its domain on the hosts the domain spans.
# Then MTU 9000 with DF across hosts, bad input refused with one line and
# changing nothing, changing and removing spans, and nothing left behind.
. "$(dirname "$0")/lib.sh"

if [ "$(id -u)" != 0 ]; then
	ok "fabric_hosts # skip needs root (network namespaces)"
	done_testing
	exit
fi
FABHOST=$BIN/../tests/fabhost
RAWFRAME=$BIN/../tests/rawframe
for t in "$FABHOST" "$RAWFRAME"; do
	[ -x "$t" ] || { nok "fabric_hosts-0.0 $t is built (make)"; done_testing; exit; }
done
# Every name of ours carries SFX, so tests in other worktrees never meet
# ours; every device is made inside our namespaces.
SFX=$(printf '%04x%04x' $RANDOM $RANDOM)
NS=khv$SFX
TMP=$(mktemp -d /tmp/kh-e2e-XXXXXX)
T_DIRS+=("$TMP")
HOSTS=(1 2 3)
ul() { echo "10.201.0.$1"; }
PORT=4789
A=3 B=4 C=5 X=1

v4() { local n=$1 h=$(($2 + 1)); echo "10.$((n >> 4)).$((((n & 15) << 4) | (h >> 8))).$((h & 255))"; }
v6() { printf 'fd4b:6b68:%x::%x\n' "$1" $(($2 + 1)); }
mac() { printf '02:4b:%02x:%02x:%02x:%02x\n' $(($1 >> 8)) $(($1 & 255)) $(($2 >> 8)) $(($2 & 255)); }

# The topology: rank -> host, and its domains in eth order.
declare -A HOST NETS
node_def() { HOST[$1]=$2 NETS[$1]=$3; }
node_def 0 1 "$A"
node_def 1 1 "$B"
node_def 2 1 "$A $B"
node_def 9 1 "$C"
node_def 12 1 "$X"
node_def 3 2 "$A"
node_def 4 2 "$B"
node_def 10 2 "$C"
node_def 13 2 "$X"
node_def 5 3 "$A"
node_def 6 3 "$B"
node_def 7 3 "$A"
node_def 11 3 "$C"
node_def 14 3 "$X"
mapfile -t RANKS < <(printf '%s\n' "${!HOST[@]}" | sort -n)
# SPAN[host,netid]: the hosts that domain spans to from host.
declare -A SPAN
for h in "${HOSTS[@]}"; do
	for d in $A $B $X; do SPAN[$h,$d]=$(for o in "${HOSTS[@]}"; do [ "$o" != "$h" ] && echo "$o"; done | tr '\n' ' '); done
done
SPAN[1,$C]="2 " SPAN[2,$C]="1 " SPAN[3,$C]=""

# ---- the hosts ----------------------------------------------------------
teardown() {
	local i n
	for i in "${HOSTS[@]}"; do
		[ -n "${FIN[i]:-}" ] && { echo free >&"${FIN[i]}"; exec {FIN[i]}>&-; } 2>/dev/null
	done
	wait 2>/dev/null
	for n in $(ip netns list | awk -v p="$NS-" 'index($1, p) == 1 {print $1}'); do
		ip netns del "$n" 2>/dev/null
	done
}
trap 'teardown; cleanup' EXIT

ip netns add "$NS-u" && ip -n "$NS-u" link add br0 type bridge &&
	ip -n "$NS-u" link set br0 up || { nok "fabric_hosts-0.1 the underlay namespace"; done_testing; exit; }
declare -a FIN FOUT DPID
setup_hosts() {
	local i
	for i in "${HOSTS[@]}"; do
		ip netns add "$NS-h$i" || return 1
		ip -n "$NS-u" link add "u$i" mtu 9100 type veth peer name ul mtu 9100 netns "$NS-h$i" || return 1
		ip -n "$NS-u" link set "u$i" master br0 up || return 1
		ip -n "$NS-h$i" link set lo up || return 1
		ip -n "$NS-h$i" link set ul up || return 1
		ip -n "$NS-h$i" addr add "$(ul "$i")/24" dev ul || return 1
		mkfifo "$TMP/in$i" "$TMP/out$i" || return 1
		nsenter --net="/run/netns/$NS-h$i" "$FABHOST" <"$TMP/in$i" >"$TMP/out$i" 2>"$TMP/log$i" &
		DPID[i]=$!
		exec {FIN[i]}>"$TMP/in$i" {FOUT[i]}<"$TMP/out$i"
	done
}
check "fabric_hosts-0.1 three hosts on an underlay with MTU 9100, a fabric driver in each" setup_hosts

# fh HOST CMD...: one command to the host's fabric; R is its answer.
fh() {
	local i=$1
	shift
	R=
	echo "$*" >&"${FIN[i]}" && read -r -t 60 R <&"${FOUT[i]}"
	[ "${R%% *}" = ok ]
}
o=
for i in "${HOSTS[@]}"; do
	fh "$i" new "$(printf '%04x%03x%x' $RANDOM $RANDOM "$i")" $([ "$i" = 1 ] && echo 1 || echo 0) || o+="host $i new: $R; "
	fh "$i" underlay "$(ul "$i")" $PORT || o+="host $i underlay: $R; "
done
check "fabric_hosts-0.2 each host's fabric is made, with its underlay" test -z "$o"
o=
for r in "${RANKS[@]}"; do
	fh "${HOST[$r]}" node "$r" "$(tr ' ' ',' <<<"${NETS[$r]}")" "/run/netns/$NS-n$r" || o+="node $r: $R; "
done
check "fabric_hosts-0.3 the nodes are wired on their hosts" test -z "$o"
# span_all: every host spans each domain as SPAN says; A's remote nodes are
# placed (unicast to one host), B's are not (unicast floods to the peers).
span_all() {
	local h d o p r rem
	for h in "${HOSTS[@]}"; do
		for d in $A $B $C $X; do
			p=
			for o in ${SPAN[$h,$d]}; do p+=" $(ul "$o")"; done
			fh "$h" span "$d" $p || { echo "host $h span $d$p: $R"; return 1; }
		done
		rem=
		for r in "${RANKS[@]}"; do
			[ "${HOST[$r]}" != "$h" ] && [[ " ${NETS[$r]} " == *" $A "* ]] && rem+=" $r@$(ul "${HOST[$r]}")"
		done
		fh "$h" nodes "$A" $rem || { echo "host $h nodes $A$rem: $R"; return 1; }
	done
}
o=$(span_all)
check "fabric_hosts-0.4 A, B and the external domain span the three hosts, C hosts 1 and 2" test -z "$o"

nsx() {
	local r=$1
	shift
	ip netns exec "$NS-n$r" "$@"
}
in_net() { [[ " ${NETS[$1]} " == *" $2 "* ]]; }
# carries H1 H2 D: domain D joins hosts H1 and H2 (or they are one host).
carries() { [ "$1" = "$2" ] || [[ " ${SPAN[$1,$3]} " == *" $2 "* ]]; }

# ---- fabric_hosts-1: ping matrices ------------------------------------
cat >"$TMP/pinger.sh" <<'EOS'
cmd=$1
shift
for t in "$@"; do
	(
		b=${t%%/*} rest=${t#*/}
		d=${rest%%/*} a=${rest#*/}
		if busybox $cmd -c 2 -i 0.2 -W 1 -w 2 -q "$a" >/dev/null 2>&1; then echo "$b $d ok"; else echo "$b $d no"; fi
	) &
done
wait
EOS
# ping_matrix 4|6: "A B NETID ok|no" for every node A, every other node B
# and every address of B.
ping_matrix() {
	local fam=$1 a b d targets pids=()
	for a in "${RANKS[@]}"; do
		targets=()
		for b in "${RANKS[@]}"; do
			[ "$a" = "$b" ] && continue
			for d in ${NETS[$b]}; do
				if [ "$fam" = 4 ]; then targets+=("$b/$d/$(v4 "$d" "$b")"); else targets+=("$b/$d/$(v6 "$d" "$b")"); fi
			done
		done
		nsx "$a" sh "$TMP/pinger.sh" "$([ "$fam" = 4 ] && echo ping || echo ping6)" "${targets[@]}" |
			sed "s/^/$a /" >"$TMP/ping.$a" &
		pids+=($!)
	done
	wait "${pids[@]}"
	for a in "${RANKS[@]}"; do cat "$TMP/ping.$a"; done | sort
}
# The model: B's address in D answers A iff A is in D too, and D joins
# their hosts.
ping_expect() {
	local a b d r
	while read -r a b d r; do
		if in_net "$a" "$d" && carries "${HOST[$a]}" "${HOST[$b]}" "$d"; then echo "$a $b $d ok"; else echo "$a $b $d no"; fi
	done | sort
}
same_set() {
	local extra missing
	extra=$(comm -23 <(sort -u <<<"$2") <(sort -u <<<"$3") | sed '/^$/d')
	missing=$(comm -13 <(sort -u <<<"$2") <(sort -u <<<"$3") | sed '/^$/d')
	if [ -z "$extra$missing" ]; then
		ok "$1"
	else
		nok "$1" "$([ -n "$extra" ] && echo "got: $(head -n 40 <<<"$extra" | tr '\n' ';')")
$([ -n "$missing" ] && echo "want: $(head -n 40 <<<"$missing" | tr '\n' ';')")"
	fi
}
m=$(ping_matrix 4)
same_set "fabric_hosts-1.1 IPv4 ping matrix: a node reaches exactly its domains' nodes on the hosts they span" "$m" "$(ping_expect <<<"$m")"
m6=$(ping_matrix 6)
same_set "fabric_hosts-1.2 IPv6 ping matrix: the same" "$m6" "$(ping_expect <<<"$m6")"
check "fabric_hosts-1.3 the matrix is not empty: A reaches across hosts (0 -> 3, 0 -> 5)" \
	grep -qx "0 3 $A ok" <<<"$m"

# Each host's external nodes reach their own host's uplink (every host's
# has the same address and MAC; local delivery wins), not another's.
uplink_rx() { ip netns exec "$NS-h$1" cat /sys/class/net/"$2"/statistics/rx_packets 2>/dev/null || echo 0; }
o=
for r in 12 13 14; do
	h=${HOST[$r]}
	upl=$(ip netns exec "$NS-h$h" ip -o link show | awk '{n = $2; sub(/[:@].*/, "", n)} n ~ /^kh/ {print n}')
	declare -A before=()
	for o2 in "${HOSTS[@]}"; do
		u=$(ip netns exec "$NS-h$o2" ip -o link show | awk '{n = $2; sub(/[:@].*/, "", n)} n ~ /^kh/ {print n}')
		before[$o2]=$(uplink_rx "$o2" "$u")
	done
	nsx "$r" ping -c 20 -i 0.01 -W 1 -q 10.0.31.254 >/dev/null 2>&1 || o+="node $r does not reach 10.0.31.254; "
	for o2 in "${HOSTS[@]}"; do
		u=$(ip netns exec "$NS-h$o2" ip -o link show | awk '{n = $2; sub(/[:@].*/, "", n)} n ~ /^kh/ {print n}')
		got=$(($(uplink_rx "$o2" "$u") - before[$o2]))
		if [ "$o2" = "$h" ] && [ "$got" -lt 20 ]; then o+="node $r: its host's uplink got $got packets; "; fi
		if [ "$o2" != "$h" ] && [ "$got" -ge 5 ]; then o+="node $r: host $o2's uplink got $got packets; "; fi
	done
done
check "fabric_hosts-1.4 an external node reaches out through its own host's uplink, not another host's" test -z "$o"

# ---- fabric_hosts-2: broadcast, raw frames, forged addresses -----------
# listen SECS: rawframe listeners in every node; then collect "TOKEN RANK".
LPIDS=()
listen_all() {
	local r
	LPIDS=()
	for r in "${RANKS[@]}"; do
		nsx "$r" "$RAWFRAME" listen "$1" >"$TMP/rf.$r" 2>&1 &
		LPIDS+=($!)
	done
	for r in "${RANKS[@]}"; do
		for _ in $(seq 100); do grep -q '^# listening' "$TMP/rf.$r" 2>/dev/null && break; sleep 0.05; done
	done
}
heard() {
	local r
	for r in "${RANKS[@]}"; do awk -v r="$r" '!/^#/ {print $1, r}' "$TMP/rf.$r"; done | sort -u
}
# A B node's eth0 is its only interface; node 2 has A at eth0, B at eth1.
BC=ff:ff:ff:ff:ff:ff
# frames: "RANK IFACE DST SRC VLAN TOKEN | receivers"
FRAMES=(
	"1 eth0 $BC - - bB|2 4 6"
	"1 eth0 $BC $(mac $A 0) - bBforgedA|2 4 6"
	"1 eth0 $BC - $A bBvlanA|2 4 6"
	"1 eth0 $(mac $A 3) $(mac $A 0) - uB2A|"
	"1 eth0 $(mac $B 4) $(mac $A 0) - uBforged|4"
	"1 eth0 $(mac $A 5) - $A uBvlan2A|"
	"2 eth1 $(mac $A 3) - $A uB2Avlan|"
	"0 eth0 $(mac $A 5) - - uAplaced|5"
	"0 eth0 $(mac $A 7) $(mac $B 4) - uAforgedB|7"
	"0 eth0 01:00:5e:00:00:01 - - mA|2 3 5 7"
	"9 eth0 $BC - - bC|10"
	"9 eth0 $(mac $C 11) - - uC2h3|"
	"11 eth0 $BC - - bCh3|"
	"12 eth0 $BC - - bX|13 14"
	"12 eth0 $(mac $A 3) - - uX2A|"
)
want_heard() {
	local f rcv r
	for f in "${FRAMES[@]}"; do
		rcv=${f#*|}
		read -r _ _ _ _ _ tok <<<"${f%%|*}"
		for r in $rcv; do echo "$tok $r"; done
	done | sort -u
}
listen_all 4
for f in "${FRAMES[@]}"; do
	read -r r ifc dst src vl tok <<<"${f%%|*}"
	echo "$ifc $dst $src $vl $tok" | nsx "$r" "$RAWFRAME" batch 3
done
# a node's own macvlan on its interface joins the same segment, no other
nsx 0 ip link add mv0 link eth0 address 06:00:00:00:00:01 type macvlan mode bridge &&
	nsx 0 ip link set mv0 up &&
	echo "mv0 $BC - - bAmacvlan" | nsx 0 "$RAWFRAME" batch 3
wait "${LPIDS[@]}"
FRAMES+=("0 mv0 $BC - - bAmacvlan|0 2 3 5 7")
same_set "fabric_hosts-2.1 raw frames (broadcast, multicast, unicast; forged source MACs, VLAN tags, a node's own macvlan) reach exactly their domain's nodes on the hosts it spans" \
	"$(heard)" "$(want_heard)"

# arping: an ARP broadcast across hosts is answered in the domain only.
o=
nsx 0 busybox arping -c 2 -w 2 -I eth0 "$(v4 $A 3)" >/dev/null 2>&1 || o+="0 does not arp 3 in A; "
nsx 0 busybox arping -c 2 -w 2 -I eth0 "$(v4 $A 5)" >/dev/null 2>&1 || o+="0 does not arp 5 in A; "
nsx 1 busybox arping -c 2 -w 2 -I eth0 "$(v4 $A 3)" >/dev/null 2>&1 && o+="1 (B) arps 3's A address; "
nsx 9 busybox arping -c 2 -w 2 -I eth0 "$(v4 $C 11)" >/dev/null 2>&1 && o+="9 (C) arps 11 on host 3; "
check "fabric_hosts-2.2 arping across hosts: answered in the domain, not from another domain or a host the domain does not span" test -z "$o"

# VXLAN forged by an external node: straight at its host's ports (the
# uplink's address, the underlay's) and, forwarded and masqueraded by host
# 1, at host 2: a broadcast for domain B carrying a token.
cat >"$TMP/vxforge.py" <<'EOS'
import socket, sys, time
vni, token = int(sys.argv[1]), sys.argv[2].encode()
inner = b"\xff" * 6 + bytes.fromhex("024b00040001") + b"\x88\xb5" + b"KHRF" + bytes([len(token)]) + token
inner += b"\0" * max(0, 60 - len(inner))
pkt = bytes([8, 0, 0, 0]) + vni.to_bytes(3, "big") + b"\0" + inner
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(3):
    for dst in sys.argv[3:]:
        try: s.sendto(pkt, (dst, 4789))
        except OSError: pass
    time.sleep(0.05)
EOS
listen_all 2
nsx 12 python3 "$TMP/vxforge.py" "$B" vxB 10.0.31.254 "$(ul 1)" "$(ul 2)" "$(ul 3)"
nsx 12 python3 "$TMP/vxforge.py" "$A" vxA 10.0.31.254 "$(ul 1)" "$(ul 2)"
wait "${LPIDS[@]}"
o=$(heard | grep '^vx')
check "fabric_hosts-2.3 VXLAN forged by an external node (to its host, to another host through NAT) reaches no domain" test -z "$o"

# ---- fabric_hosts-3: MTU ------------------------------------------------
quiet() { "$@" >/dev/null 2>&1; }
check "fabric_hosts-3.1 an MTU-9000 ping with DF crosses hosts (ping -M do -s 8972, A: 0 -> 3)" \
	quiet nsx 0 ping -M do -s 8972 -c 2 -i 0.2 -W 2 -q "$(v4 $A 3)"
check "fabric_hosts-3.2 an MTU-1500 ping with DF crosses hosts in the external domain (12 -> 14)" \
	quiet nsx 12 ping -M do -s 1472 -c 2 -i 0.2 -W 2 -q "$(v4 $X 14)"

# ---- fabric_hosts-4: bad input ------------------------------------------
# refused HOST DESC PATTERN CMD...: one "error:" line matching PATTERN, and
# the host's fabric (its spans, the segments' devices, the guard) unchanged.
fabric_state() {
	local h=$1 f
	for d in $A $B $C $X; do fh "$h" spans "$d" && echo "spans $d $R"; done
	# the fabric's namespace is the driver's only other one: find it by
	# its devices (b<netid>/v<netid>) through the driver's fds
	f=$(fabric_ns "$h")
	[ -n "$f" ] && nsenter --net="$f" bridge fdb show 2>/dev/null | grep -E ' dev v[0-9]+ ' | sort
	ip netns exec "$NS-h$h" nft list ruleset 2>/dev/null
}
fabric_ns() {
	local f
	for f in /proc/"${DPID[$1]}"/fd/*; do
		case $(readlink "$f" 2>/dev/null) in net:*) ;; *) continue ;; esac
		nsenter --net="$f" ip -o link show 2>/dev/null | grep -qE '^[0-9]+: d[0-9]+x?[:@]' && { echo "$f"; return 0; }
	done
}
refused() {
	local h=$1 d=$2 pat=$3 before after
	shift 3
	before=$(fabric_state "$h")
	fh "$h" "$@"
	local got=$R
	after=$(fabric_state "$h")
	if [ "${got%% *}" != error: ] || ! grep -qE -- "$pat" <<<"$got"; then
		nok "$d" "answer: $got (want an error matching $pat)"
	elif [ "$before" != "$after" ]; then
		nok "$d" "the fabric changed: $(diff <(echo "$before") <(echo "$after") | head -20)"
	else
		ok "$d"
	fi
}
refused 1 "fabric_hosts-4.1 span to this host's own underlay address is refused" "own underlay" span $A "$(ul 2)" "$(ul 1)"
refused 1 "fabric_hosts-4.2 span to a bad address is refused" "not an IPv4" span $A "$(ul 2)" 10.201.0.300
refused 1 "fabric_hosts-4.3 span naming a peer twice is refused" "twice" span $A "$(ul 2)" "$(ul 3)" "$(ul 2)"
refused 1 "fabric_hosts-4.4 a remote node on a host the domain does not span is refused" "not a host" nodes $C "10@$(ul 2)" "11@$(ul 3)"
refused 1 "fabric_hosts-4.5 a netid beyond VXLAN's is refused" "cannot span" span 16777216 "$(ul 2)"
refused 1 "fabric_hosts-4.6 changing the underlay while domains span is refused" "unspan" underlay "$(ul 1)" 4790
ip netns exec "$NS-h1" ip link set ul mtu 9000
refused 1 "fabric_hosts-4.7 an underlay MTU below the domain's MTU + 50 is refused, naming both" "MTU 9000.*9050.*MTU 9000" underlay "$(ul 1)" $PORT
ip netns exec "$NS-h1" ip link set ul mtu 9100

# ---- fabric_hosts-5: changing spans -------------------------------------
# reach A B ADDR-NETID: can node A ping node B's address in that domain?
reach() { nsx "$1" busybox ping -c 2 -i 0.2 -W 1 -w 2 -q "$(v4 "$3" "$2")" >/dev/null 2>&1 && echo yes || echo no; }
reach_set() { echo "0-3 $(reach 0 3 $A) 0-5 $(reach 0 5 $A) 0-2 $(reach 0 2 $A) 3-5 $(reach 3 5 $A) 1-4 $(reach 1 4 $B)"; }
o=$(span_all)
same "fabric_hosts-5.1 spanning again with the same hosts changes nothing" "$o $(reach_set)" " 0-3 yes 0-5 yes 0-2 yes 3-5 yes 1-4 yes"
fh 1 span $A "$(ul 2)"
same "fabric_hosts-5.2 host 1 spans A to host 2 only: host 3 is cut off from host 1, the rest stays" "$R $(reach_set)" "ok 0-3 yes 0-5 no 0-2 yes 3-5 yes 1-4 yes"
fh 1 span $A
same "fabric_hosts-5.3 host 1 stops spanning A: its A nodes are local only, other hosts and domains go on" "$R $(reach_set)" "ok 0-3 no 0-5 no 0-2 yes 3-5 yes 1-4 yes"
o=$(span_all)
same "fabric_hosts-5.4 spanning A again restores it" "$o $(reach_set)" " 0-3 yes 0-5 yes 0-2 yes 3-5 yes 1-4 yes"
# A node released and another wired while A spans: the span does not care.
fh 3 release 7 "/run/netns/$NS-n7"
r1=$R
fh 3 node 7 "$A" "/run/netns/$NS-n7"
same "fabric_hosts-5.5 a node released and wired again on a spanning domain is reached across hosts" "$r1 $R $(reach 0 7 $A)" "ok ok yes"

# ---- fabric_hosts-6: nothing left behind --------------------------------
fh 2 free
o="$R $(ip netns exec "$NS-h2" nft list tables 2>&1 | grep -c 'vx') $(ip netns exec "$NS-h2" ss -Huln "sport = :$PORT" | wc -l) $(reach 0 3 $A) $(reach 0 5 $A)"
same "fabric_hosts-6.1 a host's fabric freed: its guard table and VXLAN socket are gone, its nodes unreachable, the others go on" "$o" "ok 0 0 no yes"
teardown
FIN=()
trap cleanup EXIT
o=$(grep -hE 'Sanitizer|runtime error' "$TMP"/log? | head -20)
check "fabric_hosts-6.3 the hosts' fabrics ran without sanitizer reports" test -z "$o"
o=$( (ip netns list; ip -o link show; cat /proc/mounts) | grep -- "$SFX")
check "fabric_hosts-6.2 nothing of the test is left: no namespace, no link, no mount" test -z "$o"
done_testing

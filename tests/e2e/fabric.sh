# fabric-*: communication domains as Ethernet segments (issue 4), as a user
# relies on them: no frame reaches a node with which it shares no domain,
# whatever runs on the node, root included; every pair that shares one
# connects.  A random topology (2-3 principals; private, public and external
# domains; addnet) of booted busybox nodes; then, from inside the nodes'
# network namespaces (a root with every capability, stronger than the
# node's own), IPv4, IPv6 and raw Ethernet reachability must equal
# khctl allowed exactly; forged addresses, addnet/rmnet of running nodes
# and release are tried too.  FABRIC_SEED=N repeats a topology.
. "$(dirname "$0")/lib.sh"
TOP=$(cd "$(dirname "$0")/../.." && pwd)

SEED=${FABRIC_SEED:-$RANDOM}
echo "# seed $SEED (FABRIC_SEED=$SEED tests/run.sh fabric repeats this topology)" >&3
RANDOM=$SEED

# ---- the address plan (src/fabric/addr.c), in shell --------------------
v4() { local n=$1 h=$(($2 + 1)); echo "10.$((n >> 4)).$((((n & 15) << 4) | (h >> 8))).$((h & 255))"; }
v6() { printf 'fd4b:6b68:%x::%x\n' "$1" $(($2 + 1)); }
mac() { printf '02:4b:%02x:%02x:%02x:%02x\n' $(($1 >> 8)) $(($1 & 255)) $(($2 >> 8)) $(($2 & 255)); }
net4() { echo "$(v4 "$1" -1)/20"; }
ms() { echo $(($(date +%s%N) / 1000000)); }
T_START=$(ms)
# stage NAME: a TAP comment with the time since the start.
stage() { echo "# $1 at $((($(ms) - T_START) / 1000)).$(((($(ms) - T_START) % 1000) / 100)) s" >&3; }
mtu() { if [ "$1" = 1 ]; then echo 1500; else echo 9000; fi; }

# ---- the topology ----------------------------------------------------
# PLAN: khget calls "user|domains|count|extra": domains "first" (the user's
# first: its default private domain A), "new" (-p 1: its domain B), "A",
# "B", "AB" (-n); extra: i (-i) and/or x (-x).
plan() {
	local np=$((2 + RANDOM % 2)) k u n total i
	USERS=(alice bob carol)
	USERS=("${USERS[@]:0:np}")
	PLAN=()
	total=0
	for k in "${!USERS[@]}"; do
		u=${USERS[k]}
		n=$((1 + RANDOM % 2))
		PLAN+=("$u|first|$n|")
		total=$((total + n))
		n=$((1 + RANDOM % 2))
		i=
		# at least two principals in the public domain
		if [ $k -lt 2 ] || [ $((RANDOM % 2)) = 0 ]; then i=i; fi
		PLAN+=("$u|new|$n|$i")
		total=$((total + n))
		case $((RANDOM % 3)) in
		0) PLAN+=("$u|AB|1|") total=$((total + 1)) ;;
		1) PLAN+=("$u|A|1|i") total=$((total + 1)) ;;
		esac
	done
	k=$((RANDOM % np))
	n=$((1 + RANDOM % 2))
	# (never $RANDOM inside $(...): a subshell reseeds it)
	local dom=A pubx=
	[ $((RANDOM % 2)) = 0 ] && dom=B
	[ $((RANDOM % 2)) = 0 ] && pubx=i
	PLAN+=("${USERS[k]}|$dom|$n|x$pubx")
	total=$((total + n))
	if [ $((RANDOM % 2)) = 0 ]; then
		# a second principal's node in the external domain
		PLAN+=("${USERS[(k + 1 + RANDOM % (np - 1)) % np]}|B|1|x")
		total=$((total + 1))
	fi
	TOTAL=$total
}
while plan; [ "$TOTAL" -lt 10 ] || [ "$TOTAL" -gt 14 ]; do :; done

# Facility exactly as large as the topology, so a released node is the one
# the next khget gets (fabric-6).
start_khd --nodes "$TOTAL" --load-timeout 3000
FAC=$(khctl info | head -n1 | awk '{print $4}')
APP=$D/app.cpio.gz
"$TOP/tests/lib/mkbusybox.sh" "$APP"
SIZE=$(stat -c %s "$APP")
RAWFRAME=$BIN/../tests/rawframe
if ! [ -x "$RAWFRAME" ]; then
	RAWFRAME=$D/rawframe
	${CC:-cc} -std=c17 -O2 -o "$RAWFRAME" "$TOP/tests/tools/rawframe.c"
fi

declare -A DA DB OWNER SLOTS PID CHANOF
CHANS=()
RANKS=()
# parse_block USER COUNT: the control block on stdin; fills OWNER, SLOTS
# (netids in eth order), RANKS, CHANS ("con|user|count") and PRIV (the
# private netids it names).
parse_block() {
	local line con nets=() k r
	while IFS= read -r line; do
		case $line in
		con*) con=${line%%@*} ;;
		"network External : eth"*) nets[${line##*eth}]=1 ;;
		"network Internal : eth"*) nets[${line##*eth}]=2 ;;
		network*) k=${line##*eth} && line=${line#network } && nets[k]=${line%% *} ;;
		nodes:*)
			for r in ${line#nodes:}; do
				OWNER[$r]=$1
				CHANOF[$r]=$con
				SLOTS[$r]="${nets[*]}"
				RANKS+=("$r")
			done
			;;
		esac
	done
	CHANS+=("$con|$1|$2")
	PRIV=
	for k in "${nets[@]}"; do [ "$k" -ge 3 ] && PRIV+="$k "; done
}

alloc_ok=1
alloc_log=
for p in "${PLAN[@]}"; do
	IFS='|' read -r u doms n extra <<<"$p"
	opts=()
	case $doms in
	new) opts+=(-p 1) ;;
	A) opts+=(-n "${DA[$u]}") ;;
	B) opts+=(-n "${DB[$u]}") ;;
	AB) opts+=(-n "${DA[$u]},${DB[$u]}") ;;
	esac
	[[ $extra == *i* ]] && opts+=(-i)
	[[ $extra == *x* ]] && opts+=(-x)
	alloc_log+="khget ${opts[*]} $u $n"$'\n'
	if ! block=$(khget -c "pw-$u" "${opts[@]}" "$u" "$n" 2>&1); then
		alloc_ok=0
		alloc_log+="$block"$'\n'
		continue
	fi
	parse_block "$u" "$n" <<<"$block"
	case $doms in
	first) DA[$u]=${PRIV% } ;;
	new) DB[$u]=$(tr ' ' '\n' <<<"$PRIV" | grep -vx -e "${DA[$u]}" -e '' | head -n1) ;;
	esac
done
mapfile -t RANKS < <(printf '%s\n' "${RANKS[@]}" | sort -n)

# addnet SLOT-MODEL: the allocator puts a new domain at the first free slot
# (0: a removed interface), else at the end.
model_add() {
	local r=$1 d=$2 s=() i
	read -ra s <<<"${SLOTS[$r]}"
	for i in "${!s[@]}"; do
		if [ "${s[i]}" = 0 ]; then
			s[i]=$d
			SLOTS[$r]="${s[*]}"
			return
		fi
	done
	SLOTS[$r]="${SLOTS[$r]} $d"
}
model_rm() {
	local r=$1 d=$2 s=() i
	read -ra s <<<"${SLOTS[$r]}"
	for i in "${!s[@]}"; do [ "${s[i]}" = "$d" ] && s[i]=0; done
	while [ ${#s[@]} -gt 0 ] && [ "${s[-1]}" = 0 ]; do unset 's[-1]'; done
	SLOTS[$r]="${s[*]}"
}
in_net() { [[ " ${SLOTS[$1]} " == *" $2 "* ]]; }
# Before boot: some nodes join their principal's other domain.
for u in "${USERS[@]}"; do
	[ $((RANDOM % 3)) = 0 ] && [ "$u" != alice ] && continue
	for r in "${RANKS[@]}"; do
		[ "${OWNER[$r]}" = "$u" ] || continue
		if ! in_net "$r" "${DB[$u]}"; then d=${DB[$u]}; elif ! in_net "$r" "${DA[$u]}"; then d=${DA[$u]}; else continue; fi
		alloc_log+="khctl addnet $u $d $r"$'\n'
		if out=$(khctl addnet -c "pw-$u" "$u" "$d" "$r" 2>&1); then
			model_add "$r" "$d"
		else
			alloc_ok=0
			alloc_log+="$out"$'\n'
		fi
		break
	done
done
echo "# topology: ${#USERS[@]} principals, ${#RANKS[@]} nodes" >&3
printf '%s' "$alloc_log" | sed 's/^/#   /' >&3
check "fabric-0.1 the topology is allocated" test "$alloc_ok" = 1 -a "${#RANKS[@]}" = "$TOTAL"

# read_nets: NETS[R], node R's netids as khctl nodes shows them.
declare -A NETS
read_nets() {
	local r st ow ch nets ty
	NETS=()
	while read -r r st ow ch nets ty; do
		[ "$st" = free ] && continue
		NETS[$r]=${nets//,/ }
	done < <(khctl nodes)
}
model_nets() {
	local r
	for r in "${RANKS[@]}"; do
		echo "$r: $(tr ' ' '\n' <<<"${SLOTS[$r]}" | grep -vx 0 | sort -n | tr '\n' ' ')"
	done
}
khd_nets() {
	local r
	for r in "${RANKS[@]}"; do echo "$r: $(tr ' ' '\n' <<<"${NETS[$r]}" | sort -n | tr '\n' ' ')"; done
}
read_nets
same "fabric-0.2 khctl nodes shows the domains the topology asked for" "$(khd_nets)" "$(model_nets)"

# ---- boot -----------------------------------------------------------
stage "boot"
for c in "${CHANS[@]}"; do
	IFS='|' read -r con u n <<<"$c"
	{ printf 'mrw $ramfsaddr %d\n' "$SIZE"; cat "$APP"; echo 'run kboot'; } |
		khcon -c "pw-$u" "$u" --prefix --timeout 60 --until 'appliance up on' --count "$n" "$con" \
			>"$D/boot.$con" 2>&1 &
done
wait
same "fabric-0.3 every node boots" "$(khctl nodes | awk '$2 != "free" {print $2}' | sort -u)" "running"

HOSTNS=$(readlink /proc/self/ns/net)
CGDIRS=$(find /sys/fs/cgroup -maxdepth 4 -type d -name "kh-$FAC" 2>/dev/null)
# node_pid R: a process of node R in its network namespace.
node_pid() {
	local dir p
	for dir in $CGDIRS; do
		for p in $(cat "$dir/n$1/cgroup.procs" 2>/dev/null); do
			if [ "$(readlink "/proc/$p/ns/net" 2>/dev/null)" != "$HOSTNS" ]; then
				echo "$p"
				return 0
			fi
		done
	done
	return 1
}
find_pids() {
	local r missing=
	for r in "${RANKS[@]}"; do
		PID[$r]=$(node_pid "$r") || missing+=" $r"
	done
	[ -z "$missing" ] || { echo "no process found for nodes$missing"; return 1; }
}
o=$(find_pids)
check "fabric-0.4 every node's processes are found in its cgroup" test -z "$o"
find_pids >/dev/null
# nsx R CMD...: CMD in node R's network namespace.
nsx() {
	local r=$1
	shift
	nsenter -t "${PID[$r]}" -n -- "$@"
}

# settle: until every node has its interfaces and no IPv6 address is still
# tentative (duplicate address detection), at most 10 s.
settle() {
	local r want have t
	for t in $(seq 100); do
		local busy=0
		for r in "${RANKS[@]}"; do
			want=$(tr ' ' '\n' <<<"${SLOTS[$r]}" | grep -cvx 0)
			have=$(nsx "$r" ip -o link show | grep -c ': eth[0-9]*[@:]')
			if [ "$have" -lt "$want" ] || [ -n "$(nsx "$r" ip -6 -o addr show tentative)" ]; then
				busy=1
				break
			fi
		done
		[ $busy = 0 ] && return 0
		sleep 0.1
	done
	return 1
}
o=
check "fabric-0.5 interfaces are up and IPv6 addresses leave DAD within 10 s" settle

# ---- fabric-1: every node's interfaces follow the address plan -------
stage "fabric-1"
# links R: "NAME MAC mtu=MTU up|down" for every interface of node R.
links() {
	nsx "$1" ip -o link show | awk '{
		name = $2; sub(/@.*/, "", name); sub(/:$/, "", name)
		mtu = ""; macv = ""
		for (i = 3; i <= NF; i++) { if ($i == "mtu") mtu = $(i+1); if ($i == "link/ether") macv = $(i+1) }
		# up: set up, and the other end of its wire too (carrier)
		up = ($3 ~ /[<,]UP[,>]/) ? (($3 ~ /LOWER_UP/ || name == "lo") ? "up" : "up-no-carrier") : "down"
		if (name == "lo") print "lo - - " up; else print name, macv, "mtu=" mtu, up
	}'
}
# strays R: interfaces named eth<k> that are none of the node's domains
# (the control block and addnet name them all).
strays() {
	links "$1" | awk -v slots="${SLOTS[$1]}" '
		BEGIN {n = split(slots, s, " "); for (i = 1; i <= n; i++) if (s[i] != 0) dom["eth" (i - 1)] = 1}
		$1 ~ /^eth[0-9]+$/ && !($1 in dom)'
}
# desc_node R: what the node has: its domains' interfaces and any other
# device that is not a stray eth<k> (name, MAC, MTU, state), every global
# address, lo's state, default routes.
desc_node() {
	local r=$1
	{
		links "$r" | awk -v slots="${SLOTS[$r]}" '
			BEGIN {n = split(slots, s, " "); for (i = 1; i <= n; i++) if (s[i] != 0) dom["eth" (i - 1)] = 1}
			$1 == "lo" {print "lo", $4; next}
			!($1 ~ /^eth[0-9]+$/) || ($1 in dom)'
		nsx "$r" ip -o addr show scope global | awk '{print $2, $4}'
		echo "route4 $(nsx "$r" ip -4 route show default | awk '{print $1, $2, $3, $4, $5}')"
		echo "route6 $(nsx "$r" ip -6 route show default | awk '{print $1, $2, $3, $4, $5}')"
	} | sort
}
# if_mac R IFACE
if_mac() { nsx "$1" ip -o link show dev "$2" | sed -E 's/.*link\/ether ([0-9a-f:]+).*/\1/'; }
# want_node R: the same, from the model and the address plan.
want_node() {
	local r=$1 s=() i d r4= r6=
	read -ra s <<<"${SLOTS[$r]}"
	{
		echo "lo up"
		for i in "${!s[@]}"; do
			d=${s[i]}
			[ "$d" = 0 ] && continue
			echo "eth$i $(mac "$d" "$r") mtu=$(mtu "$d") up"
			echo "eth$i $(v4 "$d" "$r")/20"
			echo "eth$i $(v6 "$d" "$r")/64"
			if [ "$d" = 1 ]; then
				r4="default via 10.0.31.254 dev eth$i"
				r6="default via fd4b:6b68:1::ffe dev eth$i"
			fi
		done
		echo "route4 $r4"
		echo "route6 $r6"
	} | sort
}
o=$(for r in "${RANKS[@]}"; do strays "$r" | sed "s/^/node $r: /"; done)
check "fabric-1.0 no node has an eth<k> that none of its domains explains" test -z "$o"
for r in "${RANKS[@]}"; do
	same "fabric-1.$((r + 1)) node $r (${OWNER[$r]}, domains ${SLOTS[$r]// /,}): interfaces, MACs, MTUs, addresses, routes" \
		"$(desc_node "$r")" "$(want_node "$r")"
done

# fabric_ns: khd's fabric namespace (the one with the segments' lower
# devices d<netid>), found among the namespaces khd holds open.
fabric_ns() {
	local pid f
	pid=$(khd_pid "$D")
	for f in /proc/"$pid"/fd/* /proc/"$pid"/task/*/ns/net; do
		case $(readlink "$f" 2>/dev/null) in net:*) ;; *) continue ;; esac
		if nsenter --net="$f" ip -o link show type veth 2>/dev/null | grep -qE '^[0-9]+: d[0-9]+[:@]'; then
			echo "$f"
			return 0
		fi
	done
	return 1
}
# ports R: "n<R>e<i> d<netid>" for each interface of node R: a macvlan in
# bridge mode whose lower device is segment d<netid> of the fabric
# (ifindex 2^22 + netid there); anything else is printed as it is.
ports() {
	nsx "$1" ip -o -d link show 2>/dev/null | awk -v r="$1" -v fns="$FNS" '{
		name = $2; sub(/:$/, "", name); low = name; sub(/@.*/, "", name)
		if (name == "lo") next
		if (low !~ /@if[0-9]+$/ || $0 !~ / macvlan mode bridge /) { print name, "not-a-macvlan"; next }
		sub(/.*@if/, "", low)
		n = substr(name, 4)
		print "n" r "e" n, "d" (low - 4194304) }' | sort
}
# The fabric side of the same: each eth<i> is a macvlan on its domain's
# segment d<netid>, and on no other.
FNS=$(fabric_ns)
if [ -n "$FNS" ]; then
	same "fabric-1.$((${RANKS[-1]} + 2)) every node interface is a macvlan on its domain's segment in khd's fabric namespace, and on no other" \
		"$(for r in "${RANKS[@]}"; do ports "$r"; done)" \
		"$(for r in "${RANKS[@]}"; do s=(${SLOTS[$r]}); for i in "${!s[@]}"; do [ "${s[i]}" != 0 ] && echo "n${r}e$i d${s[i]}"; done | sort; done)"
	segs=$(nsenter --net="$FNS" ip -o link show | awk '{n = $2; sub(/[:@].*/, "", n); print n}' | grep -vx lo | sort | tr '\n' ' ')
	want=$(for r in "${RANKS[@]}"; do for n in ${SLOTS[$r]}; do [ "$n" != 0 ] && printf 'd%s\nd%sx\n' "$n" "$n"; done; done | sort -u | tr '\n' ' ')
	same "fabric-1.$((${RANKS[-1]} + 3)) the fabric namespace holds only the segments (d<netid> and its sink d<netid>x) of the domains in use" "$segs" "$want"
else
	nok "fabric-1.$((${RANKS[-1]} + 2)) khd's fabric namespace (segments d<netid>) is found among its open namespaces"
fi

# ifmap: "RANK IFACE NETID" for every interface the nodes have but lo:
# the domain the control block (and addnet) gave eth<i>, 0 for any other.
ifmap() {
	local r
	for r in "${RANKS[@]}"; do
		nsx "$r" ip -o link show | awk -v r="$r" -v slots="${SLOTS[$r]}" '
			BEGIN {n = split(slots, s, " "); for (i = 1; i <= n; i++) net["eth" (i - 1)] = s[i]}
			{name = $2; sub(/@.*/, "", name); sub(/:$/, "", name)
			 if (name != "lo") print r, name, (name in net) ? net[name] : 0}'
	done
}

# ---- fabric-2: khctl allowed, and IP reachability --------------------
stage "fabric-2"
# allowed_pairs: "A B" for every ordered pair khctl allowed says may talk.
allowed_pairs() {
	khctl allowed | awk -F': ' '$2 != "-" {
		n = split($2, part, ",")
		for (i = 1; i <= n; i++) {
			if (split(part[i], ab, "-") == 2) for (b = ab[1]; b <= ab[2]; b++) print $1, b
			else print $1, part[i]
		}
	}' | sort
}
# share_pairs: the same from the domains each node is in (the model).
share_pairs() {
	local a b d
	for a in "${RANKS[@]}"; do
		for b in "${RANKS[@]}"; do
			[ "$a" = "$b" ] && continue
			for d in ${SLOTS[$a]}; do
				[ "$d" != 0 ] && in_net "$b" "$d" && { echo "$a $b"; break; }
			done
		done
	done | sort
}
# same_set DESC GOT WANT [EXTRA-NAME MISSING-NAME]: two sets of lines equal;
# on failure say which lines are extra and which are missing.
same_set() {
	local extra missing
	extra=$(comm -23 <(sort -u <<<"$2") <(sort -u <<<"$3") | sed '/^$/d')
	missing=$(comm -13 <(sort -u <<<"$2") <(sort -u <<<"$3") | sed '/^$/d')
	if [ -z "$extra$missing" ]; then
		ok "$1"
	else
		nok "$1" "$( [ -n "$extra" ] && echo "${4:-unexpected}: $(head -n 40 <<<"$extra" | tr '\n' ';')"
			[ -n "$missing" ] && echo "${5:-missing}: $(head -n 40 <<<"$missing" | tr '\n' ';')")"
	fi
}

ALLOWED=$(allowed_pairs)
same_set "fabric-2.1 khctl allowed says: the pairs that share a domain" "$ALLOWED" "$(share_pairs)"
# A few pairs through the two-rank form too.
o=
for _ in 1 2 3 4 5 6; do
	a=${RANKS[RANDOM % ${#RANKS[@]}]}
	b=${RANKS[RANDOM % ${#RANKS[@]}]}
	[ "$a" = "$b" ] && continue
	want=no
	grep -qx "$a $b" <<<"$ALLOWED" && want=yes
	got=$(khctl allowed "$a" "$b")
	[ "$got" = "$a $b $want" ] || o+="khctl allowed $a $b: $got, want $a $b $want; "
done
check "fabric-2.2 khctl allowed A B agrees" test -z "$o"

# The pinger: in one node, ping every "RANK/NETID/ADDRESS" at once; prints
# "RANK NETID ok|no".  Two probes, so one lost packet is not a missing path;
# busybox ping waits -W after its last probe whatever -w says.
cat >"$D/pinger.sh" <<'EOS'
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
# ping_matrix 4|6 [SOURCES]: "A B NETID ok|no" for every source A, every
# other node B and every address of B.
ping_matrix() {
	local fam=$1 a b d targets pids=() srcs=()
	shift
	if [ $# -gt 0 ]; then srcs=("$@"); else srcs=("${RANKS[@]}"); fi
	for a in "${srcs[@]}"; do
		targets=()
		for b in "${RANKS[@]}"; do
			[ "$a" = "$b" ] && continue
			for d in ${SLOTS[$b]}; do
				[ "$d" = 0 ] && continue
				if [ "$fam" = 4 ]; then targets+=("$b/$d/$(v4 "$d" "$b")"); else targets+=("$b/$d/$(v6 "$d" "$b")"); fi
			done
		done
		nsx "$a" sh "$D/pinger.sh" "$([ "$fam" = 4 ] && echo ping || echo ping6)" "${targets[@]}" |
			sed "s/^/$a /" >"$D/ping.$a" &
		pids+=($!)
	done
	wait "${pids[@]}"
	for a in "${srcs[@]}"; do cat "$D/ping.$a"; done
}
# addr_expect: for lines "A B NETID ...", an address of B answers A iff A
# is in its domain.
addr_expect() {
	local a b d r
	while read -r a b d r; do
		if in_net "$a" "$d"; then echo "$a $b $d ok"; else echo "$a $b $d no"; fi
	done
}
check_pings() {
	local fam=$1 n=$2 m
	m=$(ping_matrix "$fam")
	same_set "fabric-2.$n IPv$fam ping: the pairs that reach each other are those khctl allowed says" \
		"$(awk '$4 == "ok" {print $1, $2}' <<<"$m" | sort -u)" "$ALLOWED" \
		"reach but are not allowed (A B)" "allowed but do not reach (A B)"
	same_set "fabric-2.$((n + 1)) IPv$fam ping: an address answers exactly the nodes in its domain" \
		"$m" "$(addr_expect <<<"$m")" "got (A B NETID)" "want (A B NETID)"
}
t0=$(ms)
check_pings 4 3
check_pings 6 5
echo "# IPv4 and IPv6 ping matrices took $(($(ms) - t0)) ms" >&3

# The host is in the external domain only: it reaches external nodes
# directly, and its routes to every other domain avoid its uplink.  (The
# external subnet is host-wide: with another facility's uplink on the host,
# which one the host uses is not this test's to say.)
o=
for r in "${RANKS[@]}"; do
	for d in ${SLOTS[$r]}; do
		[ "$d" = 0 ] && continue
		if [ "$d" = 1 ]; then
			busybox ping -I "kh$FAC" -c 2 -i 0.2 -W 1 -w 2 -q "$(v4 1 "$r")" >/dev/null 2>&1 || o+="host does not reach $(v4 1 "$r"); "
		elif ip route get "$(v4 "$d" "$r")" 2>/dev/null | grep -q " dev kh$FAC "; then
			o+="host routes $(v4 "$d" "$r") (domain $d) through its uplink; "
		fi
	done
done
other=$(ip -o -4 addr show | awk '$4 == "10.0.31.254/20" {print $2}' | grep -vx "kh$FAC" | head -n1)
if [ -n "$other" ]; then
	ok "fabric-2.7 # skip another facility's uplink ($other) holds 10.0.31.254 on this host"
elif ! ip link show "kh$FAC" >/dev/null 2>&1 && grep -q "another facility's uplink" "$D/khd.log"; then
	ok "fabric-2.7 # skip another facility's uplink held 10.0.31.254 when khd started: it has none"
else
	check "fabric-2.7 the host reaches the external domain's nodes and routes no other domain to the facility" test -z "$o"
fi

# ---- fabric-3: raw Ethernet ------------------------------------------
stage "fabric-3"
# Every node listens, promiscuous, on all its interfaces; every node sends
# from each interface: broadcast, IPv4 and IPv6 multicast, unicast to
# every MAC of every other node, a broadcast with a forged source (a MAC of
# another domain), 802.1Q-tagged broadcasts and unicasts (VLAN id: another
# domain's netid, and 0).  A token "SENDER:IFACE:KIND" names each frame.
IFMAP=$(ifmap)
# The node's root may bring up any interface it has.
awk '$3 == 0 {print $1, $2}' <<<"$IFMAP" | while read -r r ifc; do nsx "$r" ip link set "$ifc" up; done
declare -A MACS
for r in "${RANKS[@]}"; do
	MACS[$r]=$(for d in ${SLOTS[$r]}; do [ "$d" != 0 ] && echo "$d/$(mac "$d" "$r")"; done)
done
NETIDS=$(for r in "${RANKS[@]}"; do for d in ${SLOTS[$r]}; do echo "$d"; done; done | grep -vx 0 | sort -nu)
# frames_of A: the batch of node A (rawframe batch lines).
frames_of() {
	local a=$1 ifc d b m od om
	while read -r _ ifc d; do
		echo "$ifc ff:ff:ff:ff:ff:ff - - $a:$ifc:bc"
		echo "$ifc 01:00:5e:00:00:fb - - $a:$ifc:m4"
		echo "$ifc 01:00:5e:42:01:07 - - $a:$ifc:m4r"
		echo "$ifc 33:33:00:00:00:01 - - $a:$ifc:m6"
		echo "$ifc 33:33:ff:00:00:01 - - $a:$ifc:m6s"
		for b in "${RANKS[@]}"; do
			[ "$b" = "$a" ] && continue
			for m in ${MACS[$b]}; do echo "$ifc ${m#*/} - - $a:$ifc:u$b.${m%/*}"; done
		done
		echo "$ifc ff:ff:ff:ff:ff:ff - 0 $a:$ifc:v0"
		for od in $NETIDS; do
			[ "$od" = "$d" ] && continue
			echo "$ifc ff:ff:ff:ff:ff:ff - $od $a:$ifc:v$od"
			# the source MAC of the first other node of that domain;
			# a unicast, tagged with that domain's id, to the last
			# (a MAC forged here is learnt on this port, and the
			# bridge would keep a unicast to it from leaving)
			om=()
			for b in "${RANKS[@]}"; do [ "$b" != "$a" ] && in_net "$b" "$od" && om+=("$(mac "$od" "$b")"); done
			[ ${#om[@]} -gt 0 ] || continue
			echo "$ifc ff:ff:ff:ff:ff:ff ${om[0]} - $a:$ifc:f$od"
			echo "$ifc ${om[-1]} - $od $a:$ifc:vu$od"
		done
	done < <(awk -v a="$a" '$1 == a' <<<"$IFMAP")
}
# frames_round: every node listens while every node sends; prints
# "SENDER SIFACE KIND RECEIVER RIFACE" for every frame seen.
frames_round() {
	local r lp=() sp=() t
	for r in "${RANKS[@]}"; do
		nsenter -t "${PID[$r]}" -n -- "$RAWFRAME" listen 60 >"$D/rx.$r" 2>"$D/rx.$r.err" &
		lp+=($!)
	done
	for t in $(seq 100); do
		[ "$(cat "${RANKS[@]/#/$D/rx.}" | grep -c '^# listening')" = "${#RANKS[@]}" ] && break
		sleep 0.05
	done
	for r in "${RANKS[@]}"; do
		frames_of "$r" >"$D/tx.$r"
		nsx "$r" "$RAWFRAME" batch 2 <"$D/tx.$r" 2>"$D/tx.$r.err" &
		sp+=($!)
	done
	wait "${sp[@]}"
	cat "${RANKS[@]/#/$D/tx.}" >"$D/tx.all"
	sleep 0.5
	kill -TERM "${lp[@]}" 2>/dev/null
	wait "${lp[@]}"
	for r in "${RANKS[@]}"; do
		grep -v '^#' "$D/rx.$r" | awk -v r="$r" '{split($1, t, ":"); print t[1], t[2], t[3], r, $2}'
	done | sort -u
}
t0=$(ms)
RX=$(frames_round)
echo "# raw frames: $(wc -l <"$D/tx.all") sent (twice each), $(wc -l <<<"$RX") distinct (frame, receiver) pairs seen, in $(($(ms) - t0)) ms" >&3
o=$(cat "$D"/rx.*.err "$D"/tx.*.err | sort | uniq -c | head -n 10)
check "fabric-3.1 rawframe listens and sends on every interface" test -z "$o"
same_set "fabric-3.2 raw frames: the pairs that reach each other are those khctl allowed says" \
	"$(awk '$1 != $4 {print $1, $4}' <<<"$RX" | sort -u)" "$ALLOWED" \
	"frames reached nodes that may not be reached (SENDER RECEIVER)" \
	"allowed pairs no frame connected (SENDER RECEIVER)"
# Every frame stays in the domain of the interface it was sent on, even
# between nodes that share another domain.
cross=$(awk 'NR == FNR {net[$1 " " $2] = $3; next}
	net[$1 " " $2] != net[$4 " " $5] || net[$1 " " $2] == 0 {
		print "frame " $1 ":" $2 ":" $3 " (domain " net[$1 " " $2] ") reached " $4 " " $5 " (domain " net[$4 " " $5] ")"
	}' <(echo "$IFMAP") <(echo "$RX"))
check "fabric-3.3 no raw frame leaves its domain (broadcast, multicast, unicast, forged source, VLAN tags)" test -z "$cross"
[ -n "$cross" ] && head -n 30 <<<"$cross" | sed 's/^/# /' >&3
# want_floods KIND: every interface of a domain gets KIND from every other
# node's interface in it.
want_floods() {
	awk -v k="$1" '{ifc[NR] = $1 " " $2; net[NR] = $3; rank[NR] = $1}
		END {for (i in ifc) for (j in ifc) if (net[i] == net[j] && net[i] != 0 && rank[i] != rank[j])
			print ifc[i], k, ifc[j]}' <<<"$IFMAP" | sort
}
for k in bc m4 m4r m6 m6s; do
	case $k in bc) w="broadcast" ;; m4*) w="IPv4 multicast ($k)" ;; m6*) w="IPv6 multicast ($k)" ;; esac
	same_set "fabric-3.4.$k $w reaches every other interface of its domain" \
		"$(awk -v k="$k" '$3 == k {print $1, $2, k, $4, $5}' <<<"$RX" | sort -u)" "$(want_floods "$k")" \
		"unexpected (sender iface kind receiver iface)" "missing (sender iface kind receiver iface)"
done
# Unicast to a MAC of the same domain arrives there.
want_uc=$(awk '{ifc[NR] = $1 " " $2; net[NR] = $3; rank[NR] = $1}
	END {for (i in ifc) for (j in ifc) if (net[i] == net[j] && net[i] != 0 && rank[i] != rank[j])
		print ifc[i], "u" rank[j] "." net[j], ifc[j]}' <<<"$IFMAP" | sort)
got_uc=$(awk '$3 ~ /^u/ {print $1, $2, $3, $4, $5}' <<<"$RX" | sort -u)
o=$(comm -13 <(echo "$got_uc") <(echo "$want_uc") | head -n 30)
check "fabric-3.5 unicast frames reach the MAC they are sent to, in its domain" test -z "$o"
# Whether the fabric passes them within a domain is its choice; that they
# were seen shows the listener would have caught them crossing.
echo "# seen within their domain: $(awk '$3 ~ /^v[0-9]/' <<<"$RX" | wc -l) tagged broadcasts, $(awk '$3 ~ /^vu/' <<<"$RX" | wc -l) tagged unicasts, $(awk '$3 ~ /^f/' <<<"$RX" | wc -l) forged-source broadcasts" >&3

# ---- fabric-4: forged addresses ----------------------------------------
stage "fabric-4"
o=
# A node takes a MAC of a domain it is not in, and addresses and a route of
# that domain, and pings a node of it with which it shares no domain.
# find_victim: "A D T": A not in domain D, T in D, A and T not allowed.
find_victim() {
	local a t d
	for a in "${RANKS[@]}"; do
		for t in "${RANKS[@]}"; do
			[ "$a" = "$t" ] && continue
			grep -qx "$a $t" <<<"$ALLOWED" && continue
			for d in ${SLOTS[$t]}; do
				[ "$d" != 0 ] && ! in_net "$a" "$d" && { echo "$a $d $t"; return 0; }
			done
		done
	done
	return 1
}
if read -r A X T < <(find_victim); then
	ifc=eth0
	s=(${SLOTS[$A]})
	for i in "${!s[@]}"; do [ "${s[i]}" != 0 ] && { ifc=eth$i; break; }; done
	own=$(if_mac "$A" "$ifc")
	fake4=$(v4 "$X" 4000)
	fake6=$(printf 'fd4b:6b68:%x::%x' "$X" 4001)
	nsx "$A" ip link set "$ifc" address "$(mac "$X" "$T")" 2>/dev/null ||
		{ nsx "$A" ip link set "$ifc" down; nsx "$A" ip link set "$ifc" address "$(mac "$X" "$T")"; nsx "$A" ip link set "$ifc" up; }
	nsx "$A" ip addr add "$fake4/32" dev "$ifc"
	nsx "$A" ip route add "$(net4 "$X")" dev "$ifc" src "$fake4"
	nsx "$A" ip addr add "$fake6/128" dev "$ifc" nodad
	nsx "$A" ip route add "fd4b:6b68:$(printf %x "$X")::/64" dev "$ifc"
	same "fabric-4.1 node $A took node $T's MAC in domain $X" "$(if_mac "$A" "$ifc")" "$(mac "$X" "$T")"
	check "fabric-4.2 ... and an IPv4 address and route of domain $X, yet cannot ping node $T there" \
		bash -c "! nsenter -t ${PID[$A]} -n -- busybox ping -c 3 -i 0.2 -W 1 -w 2 -q $(v4 "$X" "$T") >/dev/null 2>&1"
	check "fabric-4.3 ... nor by IPv6" \
		bash -c "! nsenter -t ${PID[$A]} -n -- busybox ping6 -c 3 -i 0.2 -W 1 -w 2 -q $(v6 "$X" "$T") >/dev/null 2>&1"
	# The same through an 802.1Q interface tagged with the domain's id.
	if nsx "$A" ip link add link "$ifc" name vl type vlan id "$X" 2>/dev/null; then
		nsx "$A" ip link set vl address "$(mac "$X" "$T")" up
		nsx "$A" ip addr add "$(v4 "$X" 4002)/20" dev vl
		check "fabric-4.4 ... nor through a VLAN interface tagged $X" \
			bash -c "! nsenter -t ${PID[$A]} -n -- busybox ping -c 3 -i 0.2 -W 1 -w 2 -q $(v4 "$X" "$T") >/dev/null 2>&1"
		nsx "$A" ip link del vl
	else
		# tagged frames are sent by rawframe in fabric-3 all the same
		ok "fabric-4.4 # skip the kernel has no 802.1Q interfaces (8021q)"
	fi
	nsx "$A" ip route del "$(net4 "$X")" dev "$ifc"
	nsx "$A" ip addr del "$fake4/32" dev "$ifc"
	nsx "$A" ip addr del "$fake6/128" dev "$ifc"
	nsx "$A" ip link set "$ifc" address "$own" 2>/dev/null ||
		{ nsx "$A" ip link set "$ifc" down; nsx "$A" ip link set "$ifc" address "$own"; nsx "$A" ip link set "$ifc" up; }
	# a peer in the interface's own domain is reached again
	d=${s[${ifc#eth}]}
	peer=
	for b in "${RANKS[@]}"; do [ "$b" != "$A" ] && in_net "$b" "$d" && { peer=$b; break; }; done
	if [ -n "$peer" ]; then
		check "fabric-4.5 restored, node $A reaches node $peer in domain $d again" \
			nsx "$A" busybox ping -c 3 -i 0.2 -W 1 -w 3 -q "$(v4 "$d" "$peer")" >/dev/null
	fi
else
	ok "fabric-4.1 # skip no pair of nodes that share no domain"
fi

# ---- fabric-5: addnet and rmnet of a running node ------------------------
stage "fabric-5"
o=
# find_grow: "R D T": node R, a domain D of its principal it is not in, and
# a node T in D, preferably one R cannot reach yet.
find_grow() {
	local r d t fallback=
	for r in "${RANKS[@]}"; do
		for d in "${DA[${OWNER[$r]}]}" "${DB[${OWNER[$r]}]}"; do
			in_net "$r" "$d" && continue
			for t in "${RANKS[@]}"; do
				[ "$t" != "$r" ] && in_net "$t" "$d" || continue
				grep -qx "$r $t" <<<"$ALLOWED" || { echo "$r $d $t"; return 0; }
				fallback="$r $d $t"
			done
		done
	done
	[ -n "$fallback" ] && echo "$fallback"
}
if read -r R G T < <(find_grow); then
	u=${OWNER[$R]}
	check "fabric-5.1 khctl addnet puts running node $R into domain $G" khctl addnet -c "pw-$u" "$u" "$G" "$R"
	model_add "$R" "$G"
	k=$(tr ' ' '\n' <<<"${SLOTS[$R]}" | grep -nx "$G" | cut -d: -f1)
	k=$((k - 1))
	for _ in $(seq 30); do nsx "$R" ip -o addr show dev "eth$k" 2>/dev/null | grep -q "$(v4 "$G" "$R")/" && break; sleep 0.1; done
	same "fabric-5.2 ... eth$k appears in it, configured" "$(desc_node "$R")" "$(want_node "$R")"
	ALLOWED=$(allowed_pairs)
	same_set "fabric-5.3 ... khctl allowed adds its pairs" "$ALLOWED" "$(share_pairs)"
	FNS=$(fabric_ns)
	[ -n "$FNS" ] && check "fabric-5.4 ... its eth$k is a macvlan on domain $G's segment" grep -qx "n${R}e$k d$G" <(ports "$R")
	settle >/dev/null
	if ! nsx "$R" busybox ping -c 2 -i 0.2 -W 1 -w 3 -q "$(v4 "$G" "$T")" >/dev/null; then
		nok "fabric-5.5 ... node $R reaches node $T in domain $G" "$(
			echo "node $R:"; links "$R"; nsx "$R" ip -4 route; nsx "$R" ip neigh show dev "eth$k"
			echo "node $T:"; links "$T"; nsx "$T" ip neigh
			echo "interfaces of $R:"; ports "$R"; echo "of $T:"; ports "$T"
			echo "khd.log:"; tail -n 5 "$D/khd.log")"
	else
		ok "fabric-5.5 ... node $R reaches node $T in domain $G"
	fi
	m=$(ping_matrix 4 "$R")
	same_set "fabric-5.6 ... its IPv4 reachability is the new allowed row" \
		"$(awk '$4 == "ok" {print $1, $2}' <<<"$m" | sort -u)" "$(grep "^$R " <<<"$ALLOWED")"
	same_set "fabric-5.7 ... every address of domain $G answers it" "$m" "$(addr_expect <<<"$m")" "got (A B NETID)" "want (A B NETID)"
	# rmnet while node T pings R there 20 times a second: replies stop when
	# rmnet returns (one already on its way may still be counted).
	nsx "$T" busybox ping -i 0.05 -w 6 "$(v4 "$G" "$R")" >"$D/flood" 2>&1 &
	fp=$!
	sleep 1
	khctl rmnet -c "pw-$u" "$u" "$G" "$R"
	rc=$?
	n0=$(grep -c 'bytes from' "$D/flood")
	gone=$(nsx "$R" ip -o link show "eth$k" 2>&1 | grep -c "eth$k:")
	nsx "$R" busybox ping -c 1 -W 1 -w 1 -q "$(v4 "$G" "$T")" >/dev/null 2>&1
	prc=$?
	sleep 1
	n1=$(grep -c 'bytes from' "$D/flood")
	kill "$fp" 2>/dev/null
	wait "$fp" 2>/dev/null
	model_rm "$R" "$G"
	check "fabric-5.8 khctl rmnet takes it out again" test "$rc" = 0
	same "fabric-5.9 ... eth$k is gone when rmnet returns" "$gone" "0"
	check "fabric-5.10 ... node $R cannot ping node $T there right after" test "$prc" != 0
	check "fabric-5.11 ... node $T's ping flood was answered before ($n0 replies) and stops at once (then $n1)" \
		test "$n0" -gt 0 -a "$n1" -le $((n0 + 1))
	same "fabric-5.12 ... its interfaces are as before" "$(desc_node "$R")" "$(want_node "$R")"
	ALLOWED=$(allowed_pairs)
	same_set "fabric-5.13 ... khctl allowed drops its pairs" "$ALLOWED" "$(share_pairs)"
	m=$(ping_matrix 4 "$R")
	same_set "fabric-5.14 ... its IPv4 reachability is the allowed row again" \
		"$(awk '$4 == "ok" {print $1, $2}' <<<"$m" | sort -u)" "$(grep "^$R " <<<"$ALLOWED")"
else
	ok "fabric-5.1 # skip no node has a domain of its principal to join"
fi

# ---- fabric-6: reset, release, and the next owner ----------------------------
stage "fabric-6"
# mess R: what a principal's root may leave behind: a changed MAC, an
# address, a route, a device of its own.
mess() {
	nsx "$1" ip link set eth0 down
	nsx "$1" ip link set eth0 address 02:00:00:00:de:ad
	nsx "$1" ip link set eth0 up
	nsx "$1" ip addr add 192.0.2.66/24 dev eth0
	nsx "$1" ip route add 198.51.100.0/24 via 192.0.2.1
	nsx "$1" ip link add leftover type veth peer name leftover1
} 2>/dev/null
# The node with most interfaces.
V=
for r in "${RANKS[@]}"; do
	[ -z "$V" ] || [ "$(wc -w <<<"${SLOTS[$r]}")" -gt "$(wc -w <<<"${SLOTS[$V]}")" ] && V=$r
done
u=${OWNER[$V]}
oldpeers=$(grep "^$V " <<<"$ALLOWED" | awk '{print $2}')
oldnets=${SLOTS[$V]}
FNS=$(fabric_ns)
if [ -n "$FNS" ]; then
	same "fabric-6.1 node $V's interfaces are macvlans on its domains' segments in the fabric" "$(ports "$V")" \
		"$(s=($oldnets); for i in "${!s[@]}"; do [ "${s[i]}" != 0 ] && echo "n${V}e$i d${s[i]}"; done | sort)"
else
	nok "fabric-6.1 khd's fabric namespace (segments d<netid>) is found among its open namespaces"
fi

# Reset: the node's root also deleted its last interface; the next boot
# has every interface of its domains again, as the plan says.
mess "$V"
s=($oldnets)
nsx "$V" ip link del "eth$((${#s[@]} - 1))"
o=
khctl reset -c "pw-$u" "$u" "$V"
# as a user would: load once the node is back in its monitor
for _ in $(seq 50); do [ "$(khctl nodes | awk -v v="$V" '$1 == v {print $2}')" = monitor ] && break; sleep 0.1; done
{ printf 'mrw $ramfsaddr %d\n' "$SIZE"; cat "$APP"; echo 'run kboot'; } |
	khcon -c "pw-$u" "$u" --prefix --timeout 30 --until 'appliance up on' --count 1 -n "$V" "${CHANOF[$V]}" >"$D/reboot.log" 2>&1
rc=$?
o="khcon: $(tr -d '\r' <"$D/reboot.log" | grep -avE '^ *#|Sanitizer|^=*$' | head -c 600)
khd.log: $(tail -n 3 "$D/khd.log")"
check "fabric-6.2 after a reset, node $V boots again and says so on its channel" test "$rc" = 0
PID[$V]=$(node_pid "$V")
settle >/dev/null
got=$(desc_node "$V")
want=$(want_node "$V")
o=$(comm -13 <(echo "$got") <(echo "$want"))
check "fabric-6.3 after its root deleted eth$((${#s[@]} - 1)) and changed eth0, a reset and a new boot give node $V its interfaces as planned" test -z "$o"
extra=$(comm -23 <(echo "$got") <(echo "$want"))
[ -n "$extra" ] && echo "# note: what the last boot's root set survives a reset: $(tr '\n' ';' <<<"$extra")" >&3
m=$(ping_matrix 4 "$V")
same_set "fabric-6.4 ... and it reaches exactly its allowed row by IPv4" \
	"$(awk '$4 == "ok" {print $1, $2}' <<<"$m" | sort -u)" "$(grep "^$V " <<<"$ALLOWED")"

# Release: the node's interfaces leave the fabric; nobody reaches it.
mess "$V"
o=
fabric_ports() { khctl info | sed -n 's/^fabric .* ports=\([0-9]*\) .*/\1/p'; }
PORTS0=$(fabric_ports)
check "fabric-6.5 khctl release of node $V" khctl release -c "pw-$u" "$u" "$V"
for _ in $(seq 30); do node_pid "$V" >/dev/null || break; sleep 0.1; done
same "fabric-6.6 ... khd counts none of its interfaces any more" "$(fabric_ports)" "$((PORTS0 - $(for n in $oldnets; do [ "$n" != 0 ] && echo; done | wc -l)))"
same "fabric-6.7 ... khctl allowed no longer lists it" "$(allowed_pairs | grep -E "(^$V |^[0-9]+ $V\$)")" ""
RANKS=($(printf '%s\n' "${RANKS[@]}" | grep -vx "$V"))
o=$(for p in $oldpeers; do
	for d in $oldnets; do
		[ "$d" != 0 ] && in_net "$p" "$d" || continue
		nsx "$p" busybox ping -c 2 -i 0.2 -W 1 -w 2 -q "$(v4 "$d" "$V")" >/dev/null 2>&1 && echo "node $p reaches $(v4 "$d" "$V")" &
	done
done; wait)
check "fabric-6.8 ... its former peers no longer reach its addresses" test -z "$o"

# The next owner gets the same node (the only free one) and finds nothing
# of the last one's: fresh interfaces, no extra address, route or device.
block=$(khget -c pw-dave dave 1)
unset 'OWNER[$V]' 'SLOTS[$V]'
parse_block dave 1 <<<"$block"
RANKS=($(printf '%s\n' "${RANKS[@]}" | sort -n))
same "fabric-6.9 the released node is allocated again" "$(tail -n1 <<<"$block")" "nodes: $V"
{ printf 'mrw $ramfsaddr %d\n' "$SIZE"; cat "$APP"; echo 'run kboot'; } |
	khcon -c pw-dave dave --prefix --timeout 60 --until 'appliance up on' --count 1 "${CHANOF[$V]}" >/dev/null 2>&1
PID[$V]=$(node_pid "$V")
o=
check "fabric-6.10 ... and boots" test -n "${PID[$V]}"
settle >/dev/null
same "fabric-6.11 ... with only its new owner's interfaces: nothing of the last owner's" \
	"$(desc_node "$V")" "$(want_node "$V")"
ALLOWED=$(allowed_pairs)
same_set "fabric-6.12 ... khctl allowed pairs it with no one of before" "$ALLOWED" "$(share_pairs)"
m=$(ping_matrix 4 "$V")
same_set "fabric-6.13 ... and it reaches exactly its allowed row by IPv4" \
	"$(awk '$4 == "ok" {print $1, $2}' <<<"$m" | sort -u)" "$(grep "^$V " <<<"$ALLOWED")"

# ---- fabric-7: khd stops and takes its fabric with it ----------------------
stage "fabric-7"
stop_khd
o=
check "fabric-7.1 the host uplink kh$FAC is gone when khd stops" bash -c "! ip link show kh$FAC >/dev/null 2>&1"
done_testing

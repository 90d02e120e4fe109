# vm-*: QEMU nodes (issue 14) as a user drives them: Listing 1 on two vm
# nodes (a Debian kernel in a uImage, the web appliance, run kboot, pages
# fetched per node), the serial console on the channel and through ssh
# con<C>@host, bootargs as the kernel's command line, the guest's power
# off, reboot and panic and reset back to the monitor, domains shared with
# ct nodes and enforced against vm nodes, CPU quota and metering, and bad
# input (one line each).  Boots are under QEMU's TCG here (about 3 s each
# on an idle host); the test holds at most four VMs at once.
. "$(dirname "$0")/lib.sh"
TOP=$(cd "$(dirname "$0")/../.." && pwd)

KERNEL=${KH_VM_KERNEL:-$(ls -1 /boot/vmlinuz-*-cloud-amd64 2>/dev/null | sort -V | tail -n1)}
if ! command -v qemu-system-x86_64 >/dev/null || [ -z "$KERNEL" ]; then
	ok "vm # SKIP no qemu-system-x86_64 or no /boot/vmlinuz-*-cloud-amd64 (scripts/deps.sh installs them)"
	done_testing
	exit
fi
KVER=${KERNEL##*/vmlinuz-}
W=$(mktemp -d /tmp/kh-e2e-vm-XXXXXX)
T_DIRS+=("$W")

# The appliances, with the virtio modules of that kernel; the kernel
# wrapped as Listing 1 loads it (mkimage -T kernel -C none: a bzImage
# decompresses itself).
khappliance -q --kmod "$KVER" -r "$TOP/appliances/web" -o "$W/web.cpio.gz" || exit 1
khappliance -q --kmod "$KVER" -r "$TOP/appliances/shell" -o "$W/shell.cpio.gz" || exit 1
mkimage -q -A x86_64 -O linux -T kernel -C none -a 0 -e 0 -n "$KVER" -d "$KERNEL" "$W/uImage" >/dev/null

# One facility holds the external uplink per host: wait a while for
# another test's to go, else fetch the pages from a node.
uplink_busy() { ip -br addr | grep -q ' 10\.0\.31\.254/'; }
for _ in $(seq 30); do uplink_busy || break; sleep 1; done

export KH_VM_QUIET_S=4
cat >"$W/khd.conf" <<'EOF'
type vm1 backend=vm cpus=1 mem=256M count=4
type ct1 cpus=1 mem=256M count=2
type vmtiny backend=vm cpus=1 mem=32M count=1
type vmhalf backend=vm cpus=0.5 mem=256M count=1
EOF
# start_khd, with the types above in DIR/khd.conf
D=$(mktemp -d /tmp/kh-e2e-XXXXXX)
T_DIRS+=("$D")
cp "$W/khd.conf" "$D/khd.conf"
export KH_SOCKET=$D/khd.sock
# khd's own sshd on a free loopback port, for ssh con<C>@host (vm-2.8)
SSHP=""
if [ -x /usr/sbin/sshd ]; then
	for _ in $(seq 50); do
		p=$((20000 + RANDOM % 20000))
		ss -Hltn "sport = :$p" | grep -q . || { SSHP=$p; break; }
	done
fi
ASAN_OPTIONS="${ASAN_OPTIONS:-}:log_path=$D/san" UBSAN_OPTIONS="${UBSAN_OPTIONS:-}:log_path=$D/san" \
	khd -d "$D" --load-timeout 5000 ${SSHP:+--ssh-port "$SSHP" --ssh-listen 127.0.0.1} || exit 1
FAC=$(khctl info | head -n1 | awk '{print $4}')
# Another test may have taken the uplink meanwhile: what counts is
# whether this facility holds it.
HOSTFETCH=0
ip -o -4 addr show dev "kh$FAC" 2>/dev/null | grep -q ' 10\.0\.31\.254/20 ' && HOSTFETCH=1
export KH_CRED=pw KH_USER=alice
norm() { sed -E 's/\r//g; s/^(\[[0-9]+\] )((=> )|(\/ # )|(~ # )|(\x1b\[6n))+/\1/'; }
con() { # con CHANNEL SECS UNTIL [COUNT] [khcon options]
	local c=$1 t=$2 u=$3 n=1
	shift 3
	case "${1:-}" in [0-9]*) n=$1; shift ;; esac
	khcon -c pw alice --prefix --timeout "$t" --until "$u" --count "$n" "$@" "$c" | norm
}
state() { khctl nodes | awk -v r="$1" '$1 == r {print $2}'; }
qemu_of() { pgrep -f "qemu-system-x86_64 -name kh$FAC-n$1( |\$)"; }

# ---- vm-1: khctl info, and Listing 1 on two vm nodes -------------------
info=$(khctl info)
check "vm-1.1 khctl info names QEMU and the accelerator (kvm, or tcg and why not kvm)" \
	grep -qE '^vm qemu=/[^ ]*qemu-system-x86_64 accel=(kvm|tcg \(.+\))$' <<<"$info"
ACCEL=$(sed -nE 's/^vm qemu=[^ ]* accel=([a-z]+).*/\1/p' <<<"$info")
same "vm-1.2 khctl info --json says the same" "$(khctl info --json | jq -r .vm.accel)" "$ACCEL"

if [ "$HOSTFETCH" = 1 ]; then
	nodes=$(khget -x -p 1 -t vm1 alice 2)
else
	nodes=$(khget -t vm1 alice 2)
fi
CON=$(head -n1 <<<"$nodes" | cut -d@ -f1)
ips=$(awk '/^nodeinfo:/ {print $2 "=" $4}' <<<"$nodes")
o=$(khdo loadkernel "$W/uImage" <<<"$nodes" 2>&1)
same "vm-1.3 khdo loadkernel a Debian kernel (uImage-wrapped bzImage) into 2 vm nodes" "$? $o" "0 "
o=$(khdo loadramdisk "$W/web.cpio.gz" <<<"$nodes" 2>&1)
same "vm-1.4 khdo loadramdisk the web appliance" "$? $o" "0 "
t0=$(date +%s%N)
o=$(khdo -t 120 --prefix --until 'web: nginx serving' write 'run kboot' <<<"$nodes" | norm)
echo "# two vm nodes booted to nginx in $((($(date +%s%N) - t0) / 1000000)) ms ($ACCEL)" >&3
check "vm-1.5 run kboot: the monitor starts the kernel in QEMU and says how" \
	grep -qE "^\[0\] ## Starting the kernel in QEMU \(($([ "$ACCEL" = kvm ] && echo KVM || echo 'TCG: software emulation')), 1 vCPU, 256 MiB\)" <<<"$o"
same "vm-1.6 ... both guests' /init configured eth0 from the command line and started nginx" \
	"$(grep -cE '^\[[01]\] web: nginx serving http://10\.0\.[0-9]+\.[0-9]+/ on kh'"$FAC"'-n[01]$' <<<"$o")" "2"
if [ "$HOSTFETCH" = 1 ]; then
	p=$(khdo peripcmd 'echo == %ip%; timeout 20 wget -qO- http://%ip%/' <<<"$nodes")
else
	p=""
	for ri in $ips; do
		other=$(awk -v me="$ri" '$0 != me' <<<"$ips" | head -n1)
		r=${other%%=*}
		p+="== ${ri#*=}"$'\n'
		p+=$(echo "wget -qO- http://${ri#*=}/; echo fetched-\$((40+2))" |
			con "$CON" 30 "fetched-42" -n "$r" | sed -E 's/^\[[0-9]+\] //' | grep -v fetched-42)
		p+=$'\n'
	done
fi
bad=""
for ri in $ips; do
	r=${ri%%=*} ip=${ri#*=}
	awk -v ip="$ip" '$0 == "== " ip {on=1; next} /^== / {on=0} on' <<<"$p" >"$W/page"
	grep -q "<h1>kh$FAC-n$r</h1>" "$W/page" && grep -q "<li>eth0 $ip</li>" "$W/page" || bad="$bad $r"
done
if [ "$HOSTFETCH" = 1 ]; then
	check "vm-1.7 khdo peripcmd \"wget http://%ip%/\": each vm node's page names that node" test -z "$bad"
else
	check "vm-1.7 each vm node's page (fetched by the other node) names that node" test -z "$bad"
	ok "vm-1.8 pages fetched from the host # SKIP another facility holds the external uplink"
fi

# ---- vm-2: the console is the serial port, joined to the channel --------
o=$(echo 'echo "m$((6*7)) k=$(uname -r) h=$(hostname) p1=$(cat /proc/1/comm)"' | con "$CON" 20 "m42 k=" 2)
same "vm-2.1 broadcast input reaches both guests; output comes back prefixed per node" \
	"$(grep -cE "^\[[01]\] m42 k=$KVER h=kh$FAC-n[01] p1=init$" <<<"$o")" "2"
o=$(echo 'echo only-$((6*7))' | con "$CON" 10 "only-42" -n 1)
check "vm-2.2 input aimed at node 1 reaches node 1" grep -q '^\[1\] only-42' <<<"$o"
check "vm-2.3 ... and not node 0" test "$(grep -c '^\[0\] .*only-42' <<<"$o")" = 0
# Raw output is bytes in arrival order (docs/channels.md), and a serial
# port sends a byte at a time: two guests that print at once interleave
# their bytes.  Node n prints n seconds after the command.
o=$(echo 'sleep $(hostname | sed "s/.*-n//"); echo raw-$((6*7))' | khcon -c pw alice --timeout 15 --until raw-42 --count 2 "$CON" | tr -d '\r')
same "vm-2.4 raw mode: both guests' output merged, unprefixed" "$(grep -o 'raw-42' <<<"$o" | wc -l) $(grep -c '^\[' <<<"$o")" "2 0"
o=$(echo 'echo ro-$((6*7))' | khcon -c pw alice --ro --timeout 3 --idle 1500 "$CON" | tr -d '\r')
check "vm-2.5 a read-only attachment sends nothing to the guests" test "$(grep -c '^ro-42' <<<"$o")" = 0
# The kernel's command line: bootargs (the default here), then the plan.
o=$(echo 'echo "cl$((6*7))=$(cat /proc/cmdline)"' | con "$CON" 20 "cl42=" 2)
bad=""
for ri in $ips; do
	r=${ri%%=*} ip=${ri#*=}
	cl=$(sed -nE "s/^\[$r\] cl42=//p" <<<"$o" | head -n1)
	[[ "$cl" == "console=ttyS0 panic=-1 quiet no_timer_check kh.node=kh$FAC-n$r kh.eth"* ]] &&
		grep -qE " kh\.eth[0-9]=${ip//./\\.}/20,fd4b:6b68:[0-9a-f]+::$(printf %x $((r + 1)))/64,mac=02:4b(:[0-9a-f]{2}){4}( |,|\$)" <<<"$cl" ||
		bad+=" node $r: '$cl';"
done
check "vm-2.5b the guests' command line is bootargs (the default), then kh.node and kh.ethN=IPV4/20,IPV6/64,mac=" test -z "$bad"
# The guest's NIC has the plan's MAC (02:4b:NETID:RANK, docs/fabric.md),
# the one its command line names.
o=$(echo 'echo "mac$((6*7))=$(cat /sys/class/net/eth0/address) $(cat /proc/cmdline)"' | con "$CON" 20 "mac42=" 2)
bad=""
for ri in $ips; do
	r=${ri%%=*}
	l=$(sed -nE "s/^\[$r\] mac42=//p" <<<"$o" | head -n1)
	got=${l%% *}
	net=$(grep -oE ' kh\.eth0=[^ ]*' <<<"$l" | sed -nE 's/.*,fd4b:6b68:([0-9a-f]+)::.*/\1/p')
	want=$(printf '02:4b:%02x:%02x:%02x:%02x' $((0x${net:-0} >> 8)) $((0x${net:-0} & 255)) $((r >> 8)) $((r & 255)))
	[ -n "$net" ] && [ "$got" = "$want" ] && grep -q " kh\.eth0=[^ ]*,mac=$want" <<<"$l" || bad+=" node $r: $got, want $want;"
done
check "vm-2.5c the guests' eth0 has the plan's MAC (02:4b:NETID:RANK), as on the command line" test -z "$bad"
if [ -n "$SSHP" ]; then
	K=$W/keys
	mkdir -p "$K"
	ssh-keygen -q -t ed25519 -N '' -C alice@test -f "$K/alice"
	khctl addkey -c pw alice "$K/alice.pub" >/dev/null
	sshc() { timeout 30 ssh -p "$SSHP" -o IdentitiesOnly=yes -o StrictHostKeyChecking=accept-new \
		-o UserKnownHostsFile="$K/known_hosts" -o BatchMode=yes -o LogLevel=ERROR -i "$K/alice" "$CON@127.0.0.1" "$@"; }
	o=$(echo 'echo "ssh-$((6*7)) $(hostname)"' | sshc prefix until ssh-42 count 2 timeout 20 | norm)
	same "vm-2.8 ssh con<C>@host with the stock client: both guests answer, prefixed" \
		"$(grep -cE "^\[[01]\] ssh-42 kh$FAC-n[01]$" <<<"$o")" "2"
	o=$(echo 'echo "one-$((6*7))"' | sshc prefix n 1 until one-42 timeout 20 | norm)
	same "vm-2.9 ... n 1: only node 1's guest gets it" "$(grep -c 'one-42' <<<"$o") $(grep -c '^\[1\] one-42' <<<"$o")" "1 1"
else
	ok "vm-2.8 ssh con<C>@host # SKIP no /usr/sbin/sshd (scripts/deps.sh installs openssh-server)"
fi
pid0=$(qemu_of 0)
cg=$(grep -E ':(memory|0):' "/proc/$pid0/cgroup" 2>/dev/null | head -n1)
check "vm-2.6 QEMU runs in the node's cgroup" grep -q "/kh-$FAC/n0$" <<<"$cg"
# Unprivileged (docs/nodes.md): not host root, a uid of its node's own,
# no capability, and only the descriptors it needs (console, log, taps,
# kernel and ramdisk).
q0=$(awk '/^Uid:/ {print $2, $3, $4, $5}' "/proc/$pid0/status")
q1=$(awk '/^Uid:/ {print $2}' "/proc/$(qemu_of 1)/status")
check "vm-2.6b QEMU runs as a non-zero uid, all four" bash -c 'set -- $1; [ "$1" -gt 0 ] && [ "$1" = "$2" ] && [ "$1" = "$3" ] && [ "$1" = "$4" ]' _ "$q0"
check "vm-2.6c ... another for each node" test -n "$q1" -a "$q1" != "${q0%% *}"
same "vm-2.6d ... with no capability" "$(awk '/^CapEff:|^CapPrm:/ {print $2}' "/proc/$pid0/status" | sort -u)" "0000000000000000"
same "vm-2.6e ... and none of khd's files open (socket, state, ledger, log)" \
	"$(ls -l "/proc/$pid0/fd" | grep -cE ' -> .*(khd\.sock|state\.db|ledger|khd\.log)')" "0"
# QEMU's own seccomp filter (-sandbox) and mount namespace (docs/hardening.md)
same "vm-2.6f QEMU runs under a seccomp filter (-sandbox on, every optional part denied)" \
	"$(awk '/^Seccomp:/ {print $2}' "/proc/$pid0/status") $(tr '\0' ' ' <"/proc/$pid0/cmdline" | grep -o -- '-sandbox [^ ]*')" \
	"2 -sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"
check "vm-2.6g ... in a mount namespace of its own" test "$(readlink "/proc/$pid0/ns/mnt")" != "$(readlink /proc/self/ns/mnt)"
same "vm-2.6h ... whose root holds /usr and little else: no khd directory, /tmp, /home, /root, /etc files" \
	"$(ls "/proc/$pid0/root/" | tr '\n' ' ')|$(ls "/proc/$pid0/root/etc" | tr '\n' ' ')|$(test -e "/proc/$pid0/root$D" && echo khd-dir-visible)" \
	"$( (for f in bin lib lib32 lib64 libx32 sbin; do [ -e "/$f" ] || [ -L "/$f" ] && echo "$f"; done
		printf '%s\n' dev etc proc usr) | sort | tr '\n' ' ')|ld.so.cache |"
check "vm-2.6i ... read-only, down to /usr" bash -c "! touch /proc/$pid0/root/x 2>/dev/null && awk '\$5 == \"/usr\" {print \$6}' /proc/$pid0/mountinfo | grep -q '^ro'"
if [ -d /sys/fs/cgroup/memory ]; then
	lim=$(find /sys/fs/cgroup/memory -path "*kh-$FAC/n0/memory.limit_in_bytes" -exec cat {} \; | head -n1)
else
	lim=$(cat "$(find /sys/fs/cgroup -type d -path "*kh-$FAC/n0" | head -n1)/memory.max")
fi
check "vm-2.7 its memory limit is the guest's 256 MiB plus QEMU's own (at most 512 MiB)" \
	test "$lim" -gt $((256 << 20)) -a "$lim" -le $((512 << 20))

# ---- vm-3: power off, reboot, reset ---------------------------------------
o=$(echo 'poweroff -f' | con "$CON" 30 "back in the monitor" -n 1)
check "vm-3.1 the guest powers off: node 1 says it is back in the monitor" \
	grep -q '^\[1\] ## node 1: the VM stopped (powered off, rebooted or panicked); back in the monitor' <<<"$o"
same "vm-3.2 ... its state is monitor, QEMU is gone" "$(state 1) $(qemu_of 1 | wc -l)" "monitor 0"
# bootargs of the principal's own: the kernel gets them as they are.
o=$(echo 'setenv bootargs console=ttyS0 panic=-1 no_timer_check kh.audit=42; run kboot' | con "$CON" 120 "web: nginx serving" -n 1)
check "vm-3.3 run kboot boots it again from what stays loaded" grep -q '^\[1\] web: nginx serving' <<<"$o"
o=$(echo 'echo "cl$((6*7))=$(cat /proc/cmdline)"' | con "$CON" 20 "cl42=" -n 1)
check "vm-3.3b ... with the bootargs set in the monitor (setenv bootargs) as its command line" \
	grep -qE "^\[1\] cl42=console=ttyS0 panic=-1 no_timer_check kh\.audit=42 kh\.node=kh$FAC-n1 kh\.eth" <<<"$o"
o=$(echo 'echo b > /proc/sysrq-trigger' | con "$CON" 30 "back in the monitor" -n 1)
check "vm-3.4 a guest that reboots is back in the monitor too" grep -q '^\[1\] ## node 1: the VM stopped' <<<"$o"
same "vm-3.4b ... its state is monitor, QEMU is gone" "$(state 1) $(qemu_of 1 | wc -l)" "monitor 0"
o=$(echo 'run kboot' | con "$CON" 120 "web: nginx serving" -n 1)
o=$(echo 'echo c > /proc/sysrq-trigger' | con "$CON" 60 "back in the monitor" -n 1)
check "vm-3.5 a guest that panics (sysrq c; panic=-1 in the default bootargs) is back in the monitor too" \
	grep -q '^\[1\] ## node 1: the VM stopped (powered off, rebooted or panicked); back in the monitor' <<<"$o"
check "vm-3.6 ... after the guest's own panic message (the console is the serial port to the end)" \
	grep -q '^\[1\] .*Kernel panic - not syncing' <<<"$o"
same "vm-3.7 ... its state is monitor, QEMU is gone" "$(state 1) $(qemu_of 1 | wc -l)" "monitor 0"

# ---- vm-4: domains shared with ct nodes, enforced against vm nodes ------
# The fabric's reachability test (tests/e2e/fabric.sh, fabric-2) with a mix:
# alice: vm nodes 0 and 1 and a ct node in her domain; bob: a vm node and a
# ct node in his.  From inside every node (the guest's shell, or the ct
# node's), ping every address of every other node, IPv4 and IPv6: an
# address answers exactly the nodes in its domain, and the pairs that
# reach each other are those khctl allowed says.  Then bob's vm node takes
# an address in alice's subnet, which must not help it.
NET=$(awk '/^network/ {print $2; exit}' <<<"$nodes")
[ "$HOSTFETCH" = 1 ] && NET=$(awk '/^network/ && $2 ~ /^[0-9]+$/ && $2 > 2 {print $2; exit}' <<<"$nodes")
if [ -z "$NET" ]; then NET=3; fi
ctb=$(khget -t ct1 -n "$NET" alice 1)
CTCON=$(head -n1 <<<"$ctb" | cut -d@ -f1)
CTR=$(awk '/^nodes:/ {print $2}' <<<"$ctb")
khdo loadramdisk "$W/shell.cpio.gz" <<<"$ctb" >/dev/null
khdo -t 30 --until 'appliance up' write 'run kboot' <<<"$ctb" >/dev/null
# node 1 again (it panicked in vm-3), beside bob's boot
(echo 'run kboot' | con "$CON" 120 "web: nginx serving" -n 1 >"$W/boot1.out") &
boot1=$!
bb=$(khget -c pwb -t vm1 bob 1)
BCON=$(head -n1 <<<"$bb" | cut -d@ -f1)
BR=$(awk '/^nodes:/ {print $2}' <<<"$bb")
BNET=$(awk '/^network/ {print $2; exit}' <<<"$bb")
khdo -c pwb bob loadkernel "$KERNEL" <<<"$bb" >/dev/null
khdo -c pwb bob loadramdisk "$W/shell.cpio.gz" <<<"$bb" >/dev/null
o=$(khdo -c pwb bob -t 120 --until 'appliance up' write 'run kboot' <<<"$bb" | tr -d '\r')
check "vm-4.0 a bare bzImage (not wrapped in a uImage) boots too" grep -q 'appliance up' <<<"$o"
cbb=$(khget -c pwb -t ct1 -n "$BNET" bob 1)
CTBCON=$(head -n1 <<<"$cbb" | cut -d@ -f1)
CTBR=$(awk '/^nodes:/ {print $2}' <<<"$cbb")
khdo -c pwb bob loadramdisk "$W/shell.cpio.gz" <<<"$cbb" >/dev/null
khdo -c pwb bob -t 30 --until 'appliance up' write 'run kboot' <<<"$cbb" >/dev/null
wait "$boot1"
check "vm-4.0b node 1 boots again" grep -q '^\[1\] web: nginx serving' "$W/boot1.out"
v4() { local n=$1 h=$(($2 + 1)); echo "10.$((n >> 4)).$((((n & 15) << 4) | (h >> 8))).$((h & 255))"; }
v6() { printf 'fd4b:6b68:%x::%x\n' "$1" $(($2 + 1)); }
MIX="0 1 $CTR $BR $CTBR"
declare -A WHO=([0]="pw alice $CON" [1]="pw alice $CON" [$CTR]="pw alice $CTCON" [$BR]="pwb bob $BCON" [$CTBR]="pwb bob $CTBCON")
NODES=$(khctl nodes)
doms() { awk -v r="$1" '$1 == r {print $5}' <<<"$NODES" | tr ',' ' '; }
in_dom() { [[ " $(doms "$1") " == *" $2 "* ]]; }
# mix_matrix 4|6: "A B NETID ok|no" for every node A, every other node B,
# every domain of B: does B's address there answer a ping from A's shell?
mix_matrix() {
	local fam=$1 a b d t cmd=ping pids=()
	[ "$fam" = 6 ] && cmd=ping6
	for a in $MIX; do
		t=""
		for b in $MIX; do
			[ "$a" = "$b" ] && continue
			for d in $(doms "$b"); do
				if [ "$fam" = 4 ]; then t+=" $b/$d/$(v4 "$d" "$b")"; else t+=" $b/$d/$(v6 "$d" "$b")"; fi
			done
		done
		# shellcheck disable=SC2086
		set -- ${WHO[$a]}
		echo "for t in$t; do (if busybox $cmd -c 2 -W 2 \${t##*/} >/dev/null 2>&1; then echo mx \${t%/*} ok; else echo mx \${t%/*} no; fi) & done; wait; echo mxdone$a-\$((1+1))" |
			khcon -c "$1" "$2" --prefix -n "$a" --timeout 60 --until "mxdone$a-2" "$3" | tr -d '\r' |
			sed -nE "s#^\[$a\] (.*)?mx ([0-9]+)/([0-9]+) (ok|no)\$#$a \2 \3 \4#p" >"$W/mx.$a" &
		pids+=($!)
	done
	wait "${pids[@]}"
	for a in $MIX; do cat "$W/mx.$a"; done
}
mix_expect() { # for "A B NETID ...": ok iff A is in NETID too
	local a b d r
	while read -r a b d r; do
		if in_dom "$a" "$d"; then echo "$a $b $d ok"; else echo "$a $b $d no"; fi
	done
}
ALLOWED=$(for a in $MIX; do for b in $MIX; do [ "$a" = "$b" ] || khctl allowed "$a" "$b"; done; done |
	awk '$3 == "yes" {print $1, $2}' | sort)
npairs=0
for a in $MIX; do for b in $MIX; do [ "$a" = "$b" ] || npairs=$((npairs + $(doms "$b" | wc -w))); done; done
for fam in 4 6; do
	m=$(mix_matrix "$fam")
	same "vm-4.1.$fam IPv$fam, vm and ct nodes of 2 principals: each of the $npairs (node, address) pairs tried" "$(grep -c . <<<"$m")" "$npairs"
	same "vm-4.2.$fam ... an address answers exactly the nodes in its domain" "$m" "$(mix_expect <<<"$m")"
	same "vm-4.3.$fam ... the pairs that reach each other are those khctl allowed says" \
		"$(awk '$4 == "ok" {print $1, $2}' <<<"$m" | sort -u)" "$ALLOWED"
done
check "vm-4.4 ... vm-ct pairs share a domain, vm-vm and vm-ct pairs across domains do not" \
	bash -c 'grep -qx "0 $2" <<<"$1" && grep -qx "$2 0" <<<"$1" && grep -qx "$4 $3" <<<"$1" &&
		! grep -qx "0 $3" <<<"$1" && ! grep -qx "$4 0" <<<"$1" && ! grep -qx "1 $4" <<<"$1"' _ "$ALLOWED" "$CTR" "$BR" "$CTBR"
pingf() { # pingf CRED USER CON RANK ADDR: "yes" if ADDR answers from that node
	echo "ping -c 2 -W 2 $5 >/dev/null 2>&1 && echo reach-\$((1+1))-yes || echo reach-\$((1+1))-no" |
		khcon -c "$1" "$2" --prefix -n "$4" --timeout 30 --until "reach-2-" "$3" | tr -d '\r' |
		sed -nE "s/^\[$4\] (.*)?reach-2-(yes|no).*/\2/p" | tail -n1
}
echo "ip addr add $(v4 "$NET" 200)/20 dev eth0; echo added-\$((1+1))" |
	khcon -c pwb bob --timeout 10 --until added-2 "$BCON" >/dev/null
same "vm-4.5 bob's vm node with a forged address in alice's subnet reaches neither her ct node nor her vm node" \
	"$(pingf pwb bob "$BCON" "$BR" "$(v4 "$NET" "$CTR")") $(pingf pwb bob "$BCON" "$BR" "$(v4 "$NET" 0)")" "no no"
o=$(khctl addnet alice 2 0 2>&1)
check "vm-4.6 addnet to a running vm node is refused with one line (no NIC hot-plug)" \
	grep -qE '^khctl: vm nodes: change domains in the monitor \(node [0-9]+ is running; khctl reset first\)$' <<<"$o"

# ---- vm-5: metering --------------------------------------------------------
sleep 2.5
bill=$(khbill usage -c pw alice --json)
b() { jq -r --arg r "$1" '[.usage[] | select(.resource == $r) | .base] | add // 0' <<<"$bill"; }
check "vm-5.1 node time is billed by type (node-time:vm1 and node-time:ct1)" \
	test "$(b node-time:vm1)" -gt 2000 -a "$(b node-time:ct1)" -gt 0
check "vm-5.2 the guests' CPU (QEMU's, in the node's cgroup) is billed" test "$(b cpu)" -gt 500000
check "vm-5.3 ... and their memory" test "$(b mem-peak)" -gt $((32 << 20))
check "vm-5.4 network bytes in the vm nodes' domain are billed" test "$(b "net-tx:$NET")" -gt 0 -a "$(b "net-rx:$NET")" -gt 0
check "vm-5.5 console bytes are billed (in and out)" test "$(b console-out)" -gt 0 -a "$(b console-in)" -gt 0
# The type's CPU quota holds for the whole VM: a guest that spins on its
# one vCPU gets half a CPU on a cpus=0.5 node (QEMU alone would take one).
hb=$(khget -t vmhalf alice 1)
HCON=$(head -n1 <<<"$hb" | cut -d@ -f1)
HR=$(awk '/^nodes:/ {print $2}' <<<"$hb")
khdo loadkernel "$W/uImage" <<<"$hb" >/dev/null
khdo loadramdisk "$W/shell.cpio.gz" <<<"$hb" >/dev/null
o=$(khdo -t 180 --until 'appliance up' write 'run kboot' <<<"$hb" | tr -d '\r')
check "vm-5.6 a cpus=0.5 vm node boots" grep -q 'appliance up' <<<"$o"
if [ -d /sys/fs/cgroup/cpu ]; then
	hq=$(cat "$(find /sys/fs/cgroup/cpu/ -path "*kh-$FAC/n$HR/cpu.cfs_quota_us" | head -n1)")
	hp=$(cat "$(find /sys/fs/cgroup/cpu/ -path "*kh-$FAC/n$HR/cpu.cfs_period_us" | head -n1)")
	hcpu() { cat "$(find /sys/fs/cgroup/cpuacct/ -path "*kh-$FAC/n$HR/cpuacct.usage" | head -n1)"; }
else
	hcg=$(find /sys/fs/cgroup -type d -path "*kh-$FAC/n$HR" | head -n1)
	read -r hq hp <"$hcg/cpu.max"
	hcpu() { echo $(($(awk '$1 == "usage_usec" {print $2}' "$hcg/cpu.stat") * 1000)); }
fi
same "vm-5.7 the node's cgroup has the type's quota (0.5 CPU)" "$((hq * 1000 / hp))" "500"
echo 'while :; do :; done &' | khcon -c pw alice --timeout 3 --idle 1000 "$HCON" >/dev/null
sleep 1
c0=$(hcpu) t0=$(date +%s%N)
sleep 4
c1=$(hcpu) t1=$(date +%s%N)
use=$(((c1 - c0) * 1000 / (t1 - t0)))
echo "# a spinning guest on a cpus=0.5 vm node: $use/1000 of a CPU" >&3
check "vm-5.8 ... and it holds: a spinning guest gets at most 0.55 CPU ($use/1000)" test "$use" -le 550 -a "$use" -gt 0
o=$(khctl release alice "$HCON" 2>&1)
same "vm-5.9 release of the spinning vm node" "$? $o $(qemu_of "$HR" | wc -l)" "0  0"

# ---- vm-6: reset, bad input, release ----------------------------------------
# one_fail R PATTERN: node R's answer to "run kboot; echo rc-$?" in $o is
# the monitor's progress lines (as U-Boot's bootm prints them, with a
# legacy image's header), then one
# line matching PATTERN, and the command failed (rc-1).
one_fail() {
	local rest
	rest=$(grep "^\[$1\] " <<<"$o" | sed "s/^\[$1\] //" |
		grep -vE '^(## (Booting kernel|Loading init Ramdisk|Transferring control)|   (Image Name|Created|Image Type|Data Size|Load Address|Entry Point|Verifying Checksum)|run kboot|rc-1$|$)')
	[ "$(grep -c . <<<"$rest")" = 1 ] && grep -qE -- "$2" <<<"$rest" && grep -q "^\[$1\] rc-1" <<<"$o"
}
o=$(khctl reset alice "$CON" 2>&1)
same "vm-6.1 khctl reset of running vm nodes" "$?" "0"
same "vm-6.2 ... QEMU is gone and both are in the monitor" \
	"$(qemu_of 0 | wc -l) $(qemu_of 1 | wc -l) $(state 0) $(state 1)" "0 0 monitor monitor"
o=$(echo 'run kboot; echo rc-$?' | con "$CON" 10 "rc-" -n 0)
check "vm-6.3 the memory was wiped: nothing to boot" grep -q '^\[0\] ## Nothing to boot: no image at 10000000 or 11000000' <<<"$o"
khdo loadramdisk "$W/shell.cpio.gz" <<<"$nodes" >/dev/null
o=$(echo 'run kboot; echo rc-$?' | con "$CON" 10 "rc-" -n 0)
check "vm-6.4 a ramdisk without a kernel: one line, and the node stays in the monitor" \
	one_fail 0 '^## Boot failed: vm nodes boot a kernel: none loaded \(khdo loadkernel FILE' 
head -c 4096 /dev/urandom >"$W/junk"
khdo loadkernel "$W/junk" <<<"$nodes" >/dev/null
o=$(echo 'run kboot; echo rc-$?' | con "$CON" 10 "rc-" -n 0)
check "vm-6.5 a corrupt kernel: one line" one_fail 0 '^## Boot failed: kernel at 0x10000000: not an x86 bzImage' 
head -c 8000000 "$KERNEL" >"$W/short"
khdo loadkernel "$W/short" <<<"$nodes" >/dev/null
o=$(echo 'run kboot; echo rc-$?' | con "$CON" 10 "rc-" -n 0)
check "vm-6.6 a truncated kernel: one line" one_fail 0 '^## Boot failed: kernel at 0x10000000: truncated' 
gzip -1c "$KERNEL" >"$W/kernel.gz"
mkimage -q -A x86_64 -O linux -T kernel -C gzip -a 0 -e 0 -n gz -d "$W/kernel.gz" "$W/uImage.gz" >/dev/null
khdo loadkernel "$W/uImage.gz" <<<"$nodes" >/dev/null
o=$(echo 'run kboot; echo rc-$?' | con "$CON" 10 "rc-" -n 0)
check "vm-6.6b a compressed uImage (mkimage -C gzip): one line" \
	one_fail 0 '^## Boot failed: kernel at 0x10000000: a gzip compressed uImage \(vm nodes take a bzImage as it is: mkimage -C none\)$'
khdo loadkernel "$W/shell.cpio.gz" <<<"$nodes" >/dev/null
o=$(echo 'run kboot; echo rc-$?' | con "$CON" 10 "rc-" -n 0)
check "vm-6.6c a ramdisk loaded as the kernel: one line" one_fail 0 '^## Boot failed: kernel at 0x10000000: a ramdisk, not a kernel$'
same "vm-6.7 ... the node is still in the monitor, no QEMU" "$(state 0) $(qemu_of 0 | wc -l)" "monitor 0"
tb=$(khget -t vmtiny alice 1)
TCON=$(head -n1 <<<"$tb" | cut -d@ -f1)
TR=$(awk '/^nodes:/ {print $2}' <<<"$tb")
khdo loadkernel "$KERNEL" <<<"$tb" >/dev/null
o=$(echo 'run kboot; echo rc-$?' | con "$TCON" 10 "rc-")
check "vm-6.8 a kernel that needs more than the node's memory (no ramdisk): one line" \
	one_fail "$TR" "^## Boot failed: the kernel \([0-9]+ MiB to run\) and the ramdisk \(0 MiB\) do not fit in the node's 32 MiB$"
khdo loadramdisk "$W/web.cpio.gz" <<<"$tb" >/dev/null
o=$(echo 'run kboot; echo rc-$?' | con "$TCON" 10 "rc-")
check "vm-6.8b a kernel and ramdisk larger than the node's memory: one line" \
	one_fail "$TR" "^## Boot failed: the kernel \([0-9]+ MiB to run\) and the ramdisk \([0-9]+ MiB\) do not fit in the node's 32 MiB$"
truncate -s 40M "$W/big"
o=$(khdo loadramdisk "$W/big" <<<"$tb" 2>&1)
check "vm-6.8c a ramdisk larger than the node's memory is refused when it is loaded" \
	bash -c '[ "$1" != 0 ] && grep -q "^khdo: node $2: cannot take 41943040 bytes at 0x11000000" <<<"$3"' _ "$?" "$TR" "$o"
o=$(khctl reset alice "$TCON" 2>&1)
same "vm-6.8d ... and the node is manageable: reset returns it to the monitor" "$? $(state "$TR")" "0 monitor"
# a guest that never prints: bootargs without a console
khdo loadkernel "$KERNEL" <<<"$nodes" >/dev/null
khdo loadramdisk "$W/shell.cpio.gz" <<<"$nodes" >/dev/null
o=$(echo 'setenv bootargs panic=-1 quiet; run kboot' | con "$CON" 30 "nothing from the VM" -n 0)
check "vm-6.9 a guest that never prints anything: one line after KH_VM_QUIET_S" \
	grep -q "^\[0\] ## node 0: nothing from the VM's console in 4 s (does bootargs have console=ttyS0?); reset returns to the monitor" <<<"$o"
o=$(khctl reset alice "$CON" 2>&1)
same "vm-6.10 ... and reset returns it to the monitor" "$? $(state 0) $(qemu_of 0 | wc -l)" "0 monitor 0"
# kill -9 of khd with bob's vm node running: its QEMU runs on and the
# next khd adopts it (tests/e2e/adopt.sh); its release below ends it.
q=$(qemu_of "$BR")
same "vm-6.11 bob's vm node runs before khd is killed" "$(state "$BR") $(wc -w <<<"$q")" "running 1"
kill9_khd
restart_khd --load-timeout 5000
same "vm-6.12 after kill -9 and a restart: the node still runs, the same QEMU" \
	"$(state "$BR") $(qemu_of "$BR")" "running $q"
o=$(khctl release -c pwb bob "$BCON" 2>&1; khctl release -c pwb bob "$CTBCON" 2>&1; khctl release alice "$CTCON" 2>&1; khctl release alice "$TCON" 2>&1; khctl release alice "$CON" 2>&1)
same "vm-6.13 release of vm nodes" "$o" ""
left=$(pgrep -f "qemu-system-x86_64 -name kh$FAC-" | wc -l)
files=$(ls "$D/run/n0" "$D/run/n$BR" 2>/dev/null | grep -cE '^(kernel|initrd)$')
cgs=$(find /sys/fs/cgroup -type d -path "*kh-$FAC/n*" 2>/dev/null | wc -l)
same "vm-6.14 ... nothing is left: no QEMU, no kernel or ramdisk copy, no cgroup" "$left $files $cgs" "0 0 0"
same "vm-6.15 every node is free again" "$(khctl nodes | awk '$2 != "free"' | wc -l)" "0"

# ---- vm-7: examples/webfarm.sh -t vm1 on this facility -------------------
if [ "$HOSTFETCH" = 1 ]; then
	o=$(cd "$TOP" && KH_USER=carol KH_CRED=pwc COUNTS="2" PATH=$BIN:$PATH timeout 600 examples/webfarm.sh -t vm1 2>&1)
	rc=$?
	check "vm-7.1 examples/webfarm.sh -t vm1: Listing 1 with loadkernel, 2 web servers on vm nodes answer" \
		test "$rc" = 0 -a "$(grep -c '^2 of 2 web servers answered with a page naming their node$' <<<"$o")" = 1
	check "vm-7.2 ... it loaded the kernel" grep -q 'khdo loadkernel ./uImage      ([0-9]* ms, [0-9]* bytes to 2 nodes)' <<<"$o"
else
	ok "vm-7 examples/webfarm.sh -t vm1 # SKIP another facility holds the external uplink"
fi

stop_khd
done_testing

#!/bin/bash
# bench/hosts.sh: a facility of 3 hosts on this machine (examples/cluster.sh)
# against one host, in the same run (issue 17).  For N nodes: khget N
# spread over the hosts, one broadcast load of a 3 MB appliance on the
# channel, `run kboot` until every /init has said so; then a console line
# to all N.  Printed: the times (medians of REPEATS), and the bytes that
# crossed to each agent for the load and for the line, against what N
# copies would be (a broadcast crosses to each host once).  The peer: one
# khd with N nodes of its own (its state in SQLite, as a one-host
# facility has it; the cluster's front end uses PostgreSQL).
# Usage (root): bench/hosts.sh [N...]   (default: 48 96)
#
# bench/hosts.sh scale: issue 17 item 8's figures.  khget of NODES (1000)
# spread over HOSTS (4) hosts against khget of as many on one host (its
# own fabric), medians of REPEATS with a release in between; then a
# broadcast load of MIB (16) MiB to the NODES nodes on the HOSTS hosts
# against the same load to 1 node there.  Node-to-node TCP and round trip
# across hosts against one host: bench/vxlan.sh.
set -eu
cd "$(dirname "$0")/.."
BIN=${BIN:-build/bin}
export KH_BIN=$PWD/$BIN
REPEATS=${REPEATS:-3}
SIZES=${*:-48 96}
W=$(mktemp -d /tmp/kh-bench-hosts-XXXXXX)
chmod 755 "$W" # PostgreSQL runs as nobody below it
export KH_CLUSTER=$W/cluster
D=
stopkhd() {
	[ -n "$D" ] || return 0
	pid=$(head -n1 "$D/khd.lock" 2>/dev/null || true)
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
	rm -rf "$D"
	D=
}
trap 'stopkhd; examples/cluster.sh down >/dev/null 2>&1; rm -rf "$W"' EXIT

printf '#!/bin/sh\necho init-running\nexec sh\n' >"$W/init"
tests/lib/mkbusybox.sh "$W/app.cpio" "$W/init"
mkdir -p "$W/root/lib"
(cd "$W/root" && gunzip -c "$W/app.cpio" | cpio -id --quiet)
head -c 1048576 /dev/urandom >"$W/root/lib/payload"
ms() { echo $((($2 - $1) / 1000000)); }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
sent() { "$BIN"/khctl info | awk '$1=="host" {for(i=1;i<=NF;i++) if ($i ~ /^sent=/) s+=substr($i,6)} END {print s+0}'; }

# one run: khget + load + boot + a line, on the facility at KH_SOCKET
# -> "get load boot line load_bytes line_bytes"
one() {
	local n=$1 app=$2 size t0 t1 t2 t3 t4 s0 s1 s2 con
	size=$(stat -c %s "$app")
	t0=$(date +%s%N)
	con=$("$BIN"/khget -c pw bench --place spread "$n" | head -n1 | cut -d@ -f1)
	t1=$(date +%s%N)
	s0=$(sent)
	{ printf 'mrw $ramfsaddr %d\n' "$size"; cat "$app"; echo 'echo loaded-$?'; } |
		"$BIN"/khcon -c pw bench --timeout 120 --until loaded-0 --count "$n" "$con" >/dev/null
	t2=$(date +%s%N)
	echo 'run kboot' | "$BIN"/khcon -c pw bench --timeout 120 --until init-running --count "$n" "$con" >/dev/null
	t3=$(date +%s%N)
	s1=$(sent)
	echo 'echo line-$((6*7))' | "$BIN"/khcon -c pw bench --timeout 60 --until line-42 --count "$n" "$con" >/dev/null
	t4=$(date +%s%N)
	s2=$(sent)
	"$BIN"/khctl release -c pw bench "$con"
	echo "$(ms "$t0" "$t1") $(ms "$t1" "$t2") $(ms "$t2" "$t3") $(ms "$t3" "$t4") $((s1 - s0)) $((s2 - s1))"
}

if [ "${1:-}" = scale ]; then
	HOSTS=${HOSTS:-4}
	NODES=${NODES:-1000}
	MIB=${MIB:-16}
	REPEATS=${REPEATS:-5}
	get() { # -> ms of khget N; the channel in $W/con
		local t0 t1
		t0=$(date +%s%N)
		"$BIN"/khget -c pw bench --place spread "$1" | head -n1 | cut -d@ -f1 >"$W/con"
		t1=$(date +%s%N)
		ms "$t0" "$t1"
	}
	gets() { # N -> median ms of REPEATS khgets, released in between
		for _ in $(seq "$REPEATS"); do
			get "$1"
			"$BIN"/khctl release -c pw bench "$(cat "$W/con")"
			sleep 2 # the fabric's pools refill
		done | median
	}
	head -c $((MIB << 20)) /dev/urandom >"$W/big"
	load() { # N -> ms of a broadcast load of $W/big to N nodes
		local con t0 t1
		"$BIN"/khget -c pw bench --place spread "$1" | head -n1 | cut -d@ -f1 >"$W/con"
		con=$(cat "$W/con")
		# the agents wire the nodes after khget answers: on this one
		# machine their CPU is the front end's too, so wait for them
		sleep 3
		t0=$(date +%s%N)
		{ printf 'mrw $ramfsaddr %d\n' $((MIB << 20)); cat "$W/big"; echo 'echo loaded-$?'; } |
			"$BIN"/khcon -c pw bench --timeout 300 --until loaded-0 --count "$1" "$con" >/dev/null
		t1=$(date +%s%N)
		"$BIN"/khctl release -c pw bench "$con"
		ms "$t0" "$t1"
	}
	loads() { for _ in $(seq "$REPEATS"); do load "$1"; sleep 1; done | median; }
	D=$(mktemp -d /tmp/kh-bench-hosts-d-XXXXXX)
	export KH_SOCKET=$D/khd.sock
	"$BIN"/khd -d "$D" --nodes "$NODES"
	sleep 5 # its free nodes' namespaces made
	one=$(gets "$NODES")
	l1one=$(loads 1)
	lnone=$(loads "$NODES")
	stopkhd
	examples/cluster.sh up "$HOSTS" $(((NODES + HOSTS - 1) / HOSTS)) >/dev/null
	export KH_SOCKET=$KH_CLUSTER/front/khd.sock
	sleep 5
	many=$(gets "$NODES")
	l1=$(loads 1)
	ln=$(loads "$NODES")
	examples/cluster.sh down >/dev/null
	echo "khget $NODES: one host $one ms, $HOSTS hosts $many ms (medians of $REPEATS)"
	ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
	echo "load $MIB MiB: to 1 node $l1 ms, to $NODES nodes on $HOSTS hosts $ln ms: ratio $(ratio "$ln" "$l1")"
	echo "load $MIB MiB, one host: to 1 node $l1one ms, to $NODES nodes $lnone ms: ratio $(ratio "$lnone" "$l1one")"
	exit 0
fi

for N in $SIZES; do
	per=$(((N + 2) / 3))
	for r in $(seq "$REPEATS"); do
		# each run boots a new content, so the cluster's load crosses again
		(cd "$W/root" && echo "$N-$r-$RANDOM" >lib/run && find . | LC_ALL=C sort |
			cpio -o -H newc --quiet -R 0:0) >"$W/app-$r.cpio"
	done
	SIZE=$(stat -c %s "$W/app-1.cpio")
	# the peer: one host
	D=$(mktemp -d /tmp/kh-bench-hosts-d-XXXXXX)
	export KH_SOCKET=$D/khd.sock
	"$BIN"/khd -d "$D" --nodes "$N"
	: >"$W/one"
	for r in $(seq "$REPEATS"); do one "$N" "$W/app-$r.cpio" >>"$W/one"; sleep 1; done
	stopkhd
	# 3 hosts
	examples/cluster.sh up 3 "$per" >/dev/null
	export KH_SOCKET=$KH_CLUSTER/front/khd.sock
	: >"$W/three"
	for r in $(seq "$REPEATS"); do one "$N" "$W/app-$r.cpio" >>"$W/three"; sleep 1; done
	examples/cluster.sh down >/dev/null
	col() { awk -v c="$1" '{print $c}' "$2" | median; }
	echo "N=$N ($per per host), appliance $SIZE bytes, medians of $REPEATS:"
	printf '  %-8s get %5s ms  load %5s ms  boot %5s ms  line %4s ms\n' "1 host" \
		"$(col 1 "$W/one")" "$(col 2 "$W/one")" "$(col 3 "$W/one")" "$(col 4 "$W/one")"
	printf '  %-8s get %5s ms  load %5s ms  boot %5s ms  line %4s ms  crossed: load+boot %s B (N copies: %s B), line %s B\n' \
		"3 hosts" "$(col 1 "$W/three")" "$(col 2 "$W/three")" "$(col 3 "$W/three")" "$(col 4 "$W/three")" \
		"$(col 5 "$W/three")" "$((N * SIZE))" "$(col 6 "$W/three")"
done

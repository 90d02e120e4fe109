#!/bin/bash
# bench/ebbgrow.sh: ebbkv growing through the facility by K nodes at once
# (issue 16, item 5): its door runs in a node of the public domain; under
# a memcaslap load its NodeAllocator ("kh") asks for K nodes over the
# service interface (khget), loads and boots ebbkv's node appliance on
# them with one broadcast each, starts ebbkv there and moves their share
# of the keys.  Printed: "need more" -> the new nodes serving their share,
# with the steps, medians of REPEATS runs.  The peer, measured in the same
# run: the same K nodes allocated, loaded and booted by khget and khdo on
# the host over khd's own socket (no service interface, no keys moved).
# Usage (root): bench/ebbgrow.sh [K...]   (default: 1 8 64)
set -eu
cd "$(dirname "$0")/.."
export KH_BIN=${BIN:-build/bin}
REPEATS=${REPEATS:-3}
SIZES=${*:-1 8 64}
. tests/e2e/lib.sh
exec 3>/dev/null
NB=$PWD/build/bin

free_port() {
	local p
	for _ in $(seq 50); do
		p=$((20000 + RANDOM % 20000))
		ss -Hltn "sport = :$p" | grep -q . || { echo "$p"; return; }
	done
}
med() { sort -n | awk '{a[NR]=$1} END {print (NR ? a[int((NR+1)/2)] : "-")}'; }

one() { # K -> "total khget load boot+start moved host_boot"
	local k=$1 P blk C R N H IP log line tot up mv kg ld bt t0 t1 hb
	P=$(free_port)
	start_khd --nodes $((2 * k + 2)) --host kh.test --ssh-port "$P" --ssh-listen 127.0.0.1 >/dev/null
	ssh-keygen -q -t ed25519 -N '' -f "$D/key"
	# the nodes' ebbkv without its debugging sections: fewer bytes to load
	strip -o "$D/ebbkv" "$NB/ebbkv"
	khappliance -q -o "$D/kvnode.cpio.gz" busybox -f "$D/ebbkv=/usr/bin/ebbkv" >/dev/null
	khappliance -q -o "$D/kvdoor.cpio.gz" busybox ssh memcaslap -f "$D/ebbkv=/usr/bin/ebbkv" \
		-f "$NB/khget=/usr/bin/khget" -f "$NB/khdo=/usr/bin/khdo" -f "$NB/khctl=/usr/bin/khctl" \
		-f "$D/key=/etc/kh/key" -f "$D/kvnode.cpio.gz=/etc/kh/kvnode.cpio.gz" >/dev/null
	blk=$(khget -i -p 1 -c pw alice 1)
	khctl addkey -c pw alice "$D/key.pub"
	C=$(head -n1 <<<"$blk" | cut -d@ -f1)
	R=$(sed -n 's/^nodes: //p' <<<"$blk")
	N=$(awk '/^network [0-9]+ :/ {print $2}' <<<"$blk")
	H=$((R + 1))
	IP=10.$((N >> 4)).$((((N & 15) << 4) + (H >> 8))).$((H & 255))
	echo "$blk" | khdo -c pw alice loadramdisk "$D/kvdoor.cpio.gz" >/dev/null 2>&1
	echo "$blk" | khdo -c pw alice --until 'appliance up' write 'run kboot' >/dev/null 2>&1
	node_bg pw alice "$C" "$R" "( KH_CRED=pw KH_SSH_KEY=/etc/kh/key ebbkv -p 11211 -l 127.0.0.1 -t 1 --msg $IP:7000 --grow 300 --shrink 1 --max-nodes $((k + 1)) --grow-step $k --alloc kh --user alice --appliance /etc/kh/kvnode.cpio.gz --netid $N 2>/tmp/kv.log )"
	sleep 1
	node_run pw alice "$C" "$R" 'memcaslap -s 127.0.0.1:11211 -t 10s -T 1 -c 4 -X 100 -v 0.1 >/dev/null 2>&1' >/dev/null
	log=$(node_run pw alice "$C" "$R" 'cat /tmp/kv.log')
	line=$(grep -m1 'serves* a share' <<<"$log" || true)
	# peer: the same boot from the host, over khd.sock
	khctl release -c pw alice "$C" >/dev/null 2>&1 || true
	t0=$(date +%s%N)
	blk=$(khget -c pw -n "$N" alice "$k")
	echo "$blk" | khdo -c pw alice loadramdisk "$D/kvnode.cpio.gz" >/dev/null 2>&1
	echo "$blk" | khdo -c pw alice -t 60 --until 'appliance up' write 'run kboot' >/dev/null 2>&1
	t1=$(date +%s%N)
	hb=$(((t1 - t0) / 1000000))
	stop_khd >/dev/null 2>&1 || true
	[ -n "$line" ] || { echo "grow failed: $(tail -n3 <<<"$log" | tr '\n' ' ')" >&2; return 1; }
	tot=$(sed -E 's/.*keys: ([0-9]+) ms.*/\1/' <<<"$line")
	mv=$(sed -E 's/.*keys moved ([0-9]+) ms.*/\1/' <<<"$line")
	kg=$(sed -E 's/.*khget ([0-9]+) ms.*/\1/' <<<"$line")
	ld=$(sed -E 's/.*load ([0-9]+) ms.*/\1/' <<<"$line")
	bt=$(sed -E 's/.*boot\+start ([0-9]+) ms.*/\1/' <<<"$line")
	echo "$tot $kg $ld $bt $mv $hb"
}

echo "| K nodes | need more -> serving (runs) | khget | load | boot + start | keys moved | peer: khget+load+boot from the host |"
echo "|---|---|---|---|---|---|---|"
for k in $SIZES; do
	rows=()
	for _ in $(seq "$REPEATS"); do rows+=("$(one "$k")"); done
	col() { printf '%s\n' "${rows[@]}" | awk -v c="$1" '{print $c}' | med; }
	runs=$(printf '%s\n' "${rows[@]}" | awk '{print $1}' | paste -sd/ | sed 's|/| / |g')
	echo "| $k | $(col 1) ms ($runs) | $(col 2) | $(col 3) | $(col 4) | $(col 5) | $(col 6) ms |"
done

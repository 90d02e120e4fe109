#!/bin/bash
# bench/bcast.sh: broadcast loading (issue 5).  One facility of 600 ct1
# nodes; one principal holds an allocation of 1 node and one of 500.  The
# same 16 MiB load (khdo loadramdisk, which waits until every node has
# acknowledged it) goes to the 1 node and to the 500 nodes, alternately,
# REPEATS times; medians and their ratio (target: 500 nodes <= 3x 1 node).
# Peer in the same run: the same load by hand with khcon (mrw line, bytes,
# "echo loaded-$?", wait for every node's line), the way bench/boot.sh
# loads; and the floor of any load: the bytes through a Unix socket
# (socat), and BLAKE2b over them (b2sum: khd hashes a load once, to store
# it once).  Afterwards crc32 on every node must show the file's checksum.
# Usage (root): bench/bcast.sh [N]   (default 500; REPEATS=7)
set -eu
cd "$(dirname "$0")/.."
BIN=${BIN:-build/bin}
REPEATS=${REPEATS:-7}
N=${1:-500}
MIB=${MIB:-16}
OUT=${BENCH_OUT:-bench/results}
mkdir -p "$OUT"
D=$(mktemp -d /tmp/kh-bench-bcast-XXXXXX)
stopkhd() {
	pid=$(head -n1 "$D/khd.lock" 2>/dev/null || true)
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
	rm -rf "$D"
}
trap stopkhd EXIT
export KH_SOCKET=$D/khd.sock KH_CRED=pw KH_USER=bench
"$BIN"/khd -d "$D" --nodes $((N + 100))
F=$D/load
head -c $((MIB << 20)) /dev/urandom >"$F"
SIZE=$(stat -c %s "$F")
# zlib's CRC-32, as the monitor's crc32 prints it: gzip's trailer holds it
CRC=$(gzip -1 -c "$F" | tail -c8 | head -c4 | od -An -tx4 | tr -d ' \n')
ONE=$("$BIN"/khget -c pw bench 1)
MANY=$("$BIN"/khget -c pw bench "$N")
ms() { echo $((($2 - $1) / 1000000)); }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# khdo BLOCK: one acknowledged load, timed
khdo_load() {
	local t0 t1
	t0=$(date +%s%N)
	"$BIN"/khdo -t 60 loadramdisk "$F" <<<"$1"
	t1=$(date +%s%N)
	ms "$t0" "$t1"
}
# khcon BLOCK COUNT: the same load by hand, timed
khcon_load() {
	local t0 t1 con
	con=$(head -n1 <<<"$1" | cut -d@ -f1)
	t0=$(date +%s%N)
	{ printf 'mrw $ramfsaddr %d\n' "$SIZE"; cat "$F"; echo 'echo loaded-$?'; } |
		"$BIN"/khcon -c pw bench --timeout 60 --until loaded-0 --count "$2" "$con" >/dev/null
	t1=$(date +%s%N)
	ms "$t0" "$t1"
}

# the floor: the bytes through a Unix socket; their hash
socket_copy() {
	local t0 t1
	socat -u UNIX-LISTEN:"$D/floor.sock" OPEN:/dev/null &
	while [ ! -S "$D/floor.sock" ]; do sleep 0.01; done
	t0=$(date +%s%N)
	socat -u OPEN:"$F" UNIX-CONNECT:"$D/floor.sock"
	wait
	t1=$(date +%s%N)
	rm -f "$D/floor.sock"
	ms "$t0" "$t1"
}
hash_time() {
	local t0 t1
	t0=$(date +%s%N)
	b2sum "$F" >/dev/null
	t1=$(date +%s%N)
	ms "$t0" "$t1"
}

khdo_load "$ONE" >/dev/null # warm the page cache and the blob store
khdo_load "$MANY" >/dev/null
k1=() kn=() c1=() cn=() fs=() fh=()
for _ in $(seq "$REPEATS"); do
	k1+=("$(khdo_load "$ONE")")
	kn+=("$(khdo_load "$MANY")")
	c1+=("$(khcon_load "$ONE" 1)")
	cn+=("$(khcon_load "$MANY" "$N")")
	fs+=("$(socket_copy)")
	fh+=("$(hash_time)")
done
mk1=$(printf '%s\n' "${k1[@]}" | median)
mkn=$(printf '%s\n' "${kn[@]}" | median)
mc1=$(printf '%s\n' "${c1[@]}" | median)
mcn=$(printf '%s\n' "${cn[@]}" | median)
mfs=$(printf '%s\n' "${fs[@]}" | median)
mfh=$(printf '%s\n' "${fh[@]}" | median)
ratio=$(awk -v a="$mkn" -v b="$mk1" 'BEGIN {printf "%.2f", a / (b > 0 ? b : 1)}')
cratio=$(awk -v a="$mcn" -v b="$mc1" 'BEGIN {printf "%.2f", a / (b > 0 ? b : 1)}')
printf 'khdo loadramdisk, %d MiB:    1 node  median %5d ms (runs: %s)\n' "$MIB" "$mk1" "${k1[*]}"
printf 'khdo loadramdisk, %d MiB: %4d nodes median %5d ms (runs: %s)\n' "$MIB" "$N" "$mkn" "${kn[*]}"
printf 'ratio %d nodes / 1 node: %s (target <= 3)\n' "$N" "$ratio"
printf 'peer, khcon by hand:         1 node  median %5d ms (runs: %s)\n' "$mc1" "${c1[*]}"
printf 'peer, khcon by hand:      %4d nodes median %5d ms (runs: %s)  ratio %s\n' "$N" "$mcn" "${cn[*]}" "$cratio"
printf 'floor, %d MiB through a Unix socket (socat): median %d ms (runs: %s)\n' "$MIB" "$mfs" "${fs[*]}"
printf 'floor, BLAKE2b of %d MiB (b2sum):            median %d ms (runs: %s)\n' "$MIB" "$mfh" "${fh[*]}"

# Every node holds the right bytes: crc32 on all of them.
khdo_load "$MANY" >/dev/null
khdo_load "$ONE" >/dev/null
good=$(for b in "$ONE" "$MANY"; do
	"$BIN"/khdo --prefix -t 60 --until '==>' write "crc32 \$ramfsaddr $(printf %x "$SIZE")" <<<"$b"
done | grep -c "==> $CRC\$")
store=$("$BIN"/khctl info | awk '/^store/ {print $2, $3}')
printf 'crc32 %s on %d of %d nodes; node memory: %s\n' "$CRC" "$good" $((N + 1)) "$store"
echo "{\"n\":$N,\"mib\":$MIB,\"khdo_1_ms\":$mk1,\"khdo_n_ms\":$mkn,\"ratio\":$ratio,\"khcon_1_ms\":$mc1,\"khcon_n_ms\":$mcn,\"socket_ms\":$mfs,\"b2sum_ms\":$mfh,\"crc_ok\":$good}" >"$OUT/bcast-$N.json"
[ "$good" -eq $((N + 1)) ] || { echo "bcast: crc32 wrong on $((N + 1 - good)) nodes" >&2; exit 1; }
awk -v r="$ratio" 'BEGIN {exit !(r <= 3)}' || { echo "bcast: ratio $ratio is above 3" >&2; exit 1; }

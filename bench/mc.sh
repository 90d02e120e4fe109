#!/bin/bash
# bench/mc.sh: the cache (issue 13), everything in the same run: server and
# client on two nodes of one private domain, the server (and the RDMA
# engine) on core 1, the client on core 0.
#   - Debian's memcached 1.6.18 driven by memcaslap;
#   - khmcd over TCP driven by memcaslap;
#   - khmcd with one-sided gets driven by khmc bench;
#   - khmc bench over TCP against both servers (all hits, latency percentiles);
# at 1 KB, 16 KB and 64 KB values (the paper's Figure 5), REPEATS rounds
# alternating; sets (two-phase against TCP); the device's own bandwidth at
# 64 KB over the same working set; and Figure 6c: get throughput as clients
# and servers grow together (1/1, 2/2, 4/4, 8/8; keys spread by ketama).
# Programs run inside the nodes (nsenter into all of a node's namespaces).
# Usage (root): bench/mc.sh   (env: BIN=build/bin REPEATS=3 SECS=5 QUICK=1)
set -eu
cd "$(dirname "$0")/.."
BIN=${BIN:-build/bin}
case "$BIN" in /*) ;; *) BIN=$PWD/$BIN ;; esac
REPEATS=${REPEATS:-3}
SECS=${SECS:-5}
[ -n "${QUICK:-}" ] && { REPEATS=1; SECS=2; }
OUT=${BENCH_OUT:-bench/results}
mkdir -p "$OUT"
export PATH=$BIN:$PATH
W=$(mktemp -d /tmp/kh-bench-mc-XXXXXX)
D=$W/fac
cleanup() {
	local pid
	pid=$(head -n1 "$D/khd.lock" 2>/dev/null || true)
	if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then
		while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
	fi
	rm -rf "$W"
}
trap cleanup EXIT
[ -n "${KEEP:-}" ] && trap - EXIT

khappliance -q -o "$W/app.cpio.gz" -r appliances/memcached memcached memcaslap
mkdir -p "$D"
printf 'type mc cpus=1 mem=2G count=20\n' >"$D/khd.conf"
khd -d "$D"
export KH_SOCKET=$D/khd.sock
blk=$(khget -c pw bench 16)
khdo -c pw bench loadramdisk "$W/app.cpio.gz" <<<"$blk" >/dev/null
khdo -c pw bench -t 60 --until 'memcached: khmcd serving' write 'run kboot' <<<"$blk" >/dev/null
FAC=$(khctl info | head -n1 | awk '{print $4}')
HOSTNS=$(readlink /proc/self/ns/net)
ip_of() { awk -v r="$1" '$1 == "nodeinfo:" && $2 == r {print $4}' <<<"$blk"; }
pid_of() {
	local p
	for p in $(cat /sys/fs/cgroup/*/kh-"$FAC"/n"$1"/cgroup.procs /sys/fs/cgroup/kh-"$FAC"/n"$1"/cgroup.procs 2>/dev/null); do
		[ "$(readlink "/proc/$p/ns/net" 2>/dev/null)" != "$HOSTNS" ] && { echo "$p"; return; }
	done
}
in_node() { local r=$1; shift; nsenter -t "$(pid_of "$r")" -a -- "$@"; }
ENG=$(pgrep -P "$(head -n1 "$D/khd.lock")" -f '^kh-rdma-engine' | head -n1)
taskset -pc 1 "$ENG" >/dev/null
# Node r (0..7) serves, node 8+r is its client.  The appliance's khmcd
# (port 11211) stays idle; the measured servers are started here, pinned.
S=$(ip_of 0)
# Each part of the run starts with fresh servers: what one value size left
# in a server's memory does not weigh on the next.
start_servers() { # N: khmcd on port 11311 and memcached on 11411 of nodes 0..N-1
	pkill -CONT -f -- "-p 11[34]11 " || true
	pkill -f -- "khmcd -p 11311 " || true
	pkill -f -- "memcached -p 11411 " || true
	for _ in $(seq 100); do # gone, and their ports free
		pgrep -f -- "(khmcd -p 11311|memcached -p 11411) " >/dev/null || break
		sleep 0.1
	done
	for r in $(seq 0 $(($1 - 1))); do
		in_node "$r" taskset -c 1 khmcd -p 11311 -m 320 -t 4 >/dev/null 2>&1 &
		in_node "$r" taskset -c 1 memcached -p 11411 -m 320 -t 4 -u root -U 0 >/dev/null 2>&1 &
	done
	disown -a
	for r in $(seq 0 $(($1 - 1))); do # khmcd allocates its memory first
		for port in 11311 11411; do
			for _ in $(seq 300); do
				in_node 8 sh -c "printf 'version\r\n' | nc -w 1 $(ip_of "$r") $port" 2>/dev/null |
					grep -q VERSION && break
				sleep 0.1
			done
		done
	done
}
cfg() { # SIZE GETPROP: a memcaslap configuration
	printf 'key\n64 64 1\nvalue\n%d %d 1\ncmd\n0 %s\n1 %s\n' "$1" "$1" \
		"$(awk -v g="$2" 'BEGIN {print 1 - g}')" "$2" >"$W/cfg"
	cat "$W/cfg"
}
# memcaslap against PORT on node 0 from node 8: get/s and set/s (its window
# sized so that the keys fit in the servers' memory).
# Concurrency 16 at 1 KB, 4 above (memcaslap's smallest window is 1k keys
# a connection: 4k keys of 64 KB fill 256 MiB, which the servers hold).
caslap() { # PORT SIZE GETPROP
	local win=1k conc=16
	[ "$2" -ge 16384 ] && conc=4
	cfg "$2" "$3" | in_node 8 sh -c "cat >/tmp/cfg"
	only "$1"
	in_node 8 taskset -c 0 memcaslap -s "$S:$1" -F /tmp/cfg -t "${SECS}s" -T 1 -c "$conc" -w "$win" \
		>"$W/caslap" 2>&1 || { echo "memcaslap failed:" >&2; tail -n 3 "$W/caslap" >&2; }
	awk -v t="$SECS" '/^cmd_get:/ {g = $2} /^cmd_set:/ {s = $2} /^get_misses:/ {m = $2}
		END {printf "%.0f %.0f %s\n", (g - m) / t, s / t, m}' "$W/caslap"
}
# only PORT: the servers on the other port are stopped (SIGSTOP) while
# one is measured, so their idle threads do not take the measured one's
# core (or the engine's, core 1).
only() {
	local other=11311
	[ "$1" = 11311 ] && other=11411
	pkill -CONT -f -- "-p $1 " || true
	pkill -STOP -f -- "khmcd -p 11211 " || true
	pkill -STOP -f -- "-p $other " || true
	sleep 0.2
}
# khmc bench from node 8: "keys/s p50 p99" (one line).
khb() { # ARGS...
	local a
	for a in "$@"; do case "$a" in *:11311*) only 11311 ;; *:11411*) only 11411 ;; esac; done
	in_node 8 taskset -c 0 khmc "$@" --duration "$SECS" >"$W/khb" 2>&1 ||
		{ echo "khmc $* failed:" >&2; tail -n 3 "$W/khb" >&2; echo "fail 0 0 0"; echo "get 0 0 0"; echo "set 0 0 0"; }
	# gets: hits a second (a miss is not a get served); sets: stores
	awk -v t="$SECS" '/^get / || /^set / {
		for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
		k = $1 == "get" ? sprintf("%.0f", v["hits"] / t) : v["ops_per_sec"]
		if ($1 == "get" && v["misses"] > v["hits"] / 100)
			printf "warning: %s misses\n", v["misses"] > "/dev/stderr"
		printf "%s %s %s %s\n", $1, k, v["p50_us"], v["p99_us"]; delete v }' "$W/khb"
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

declare -A R
for size in 1024 16384 65536; do
	start_servers 1
	keys=$((64 * 1024 * 1024 / size))
	[ "$keys" -gt 20000 ] && keys=20000
	for r in $(seq "$REPEATS"); do
		read -r g _ m < <(caslap 11411 "$size" 0.9)
		R[mcd_caslap_$size]+="$g "
		read -r g _ m < <(caslap 11311 "$size" 0.9)
		R[khmcd_caslap_$size]+="$g "
		read -r _ k p50 p99 < <(khb -s "$S:11311" -r auto bench --keys "$keys" --value-size "$size" \
			--get-ratio 1 --concurrency 1 --batch 16 | grep '^get')
		R[os16_$size]+="$k "
		read -r _ k p50 p99 < <(khb -s "$S:11311" -r auto bench --keys "$keys" --value-size "$size" \
			--get-ratio 1 --concurrency 1 | grep '^get')
		R[os1_$size]+="$k "
		R[os1_p50_$size]+="$p50 "
		R[os1_p99_$size]+="$p99 "
		for srv in 11411:mcd 11311:khmcd; do
			read -r _ k p50 p99 < <(khb -s "$S:${srv%:*}" bench --keys "$keys" --value-size "$size" \
				--get-ratio 1 --concurrency 16 | grep '^get')
			R[${srv#*:}_tcp_$size]+="$k "
			R[${srv#*:}_tcp_p50_$size]+="$p50 "
			R[${srv#*:}_tcp_p99_$size]+="$p99 "
		done
		echo "size $size round $r: memcached/caslap $(awk '{print $NF}' <<<"${R[mcd_caslap_$size]}") get/s," \
			"khmcd/caslap $(awk '{print $NF}' <<<"${R[khmcd_caslap_$size]}")," \
			"one-sided $(awk '{print $NF}' <<<"${R[os16_$size]}") (batch 16), $(awk '{print $NF}' <<<"${R[os1_$size]}") (one at a time)"
	done
done
# Sets: two-phase (one-sided read of the value by the server) against TCP,
# at 1 KB and 64 KB, one client; and memcaslap's sets at 1 KB.
start_servers 1
for r in $(seq "$REPEATS"); do
	for size in 1024 65536; do
		read -r _ k p50 _ < <(khb -s "$S:11311" -r auto bench --keys 1000 --value-size "$size" \
			--get-ratio 0 --concurrency 1 | grep '^set')
		R[set_os_$size]+="$k "
		R[set_os_p50_$size]+="$p50 "
		read -r _ k p50 _ < <(khb -s "$S:11311" bench --keys 1000 --value-size "$size" --get-ratio 0 \
			--concurrency 1 | grep '^set')
		R[set_tcp_$size]+="$k "
		R[set_tcp_p50_$size]+="$p50 "
		read -r _ k p50 _ < <(khb -s "$S:11411" bench --keys 1000 --value-size "$size" --get-ratio 0 \
			--concurrency 1 | grep '^set')
		R[set_mcd_$size]+="$k "
		R[set_mcd_p50_$size]+="$p50 "
	done
	read -r _ s _ < <(caslap 11411 1024 0)
	R[set_mcd_caslap]+="$s "
	read -r _ s _ < <(caslap 11311 1024 0)
	R[set_khmcd_caslap]+="$s "
done
# The device's bandwidth at 64 KB: the same bytes (caches) and over the
# 64 KB working set of the gets above (64 MiB).
only 11311
in_node 0 khrdma expose eth0 64M --fill 1 >"$W/key" 2>&1 &
disown
for _ in $(seq 100); do grep -q '^key' "$W/key" 2>/dev/null && break; sleep 0.05; done
in_node 8 taskset -c 0 khrdma bench eth0 "$S" "$(awk '{print $2}' "$W/key")" --quick --span 64M >"$W/dev" 2>&1
DEVHOT=$(awk '/^read 64 KB bandwidth/ && !/span/ {print $5}' "$W/dev")
DEVSPAN=$(awk '/^read 64 KB bandwidth/ && /span/ {print $5}' "$W/dev")

# Figure 6c: N clients (nodes 8..8+N-1) against N servers, at once.
start_servers 8
only 11311
for n in 1 2 4 8; do
	list=$(for r in $(seq 0 $((n - 1))); do printf '%s%s:11311' "${sep:-}" "$(ip_of "$r")"; sep=,; done)
	sep=
	for mode in os tcp; do
		args=(-s "$list" bench --keys 20000 --value-size 1024 --get-ratio 1 --concurrency 1 --duration "$SECS")
		[ "$mode" = os ] && args=(-s "$list" -r auto bench --keys 20000 --value-size 1024 --get-ratio 1 \
			--concurrency 1 --batch 16 --duration "$SECS")
		for c in $(seq 0 $((n - 1))); do
			in_node $((8 + c)) taskset -c 0 khmc "${args[@]}" >"$W/scale.$c" 2>&1 &
		done
		wait
		tot=$(cat "$W"/scale.* | awk -v t="$SECS" '/^get / {for (i = 2; i <= NF; i++) {split($i, kv, "="); if (kv[1] == "hits") s += kv[2]}} END {printf "%.0f", s / t}')
		rm -f "$W"/scale.*
		R[scale_${mode}_$n]=$tot
	done
	echo "scale $n/$n: one-sided $(printf %s "${R[scale_os_$n]}") keys/s, tcp ${R[scale_tcp_$n]} keys/s (all clients)"
done

med() { tr ' ' '\n' <<<"${R[$1]}" | grep . | median; }
echo
echo "medians of $REPEATS rounds, gets served a second (hits; memcaslap: 90% gets, 16 connections at"
echo "1 KB, 4 above; khmc bench: all keys stored first, one client, 16 threads over TCP):"
printf '%-8s %14s %14s %16s %16s %14s %14s\n' size memcached khmcd-tcp one-sided-b16 one-sided-b1 \
	mcd-khmcbench khmcd-khmcbench
for size in 1024 16384 65536; do
	printf '%-8s %14s %14s %16s %16s %14s %14s\n' "$((size / 1024)) KB" "$(med mcd_caslap_$size)" \
		"$(med khmcd_caslap_$size)" "$(med os16_$size)" "$(med os1_$size)" "$(med mcd_tcp_$size)" \
		"$(med khmcd_tcp_$size)"
done
echo "latency (khmc bench, us, p50/p99): one-sided one at a time vs TCP (16 threads) against memcached, khmcd:"
for size in 1024 16384 65536; do
	echo "  $((size / 1024)) KB: one-sided $(med os1_p50_$size)/$(med os1_p99_$size)," \
		"memcached $(med mcd_tcp_p50_$size)/$(med mcd_tcp_p99_$size)," \
		"khmcd $(med khmcd_tcp_p50_$size)/$(med khmcd_tcp_p99_$size)"
done
pkill -CONT -f -- "-p 1141" || true
pkill -CONT -f -- "-p 1121" || true
for size in 1024 65536; do
	echo "sets/s at $((size / 1024)) KB (khmc bench, one client, p50 us): two-phase $(med set_os_$size)" \
		"($(med set_os_p50_$size)), khmcd TCP $(med set_tcp_$size) ($(med set_tcp_p50_$size))," \
		"memcached TCP $(med set_mcd_$size) ($(med set_mcd_p50_$size))"
done
echo "memcaslap sets/s at 1 KB (16 connections): memcached $(med set_mcd_caslap), khmcd $(med set_khmcd_caslap)"
echo "device 64 KB read bandwidth: $DEVHOT GB/s (the same bytes), $DEVSPAN GB/s (over 64 MiB)"
echo "scaling (1 KB, keys/s of all clients; each client: batch 16 one-sided, one-at-a-time TCP):"
for n in 1 2 4 8; do
	echo "  $n/$n: one-sided ${R[scale_os_$n]} ($(awk -v a="${R[scale_os_$n]}" -v b="${R[scale_os_1]}" -v n=$n 'BEGIN {printf "%.2f", a / b / n}') per pair of 1/1)," \
		"tcp ${R[scale_tcp_$n]} ($(awk -v a="${R[scale_tcp_$n]}" -v b="${R[scale_tcp_1]}" -v n=$n 'BEGIN {printf "%.2f", a / b / n}') per pair)"
done
M1=$(med mcd_caslap_1024)
K1=$(med khmcd_caslap_1024)
O1=$(med os16_1024)
O64=$(med os16_65536)
echo
awk -v m="$M1" -v k="$K1" -v o="$O1" -v o64="$O64" -v dh="$DEVHOT" -v ds="$DEVSPAN" 'BEGIN {
	printf "khmcd over TCP / memcached (memcaslap, 1 KB): %.2f (target >= 1)\n", k / m
	printf "one-sided gets / memcached at 1 KB: %.1fx (target >= 10x)\n", o / m
	printf "64 KB one-sided gets: %.1f GB/s = %.0f%% of the device over the same working set, %.0f%% of its cache-hot figure (target >= 80%%)\n",
		o64 * 65536 / 1e9, 100 * o64 * 65536 / 1e9 / ds, 100 * o64 * 65536 / 1e9 / dh
}'
{
	printf '{"repeats": %s, "secs": %s' "$REPEATS" "$SECS"
	for k in "${!R[@]}"; do printf ', "%s": "%s"' "$k" "$(echo ${R[$k]})"; done
	printf ', "dev_hot_64k": "%s", "dev_span_64k": "%s"}\n' "$DEVHOT" "$DEVSPAN"
} >"$OUT/mc.json"

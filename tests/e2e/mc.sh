# mc-*: khmcd, the memcached-compatible cache (issue 13), end to end with
# stock clients: libmemcached's memccapable (mc-1), the same raw workload
# answered byte for byte as Debian's memcached 1.6 answers it (mc-2),
# pymemcache (mc-3), bad input and hostile clients (mc-4), eviction within
# -m (mc-5), expiry (mc-6), the khmc tool over several servers, its key
# placement checked with libmemcached's memccat (mc-7), khmc bench (mc-8),
# stats (mc-9).  Every server runs on 127.0.0.1 on a free port; no khd.
. "$(dirname "$0")/lib.sh"
TOP=$(cd "$(dirname "$0")/../.." && pwd)
PY=/usr/bin/python3
W=$(mktemp -d /tmp/kh-e2e-XXXXXX)
T_DIRS+=("$W")
PIDS=()
stop_all() {
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	cleanup
}
trap stop_all EXIT

free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_khmcd NAME [khmcd options]: sets PORT and PID_<NAME>.
start_khmcd() {
	local name=$1
	shift
	rm -f "$W/$name.port"
	ASAN_OPTIONS="${ASAN_OPTIONS:-}:log_path=$W/san.$name" \
		UBSAN_OPTIONS="${UBSAN_OPTIONS:-}:log_path=$W/san.$name" \
		khmcd -l 127.0.0.1 -p 0 --port-file "$W/$name.port" "$@" 2>"$W/$name.err" &
	local pid=$!
	PIDS+=("$pid")
	eval "PID_$name=$pid"
	for _ in $(seq 200); do [ -s "$W/$name.port" ] && break; sleep 0.02; done
	PORT=$(cat "$W/$name.port" 2>/dev/null)
	[ -n "$PORT" ] || nok "khmcd $name starts" "$(cat "$W/$name.err")"
}
# stop_khmcd NAME: SIGTERM, a clean exit, no sanitizer report.
stop_khmcd() {
	local name=$1 pid rc
	pid=$(eval echo "\$PID_$name")
	kill -TERM "$pid"
	wait "$pid"
	rc=$?
	same "mc-0 khmcd $name exits cleanly on SIGTERM" "$rc" 0
	if ls "$W"/san."$name"* >/dev/null 2>&1; then
		nok "mc-0 khmcd $name ran without sanitizer reports" "$(head -40 "$W"/san."$name"*)"
	fi
}
start_memcached() {
	MPORT=$(free_port)
	local user=()
	[ "$(id -u)" = 0 ] && user=(-u nobody)
	memcached -l 127.0.0.1 -p "$MPORT" -U 0 -t 4 "${user[@]}" 2>"$W/memcached.err" &
	MPID=$!
	PIDS+=("$MPID")
	for _ in $(seq 100); do
		$PY -c "import socket; socket.create_connection(('127.0.0.1',$MPORT))" 2>/dev/null && break
		sleep 0.05
	done
}
# mc PORT: send stdin as raw protocol, print the replies.
mc() { socat -t 2 - "TCP:127.0.0.1:$1"; }
stat_of() { printf 'stats\r\n' | mc "$1" | tr -d '\r' | awk -v k="$2" '$2 == k {print $3}'; }

# mc-1: memccapable's ascii protocol tests, one TAP line each.
start_khmcd main
MAIN=$PORT
o=$(memccapable -a -h 127.0.0.1 -p "$MAIN" -t 10 2>&1)
while IFS= read -r line; do
	name=$(sed -E 's/ +\[[a-z]+\]$//' <<<"$line")
	case "$line" in
	*"[pass]") ok "mc-1 memccapable: $name" ;;
	*"[skip]") ok "mc-1 memccapable: $name # SKIP memccapable skipped it" ;;
	*"[fail]"*) nok "mc-1 memccapable: $name" "$o" ;;
	esac
done <<<"$o"
check "mc-1.0 memccapable: all ascii tests passed" grep -q "^All tests passed" <<<"$o"

# mc-2: one workload, the same bytes from both servers.
start_memcached
start_khmcd cmp
$PY "$TOP/tests/e2e/mc_transcript.py" "$MPORT" >"$W/t.memcached" 2>&1 &
tpid=$!
$PY "$TOP/tests/e2e/mc_transcript.py" "$PORT" >"$W/t.khmcd" 2>&1
wait $tpid
check "mc-2.1 the workload ran to its end on memcached" grep -q '^# end$' "$W/t.memcached"
check "mc-2.2 the workload ran to its end on khmcd" grep -q '^# end$' "$W/t.khmcd"
o=$(diff "$W/t.memcached" "$W/t.khmcd")
same "mc-2.3 khmcd answers $(grep -c '^>' "$W/t.khmcd") steps byte for byte as memcached 1.6" "$o" ""
stop_khmcd cmp

# mc-3: pymemcache, against memcached (to trust the checks) and khmcd.
for target in memcached khmcd; do
	port=$MAIN
	[ $target = memcached ] && port=$MPORT
	o=$($PY "$TOP/tests/e2e/mc_pymemcache.py" "$port" 2>&1)
	n=$(grep -c '^ok - ' <<<"$o")
	bad=$(grep -v '^ok - ' <<<"$o")
	same "mc-3 pymemcache: $n checks pass on $target" "$bad" ""
done
kill -TERM "$MPID"
wait "$MPID" 2>/dev/null

# mc-4: bad input and hostile clients; the server keeps serving.
o=$(printf 'set k 0 0 1\r\nx\r\nget %s\r\nget k\r\n' "$(printf 'k%.0s' $(seq 251))" | mc "$MAIN")
same "mc-4.1 a 251-byte key is refused" "$o" $'STORED\r\nCLIENT_ERROR bad command line format\r\nVALUE k 0 1\r\nx\r\nEND\r'
o=$($PY - "$MAIN" <<'EOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
n = (1 << 20) + 1
s.sendall(b"set big 0 0 %d\r\n" % n + b"v" * n + b"\r\nget k\r\n")
buf = b""
while not buf.endswith(b"END\r\n"):
    buf += s.recv(65536)
print(buf.decode().replace("\r\n", "|"))
EOF
)
same "mc-4.2 a value of 1 MiB + 1 is refused, swallowed, the next command answered" \
	"$o" "SERVER_ERROR object too large for cache|VALUE k 0 1|x|END|"
used_before=$(printf 'stats slabs\r\n' | mc "$MAIN" | tr -d '\r' | awk -F'[: ]' '$3 == "used_chunks" {n += $4} END {print n + 0}')
$PY - "$MAIN" <<'EOF'
import socket, sys
for i in range(20):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    s.sendall(b"set half%d 0 0 100000\r\n" % i + b"h" * (5000 * (i + 1)))
    s.close()
EOF
sleep 0.3
used_after=$(printf 'stats slabs\r\n' | mc "$MAIN" | tr -d '\r' | awk -F'[: ]' '$3 == "used_chunks" {n += $4} END {print n + 0}')
same "mc-4.3 20 clients gone in the middle of a value leave no memory behind" "$used_after" "$used_before"
o=$(printf 'get half0 half19 k\r\n' | mc "$MAIN")
same "mc-4.4 ... and nothing stored" "$o" $'VALUE k 0 1\r\nx\r\nEND\r'
o=$(head -c 3000 /dev/zero | tr '\0' x | mc "$MAIN")
same "mc-4.5 a line of 3000 bytes: an error and the connection closed" "$o" $'CLIENT_ERROR line too long\r'
o=$(printf 'bogus\r\nset\r\nincr k\r\nGET / HTTP/1.1\r\nget k\r\n' | mc "$MAIN")
same "mc-4.6 malformed commands: ERROR, and a browser is hung up on" "$o" $'ERROR\r\nERROR\r\nERROR\r'
rss_before=$(awk '/^VmRSS/ {print $2}' /proc/"$PID_main"/status)
o=$($PY - "$MAIN" <<'EOF'
import socket, sys, time
port = int(sys.argv[1])
big = b"f" * 200000
a = socket.create_connection(("127.0.0.1", port))
a.sendall(b"set flood 0 0 %d\r\n" % len(big) + big + b"\r\n")
assert a.recv(100) == b"STORED\r\n"
# The flooder sends gets and never reads a byte of the answers.
a.setblocking(False)
sent = 0
t0 = time.time()
req = b"get flood\r\n" * 1000
while time.time() - t0 < 3:
    try:
        sent += a.send(req)
    except BlockingIOError:
        time.sleep(0.01)
# Meanwhile another client gets every answer.
b = socket.create_connection(("127.0.0.1", port))
b.settimeout(5)
good = 0
for i in range(200):
    b.sendall(b"set other%d 0 0 2\r\nok\r\nget other%d\r\n" % (i, i))
    want = b"STORED\r\nVALUE other%d 0 2\r\nok\r\nEND\r\n" % i
    buf = b""
    while len(buf) < len(want):
        buf += b.recv(4096)
    good += buf == want
print("%d %d" % (good, sent))
a.close()
EOF
)
good=${o%% *}
same "mc-4.7 a client that floods without reading does not stop another (200 round trips)" "$good" 200
rss_after=$(awk '/^VmRSS/ {print $2}' /proc/"$PID_main"/status)
check "mc-4.8 ... and the server's memory stays bounded (RSS $rss_before -> $rss_after kB after ${o#* } bytes of requests)" \
	test $((rss_after - rss_before)) -lt 65536
o=$(printf 'get k\r\n' | mc "$MAIN")
same "mc-4.9 the server still answers" "$o" $'VALUE k 0 1\r\nx\r\nEND\r'
start_khmcd few -c 3
few=$PORT
o=$($PY - "$few" <<'EOF'
import socket, sys, time
port = int(sys.argv[1])
keep = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
time.sleep(0.2)
s = socket.create_connection(("127.0.0.1", port))
s.settimeout(3)
print(s.recv(100).decode().strip())
EOF
)
same "mc-4.10 beyond -c connections: memcached's refusal" "$o" "ERROR Too many open connections"
stop_khmcd few

# mc-5: -m 8: filling 24 MB evicts the oldest, keeps the newest, stays in 8 MB.
start_khmcd small -m 8
small=$PORT
$PY - "$small" <<'EOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
v = b"e" * 1000
for base in range(0, 24000, 1000):
    s.sendall(b"".join(b"set fill%05d 0 0 1000 noreply\r\n%s\r\n" % (i, v) for i in range(base, base + 1000)))
s.sendall(b"mn\r\n")
buf = b""
while not buf.endswith(b"MN\r\n"):
    buf += s.recv(4096)
EOF
ev=$(stat_of "$small" evictions)
bytes=$(stat_of "$small" bytes)
check "mc-5.1 items were evicted ($ev)" test "${ev:-0}" -gt 10000
check "mc-5.2 the items kept fit in -m 8 ($bytes bytes)" test "${bytes:-999999999}" -le 8388608
o=$(printf 'get fill00000 fill00001 fill00500\r\n' | mc "$small")
same "mc-5.3 the oldest keys are gone" "$o" $'END\r'
o=$(printf 'get fill23999\r\n' | mc "$small" | head -c 20)
same "mc-5.4 the newest key is there" "$o" "VALUE fill23999 0 10"
shm=$(awk '/^RssShmem/ {print $2}' /proc/"$PID_small"/status)
check "mc-5.5 the arena's resident memory stays near -m ($shm kB)" test "${shm:-999999}" -le 10240
stop_khmcd small

# mc-6: expiry.
o=$(printf 'set e1 0 1 1\r\na\r\nset e2 0 100 1\r\nb\r\nset e3 0 -1 1\r\nc\r\nset e4 0 %d 1\r\nd\r\nget e3\r\n' \
	$(($(date +%s) + 1)) | mc "$MAIN")
same "mc-6.1 a negative exptime is gone at once" "$o" $'STORED\r\nSTORED\r\nSTORED\r\nSTORED\r\nEND\r'
printf 'touch e2 1\r\n' | mc "$MAIN" >/dev/null
sleep 2.2
o=$(printf 'get e1 e2 e3 e4\r\n' | mc "$MAIN")
same "mc-6.2 relative, absolute and touched expiries have passed" "$o" $'END\r'

# mc-7: khmc over three servers, placed as libmemcached places keys.
start_khmcd s1
p1=$PORT
start_khmcd s2
p2=$PORT
start_khmcd s3
p3=$PORT
SERVERS=127.0.0.1:$p1,127.0.0.1:$p2,127.0.0.1:$p3
for d in ketama modula; do
	for i in $(seq 30); do printf 'value-%s-%d' $d "$i" | khmc -s "$SERVERS" -d $d set "$d$i" || break; done
done
o=$(khmc -s "$SERVERS" get ketama7)
same "mc-7.1 khmc set and get (ketama over 3 servers)" "$o" "value-ketama-7"
n1=$(stat_of "$p1" curr_items) n2=$(stat_of "$p2" curr_items) n3=$(stat_of "$p3" curr_items)
check "mc-7.2 keys spread over all three ($n1 $n2 $n3)" test "$n1" -gt 0 -a "$n2" -gt 0 -a "$n3" -gt 0
o=$(for i in $(seq 30); do memccat --servers="$SERVERS" "modula$i"; done | sort | md5sum)
want=$(for i in $(seq 30); do printf 'value-modula-%d\n' "$i"; done | sort | md5sum)
same "mc-7.3 libmemcached's memccat finds all 30 keys khmc placed (modula)" "$o" "$want"
o=$(khmc -s "$SERVERS" get ketama1 nokey ketama2 2>"$W/err"; echo "rc=$?")
same "mc-7.4 get of several keys: the found ones, then rc 1" "$o" $'ketama1 0 14\nvalue-ketama-1\nketama2 0 14\nvalue-ketama-2\nrc=1'
same "mc-7.5 ... and one line for the missing one" "$(cat "$W/err")" "khmc: nokey: not found"
printf 'x' | khmc -s "$SERVERS" set flagged --flags 42 --exptime 100
o=$(khmc -s "$SERVERS" get flagged other 2>/dev/null | head -1)
same "mc-7.6 set --flags" "$o" "flagged 42 1"
khmc -s "$SERVERS" delete flagged
o=$(khmc -s "$SERVERS" delete flagged 2>&1; echo "rc=$?")
same "mc-7.7 delete, then delete again: not found" "$o" $'khmc: flagged: not found\nrc=1'
o=$(khmc -s 127.0.0.1:1 get x 2>&1; echo "rc=$?")
same "mc-7.8 a server that is not there: one line" "$o" $'khmc: get: cannot connect: Connection refused\nrc=1'
o=$(khmc -s "$SERVERS" get "a b" 2>&1; echo "rc=$?")
same "mc-7.9 a bad key: one line" "$o" $'khmc: get: bad key (1-250 bytes, no blanks or control characters)\nrc=1'
o=$(khmc -s "$SERVERS" stats | grep -c '^curr_items ')
same "mc-7.10 stats of every server" "$o" 3

# mc-8: khmc bench, briefly.
o=$(khmc -s "$SERVERS" bench --keys 1000 --value-size 200 --get-ratio 0.8 --concurrency 2 --duration 1)
check "mc-8.1 bench: one line for gets, one for sets" \
	grep -qE '^get ops=[0-9]+ ops_per_sec=[0-9]+ p50_us=[0-9.]+ p90_us=[0-9.]+ p99_us=[0-9.]+ p999_us=[0-9.]+ hits=[0-9]+ misses=0 errors=0 wrong_size=0$' <<<"$o"
check "mc-8.2 ... the set line" \
	grep -qE '^set ops=[1-9][0-9]* ops_per_sec=[0-9]+ p50_us=[0-9.]+ p90_us=[0-9.]+ p99_us=[0-9.]+ p999_us=[0-9.]+ errors=0$' <<<"$o"
sed 's/^/# /' <<<"$o"
o=$(khmc -s "$SERVERS" bench --transport rdma --keys 100 --concurrency 1 --duration 1 2>&1)
check "mc-8.3 bench --transport rdma with servers that have no RDMA device: over TCP, and says so" \
	grep -qE '^get ops=[1-9][0-9]* .* onesided_hits=0 onesided_misses=0 retries=0 tcp_fallbacks=0$' <<<"$o"
o=$(khmc bench --transport udp 2>&1; echo "rc=$?")
check "mc-8.4 bench --transport udp: one line, status 2" \
	bash -c "grep -q '^khmc: --transport takes tcp or rdma, not udp' <<<'$o' && grep -q '^rc=2$' <<<'$o'"
stop_khmcd s1
stop_khmcd s2
stop_khmcd s3

# mc-9: stats.
o=$(printf 'stats\r\n' | mc "$MAIN" | tr -d '\r')
missing=""
for f in pid uptime time version curr_items total_items bytes curr_connections \
	total_connections cmd_get cmd_set get_hits get_misses evictions limit_maxbytes threads; do
	grep -q "^STAT $f " <<<"$o" || missing="$missing $f"
done
same "mc-9.1 stats has memcached's general fields" "$missing" ""
same "mc-9.2 limit_maxbytes is -m" "$(stat_of "$MAIN" limit_maxbytes)" 67108864
for sub in settings items slabs; do
	o=$(printf 'stats %s\r\n' $sub | mc "$MAIN" | tr -d '\r')
	check "mc-9.3 stats $sub: STAT lines and END" test "$(tail -1 <<<"$o")" = END -a "$(grep -c '^STAT ' <<<"$o")" -gt 3
done
stop_khmcd main
o=$(khmcd -m 0 2>&1; echo "rc=$?")
same "mc-9.4 khmcd refuses a bad option with one line" "$o" $'khmcd: -m takes megabytes (1..524288), not 0 (see khmcd --help)\nrc=2'

# mc-10: the appliance carries khmcd (of the default build) and its service.
if [ -x "$TOP/build/bin/khmcd" ]; then
	khappliance -q -o "$W/mc.cpio.gz" -r "$TOP/appliances/memcached"
	same "mc-10.1 khappliance -r appliances/memcached" "$?" 0
	o=$(zcat "$W/mc.cpio.gz" | cpio -it 2>/dev/null | grep -E "^(usr/local/bin/khmcd|etc/kh/service|usr/bin/busybox)$" | sort | tr '\n' ' ')
	same "mc-10.2 ... with khmcd, its service and busybox" "$o" "etc/kh/service usr/bin/busybox usr/local/bin/khmcd "
else
	ok "mc-10 the memcached appliance # SKIP build/bin/khmcd is not built (make)"
fi
done_testing

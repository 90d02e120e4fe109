# mcrdma-*: the cache's one-sided gets (issue 13) end to end in nodes:
# the memcached appliance exposes khmcd's arena through the domain's RDMA
# device; clients on other nodes of the domain get with one-sided reads and
# set in two phases; a get that starts after a store returned sees it; gets
# under concurrent sets, deletes, evictions and table growth never return
# another item's bytes or a torn value; a server that does not expose its
# arena is used over TCP; bad two-phase requests are refused and the server
# goes on; the reads are billed to the client's principal.
. "$(dirname "$0")/lib.sh"
TOP=$(cd "$(dirname "$0")/../.." && pwd)

start_khd --nodes 6
APP=$D/mc.cpio.gz
khappliance -q -o "$APP" -r "$TOP/appliances/memcached" -f "$TOP/build/tests/mcstress=/usr/bin/mcstress"
check "mcrdma-0.1 the memcached appliance builds (khmcd, khmc, the stress client)" test -s "$APP"
B=$(khget -c pw alice 3)
CON=$(head -n1 <<<"$B" | cut -d@ -f1)
NET=$(awk '/^network/ {print $2}' <<<"$B")
S=$(awk '/^nodeinfo: 0 / {print $4}' <<<"$B")
khctl block -c pw alice "$CON" | khdo -c pw alice loadramdisk "$APP" >/dev/null
o=$(khctl block -c pw alice "$CON" | khdo -c pw alice --prefix -t 60 --until 'memcached: khmcd serving' write 'run kboot')
check "mcrdma-1.1 every node's khmcd exposes its arena through its domain's device" \
	test "$(grep -c "memcached: khmcd serving .*; one-sided gets through eth0 (domain $NET" <<<"$o")" = 3
on() { node_run pw alice "$CON" "$@"; }

o=$(on 1 "printf 'rdma\\r\\n' | nc $S 11211")
check "mcrdma-1.2 the rdma command names the domain, the server's rank and its header's key" \
	grep -qE "^RDMA $NET 0 0 0x[0-9a-f]+$" <<<"$o"
o=$(on 1 "echo 'one-sided hello' | khmc -s $S -r auto set greeting && khmc -s $S -r auto get greeting")
same "mcrdma-1.3 a two-phase set, then a one-sided get" "$(head -n1 <<<"$o")" "one-sided hello"
o=$(on 2 "printf 'get greeting\\r\\n' | nc $S 11211 | head -n2 | tail -n1")
same "mcrdma-1.4 ... which a plain TCP client sees too" "$(head -n1 <<<"$o" | tr -d '\r')" "one-sided hello"
o=$(on 1 "khmc -s $S -r auto bench --keys 2000 --value-size 1024 --duration 2 --concurrency 2 --get-ratio 1")
g=$(grep '^get ' <<<"$o")
echo "# $g" >&3
check "mcrdma-1.5 khmc bench: every get answered one-sided, whole, no TCP fallback" \
	bash -c "grep -qE 'onesided_hits=[1-9]' <<<'$g' && grep -q ' misses=0 errors=0 wrong_size=0 onesided_hits=' <<<'$g' && grep -q 'tcp_fallbacks=0' <<<'$g'"

# mcrdma-2: freshness.  A store that returned is what every later get sees,
# though the getter's copy of the table is older (replaced and deleted
# items are marked before the store answers; flush_all marks all).
o=$(on 1 "mcstress -r auto $S:11211 fresh 5000")
echo "# $(grep '^fresh' <<<"$o")" >&3
check "mcrdma-2.1 5000 stores (set, delete, flush_all), each read back by another client: never stale" \
	grep -qE '^fresh rounds=5000 stale=0 onesided=[1-9]' <<<"$o"

# mcrdma-3: correctness under concurrency: 3 getters (one-sided) against
# 2 setters (sets of 0-200 KB, deletes) on a 24 MB server whose table starts
# at 64 buckets: it evicts and grows while it is read.
node_bg pw alice "$CON" 0 "khmcd -p 11311 -m 24 -t 2 --buckets 64 >/tmp/k2.log"
sleep 0.5
o=$(on 1 "mcstress -r auto $S:11311 20000 10 3 2")
st=$(grep '^gets=' <<<"$o")
echo "# $st" >&3
check "mcrdma-3.1 no get returned another key's bytes or a torn value" grep -q ' bad=0 ' <<<"$st"
check "mcrdma-3.2 ... and gets were answered one-sided" grep -qE 'onesided=[1-9]' <<<"$st"
s2=$(on 0 "printf 'stats\\r\\n' | nc 127.0.0.1 11311")
check "mcrdma-3.3 ... while the server evicted" grep -qE '^STAT evictions [1-9]' <<<"$s2"
check "mcrdma-3.4 ... and its table grew (from 64 buckets)" grep -qE '^STAT hash_power_level (1[0-9]|[7-9])' <<<"$s2"

# mcrdma-4: a server that does not expose its arena is used over TCP.
node_bg pw alice "$CON" 0 "khmcd -p 11411 -m 8 --rdma off >/tmp/k3.log"
sleep 0.5
o=$(on 1 "echo plain | khmc -s $S:11411 -r auto set p && khmc -s $S:11411 -r auto get p && khmc -s $S:11411 -r auto bench --keys 10 --duration 1 --concurrency 1 --get-ratio 1")
same "mcrdma-4.1 --rdma off: sets and gets work over TCP" "$(head -n1 <<<"$o")" "plain"
check "mcrdma-4.2 ... and none of them one-sided" grep -q 'onesided_hits=0 onesided_misses=0' <<<"$o"
o=$(on 0 "khmcd -p 11511 --rdma eth5 2>&1")
check "mcrdma-4.3 khmcd --rdma with an interface the node lacks: one line, status 1" \
	bash -c "[ \$(grep -c . <<<'$o') = 2 ] && grep -q '^khmcd: --rdma eth5: ' <<<'$o' && grep -q '^status 1$' <<<'$o'"

# mcrdma-5: a two-phase set the server cannot read is refused; it goes on.
o=$(on 1 "printf 'rset bad 0 0 5 $NET 1 12345 0\\r\\nrset bad 0 0 x\\r\\nversion\\r\\n' | nc $S 11211")
check "mcrdma-5.1 a value behind a wrong key: CLIENT_ERROR naming the device's refusal" \
	grep -q 'CLIENT_ERROR cannot read the value: .*unknown or revoked key' <<<"$o"
check "mcrdma-5.2 a malformed rset: ERROR" grep -q '^ERROR' <<<"$o"
check "mcrdma-5.3 ... and the server answers the next command" grep -q '^VERSION ' <<<"$o"

# mcrdma-6: the client's reads are billed to its principal.
sleep 1.5
u=$(khbill usage -c pw alice)
check "mcrdma-6.1 khbill: the one-sided reads are alice's (rdma-rd:$NET)" grep -qE "^rdma-rd:$NET [1-9]" <<<"$u"
stop_khd
done_testing

# pgstate-*: khd with its state in PostgreSQL (docs/state.md), end to end:
# a cluster of Debian's postgresql-15 started here in a scratch directory
# (tests/lib/pgcluster.sh: initdb and pg_ctl as nobody, a Unix socket
# only), khd selecting it in khd.conf, then as a user: khget, khctl,
# release; khd stopped, killed with -9 (also in the middle of a crowd of
# allocations) and started again with nothing acknowledged lost;
# concurrent allocations from many clients all or nothing with no node
# given twice, also from two khd front ends on one database; metering
# records across restarts; the database server restarted, killed with -9
# or gone under a running khd.  A missing PostgreSQL fails this test,
# never skips it.
. "$(dirname "$0")/lib.sh"
PGCLUSTER=$(cd "$(dirname "$0")/../lib" && pwd)/pgcluster.sh

PG=$(mktemp -d /tmp/kh-e2e-pg-XXXXXX)
pg_down() {
	"$PGCLUSTER" stop "$PG" >/dev/null 2>&1
	[ -n "${KH_KEEP:-}" ] && echo "# kept $PG" >&3 || rm -rf "$PG"
}
trap 'cleanup; pg_down' EXIT
if ! CI=$("$PGCLUSTER" start "$PG" $$ 2>&1); then
	nok "pgstate-0 a PostgreSQL cluster in a scratch directory (tests/lib/pgcluster.sh)" "$CI"
	done_testing
	exit 1
fi
ok "pgstate-0 a PostgreSQL cluster in a scratch directory, as nobody, on a Unix socket only"
sql() { psql "$CI" -XAtq -c "$1"; }
sqlin() { psql "$CI" -XAtq -c "$1" 2>&1; } # with the error, when there is one
check "pgstate-0.1 ... that listens on no TCP port" test "$(sql "SHOW listen_addresses")" = ""

# pgstate-1: selection.  The embedded default stays SQLite; khd.conf's
# state line (or --state) picks PostgreSQL; an unreachable database or a
# bad line stops khd with one line.
start_khd --no-fabric --nodes 4
check "pgstate-1.1 without a state line khd keeps SQLite (state.db)" test -s "$D/state.db"
stop_khd
E=$(mktemp -d /tmp/kh-e2e-XXXXXX)
T_DIRS+=("$E")
echo "state postgresql:host=$PG/nowhere dbname=kh user=kh" >"$E/khd.conf"
o=$(khd -d "$E" --no-fabric 2>&1)
rc=$?
check "pgstate-1.2 a database that cannot be reached: khd exits non-zero ($rc)" test "$rc" -ne 0
check "pgstate-1.3 ... with one line that says so" \
	bash -c "[ \$(wc -l <<<'$o') -eq 1 ] && grep -q '^khd: cannot reach PostgreSQL: .*nowhere' <<<'$o'"
check "pgstate-1.4 ... and serves nothing" test ! -e "$E/khd.sock"
o=$(khd -d "$E" --no-fabric --state "postgresql:$CI dbname=nosuchdb" 2>&1)
check "pgstate-1.5 a database that is not there: one line" \
	bash -c "[ \$(wc -l <<<'$o') -eq 1 ] && grep -q 'database \"nosuchdb\" does not exist' <<<'$o'"
echo "state mysql:x" >"$E/khd.conf"
o=$(khd -d "$E" --no-fabric 2>&1)
check "pgstate-1.6 a state line that names no backend: one line with its number" \
	bash -c "[ \$(wc -l <<<'$o') -eq 1 ] && grep -q 'khd.conf: line 1: state must be sqlite or postgresql' <<<'$o'"

D=$(mktemp -d /tmp/kh-e2e-XXXXXX)
T_DIRS+=("$D")
export KH_SOCKET=$D/khd.sock
printf '# the facility'"'"'s state\nstate postgresql:%s\ntype ct1 count=64\n' "$CI" >"$D/khd.conf"
restart_khd --no-fabric
check "pgstate-1.7 khd starts on PostgreSQL from khd.conf" khctl info
check "pgstate-1.8 ... and keeps no state.db" test ! -e "$D/state.db"
same "pgstate-1.9 the schema is made, its version in meta" "$(sql "SELECT value FROM meta WHERE key='schema_version'")" 1
same "pgstate-1.10 ... with the facility's 64 nodes" "$(sql "SELECT count(*) FROM nodes WHERE chan IS NULL")" 64

# pgstate-2: a user's day: khget, khctl, release; the database holds
# exactly what khd answers.
out=$(khget -c pw-alice alice 3)
con=$(head -n1 <<<"$out" | cut -d@ -f1)
same "pgstate-2.1 khget gives three nodes" "$(awk '/^nodes:/ {$1=""; print}' <<<"$out")" " 0 1 2"
same "pgstate-2.2 ... held in PostgreSQL by alice on $con" \
	"$(sql "SELECT string_agg(rank || ':' || owner || ':con' || chan, ' ' ORDER BY rank) FROM nodes WHERE chan IS NOT NULL")" \
	"0:alice:$con 1:alice:$con 2:alice:$con"
khctl addnet -c pw-alice alice 2 1 >/dev/null
same "pgstate-2.3 khctl addnet is stored" "$(sql "SELECT ifs FROM nodes WHERE rank=1")" "3,2"
khctl release -c pw-alice alice 2 >/dev/null
same "pgstate-2.4 releasing one node frees it there" "$(sql "SELECT coalesce(owner, 'free') FROM nodes WHERE rank=2")" free
out=$(khget -c pw-bob bob 2)
bcon=$(head -n1 <<<"$out" | cut -d@ -f1)
khctl transfer -c pw-alice alice "$con" pw-carol >/dev/null
check "pgstate-2.5 khctl transfer is stored (the channel's credential hash)" \
	test -n "$(sql "SELECT credhash FROM channels WHERE id=${con#con}")"

# pgstate-3: restart and kill -9: everything acknowledged is there.
before=$(snapshot)
fac=$(khctl info | head -n1)
stop_khd
restart_khd --no-fabric
same "pgstate-3.1 after a restart khd shows the same facility" "$(snapshot)" "$before"
same "pgstate-3.2 ... with the same identity" "$(khctl info | head -n1)" "$fac"
out=$(khget -c pw-dave dave 1)
dcon=$(head -n1 <<<"$out" | cut -d@ -f1)
before=$(snapshot)
kill9_khd
restart_khd --no-fabric
same "pgstate-3.3 after kill -9 khd shows the same facility, dave's $dcon too" "$(snapshot)" "$before"
# kill -9 in the middle of a crowd (20 new principals, 2 nodes each): what
# was acknowledged is there, and every allocation there is whole.
for i in $(seq 1 20); do
	khget -c "pw-k$i" "k$i" 2 >"$D/k.$i" 2>&1 &
done
# killed once a few have been answered, while the others are under way
for _ in $(seq 200); do
	[ "$(cat "$D"/k.* 2>/dev/null | grep -c '^nodes:')" -ge 3 ] && break
	sleep 0.02
done
kill9_khd
wait
restart_khd --no-fabric
acked=0
lost=""
for i in $(seq 1 20); do
	c=$(sed -n '1s/@.*//p' "$D/k.$i")
	case "$c" in con*) ;; *) continue ;; esac
	acked=$((acked + 1))
	r=$(awk '/^nodes:/ {$1=""; print}' "$D/k.$i" | tr ' ' '\n' | grep . | sort -n | tr '\n' ' ')
	got=$(sql "SELECT rank FROM nodes WHERE owner='k$i' AND chan=${c#con} ORDER BY rank" | tr '\n' ' ')
	[ "$r" == "$got" ] || lost="$lost k$i($c: $r / $got)"
done
check "pgstate-3.4 kill -9 during 20 allocations, $acked of them acknowledged" test "$acked" -ge 3 -a "$acked" -lt 20
same "pgstate-3.5 ... all acknowledged ones are there" "$lost" ""
same "pgstate-3.6 ... and every allocation stored is whole (2 nodes each)" \
	"$(sql "SELECT count(*) FROM (SELECT chan FROM nodes WHERE owner LIKE 'k%' GROUP BY chan HAVING count(*) <> 2) x")" 0
same "pgstate-3.7 ... and khd shows what the database holds" \
	"$(khctl nodes | awk '$3 ~ /^k[0-9]+$/' | wc -l)" "$(sql "SELECT count(*) FROM nodes WHERE owner LIKE 'k%'")"
# give them back for what follows
for i in $(seq 1 20); do
	for c in $(sql "SELECT DISTINCT chan FROM nodes WHERE owner='k$i'"); do
		khctl release -c "pw-k$i" "k$i" "con$c" >/dev/null
	done
done
khctl release -c pw-bob bob "$bcon" >/dev/null
khctl release -c pw-dave dave "$dcon" >/dev/null
khctl release -c pw-alice alice "$con" >/dev/null
same "pgstate-3.8 ... released again, 64 nodes are free" "$(sql "SELECT count(*) FROM nodes WHERE chan IS NULL")" 64

# all_acked GLOB: "RANK OWNER CHAN" of every acknowledged allocation among
# the khget outputs $D/GLOB (file name: .../c.PRINCIPAL).
all_acked() {
	local f u c
	for f in $D/$1; do
		u=${f##*.}
		c=$(sed -n '1s/@.*//p' "$f")
		case "$c" in con*) ;; *) continue ;; esac
		awk '/^nodes:/ {for (i = 2; i <= NF; i++) print $i}' "$f" | sed "s/\$/ $u ${c#con}/"
	done | sort -n
}
stored() { sql "SELECT rank || ' ' || owner || ' ' || chan FROM nodes WHERE chan IS NOT NULL ORDER BY rank"; }

# pgstate-4: 30 clients at once, 3 nodes each, 64 nodes: 21 succeed, 9 are
# refused whole; no node twice; the database is exactly the 21.
for i in $(seq 1 30); do
	khget -c "pw-c$i" "c$i" 3 >"$D/c.c$i" 2>"$D/e.c$i" &
done
wait
n=$(grep -l '^nodes:' "$D"/c.c* | wc -l)
same "pgstate-4.1 30 concurrent khgets of 3 nodes on 64: 21 succeed" "$n" 21
same "pgstate-4.2 ... the others are refused in one line each" \
	"$(cat "$D"/e.c* | grep -c '^khget: not enough nodes available$')" 9
same "pgstate-4.3 ... no node is given twice" "$(all_acked 'c.c*' | awk '{print $1}' | uniq -d)" ""
same "pgstate-4.4 ... and PostgreSQL holds exactly the acknowledged allocations" "$(stored)" "$(all_acked 'c.c*')"
same "pgstate-4.5 ... and no principal of a refused one" \
	"$(sql "SELECT count(*) FROM principals WHERE name LIKE 'c%'")" 21
for i in $(seq 1 30); do
	c=$(sed -n '1s/@.*//p' "$D/c.c$i")
	[ -n "$c" ] && [ "${c#con}" != "$c" ] && khctl release -c "pw-c$i" "c$i" "$c" >/dev/null
done

# pgstate-5: metering records are in PostgreSQL and survive kill -9.
sleep 2.5 # bob, dave, ... were metered: some ticks
out=$(khget -c pw-meg meg 2)
mcon=$(head -n1 <<<"$out" | cut -d@ -f1)
sleep 2.5
nt=$(khbill usage -c pw-meg meg --json | jq -r '[.usage[] | select(.resource == "node-time") | .base] | add // 0')
recs=$(sql "SELECT count(*) FROM ledger WHERE principal='meg'")
check "pgstate-5.1 meg's node-time is metered ($nt ms) into ledger rows ($recs)" test "$nt" -gt 0 -a "$recs" -gt 0
khbill export -c pw-meg meg -o "$D/meg.exp"
kill9_khd
restart_khd --no-fabric
check "pgstate-5.2 after kill -9 the ledger rows are all there" test "$(sql "SELECT count(*) FROM ledger WHERE principal='meg'")" -ge "$recs"
nt2=$(khbill usage -c pw-meg meg --json | jq -r '[.usage[] | select(.resource == "node-time") | .base] | add // 0')
check "pgstate-5.3 ... the bill goes on from where it was ($nt2 ms >= $nt ms)" test "$nt2" -ge "$nt"
khbill export -c pw-meg meg -o "$D/meg2.exp"
check "pgstate-5.4 ... the export before and after verify" \
	bash -c "khbill verify '$D/meg.exp' --key '$D/ledger.pub' | grep -q '^ok: meg' && khbill verify '$D/meg2.exp' --key '$D/ledger.pub' | grep -q '^ok: meg'"
khctl release -c pw-meg meg "$mcon" >/dev/null

# pgstate-6: the database server restarted under khd: the next change goes
# through (khd connects again); the server gone: a change is refused in
# one line with nothing changed, and khd serves again once it is back.
"$PGCLUSTER" restart "$PG"
# (the meter may have met the server down and tried again just before:
# khd tries a new connection at most once a second)
for _ in 1 2 3 4 5 6; do
	out=$(khget -c pw-nina nina 1 2>&1) && break
	sleep 0.5
done
o=$out
check "pgstate-6.1 after a server restart khget works within a few seconds" grep -q '^nodes: ' <<<"$out"
ncon=$(head -n1 <<<"$out" | cut -d@ -f1)
"$PGCLUSTER" stop "$PG"
o=$(khget -c pw-olga olga 1 2>&1)
rc=$?
check "pgstate-6.2 the server down: khget fails in one line ($rc)" \
	bash -c "[ $rc -ne 0 ] && [ \$(wc -l <<<'$o') -eq 1 ] && grep -q 'state store error (nothing was changed)' <<<'$o'"
check "pgstate-6.3 ... khd still serves what it knows" bash -c "khctl nodes | grep -q ' nina '"
"$PGCLUSTER" start "$PG" >/dev/null
# (khd tries a new connection at most once a second)
for _ in 1 2 3 4 5 6; do
	o=$(khget -c pw-olga olga 1 2>&1) && break
	sleep 0.5
done
check "pgstate-6.4 ... the server back, khget works again within a few seconds" grep -q '^nodes: ' <<<"$o"
check "pgstate-6.5 ... and olga's allocation is stored once" test "$(sql "SELECT count(*) FROM nodes WHERE owner='olga'")" -eq 1
# The server killed with -9 (its crash recovery at the next start): what
# it acknowledged to khd is there.
before=$(stored)
pm=$(head -n1 "$PG/data/postmaster.pid")
kids=$(pgrep -P "$pm" | tr '\n' ' ')
kill -9 "$pm"
for _ in $(seq 100); do
	alive=""
	for k in $pm $kids; do kill -0 "$k" 2>/dev/null && alive=1; done
	[ -z "$alive" ] && break
	sleep 0.1
done
"$PGCLUSTER" start "$PG" >/dev/null
for _ in 1 2 3 4 5 6; do
	o=$(khget -c pw-pia pia 1 2>&1) && break
	sleep 0.5
done
check "pgstate-6.6 the server killed with -9 and started again: khget works" grep -q '^nodes: ' <<<"$o"
same "pgstate-6.7 ... and nothing it acknowledged before is lost" "$(stored | grep -v ' pia ')" "$before"
stop_khd
restart_khd --no-fabric
same "pgstate-6.8 ... as a restarted khd shows" \
	"$(khctl nodes | awk '$3 != "-" && $3 != "pia" {print $1, $3, $4}')" "$(awk '{print $1, $2, "con" $3}' <<<"$before")"
khctl release -c pw-nina nina "$ncon" >/dev/null
stop_khd

# pgstate-7: two khd front ends on one database, each with its own picture
# of the facility (neither learns of the other's changes: that is issue
# 17's agents), race for the same nodes: whoever commits first has them,
# and the database refuses the other's claims on them whole, so a node is
# never given twice.  The first front end has used channel numbers before
# and the allocations make no new domains (-p 0), so what refuses is the
# node rows themselves.
sql "DELETE FROM chankeys; DELETE FROM keys; UPDATE nodes SET state=0, owner=NULL, chan=NULL, ifs='';
     DELETE FROM channels; DELETE FROM domains WHERE netid > 2; DELETE FROM ledger; DELETE FROM ledger_sigs;
     DELETE FROM usage_totals; DELETE FROM meter_nodes; DELETE FROM principals;
     DELETE FROM meta WHERE key IN ('next_chan', 'next_netid')"
D1=$D
D2=$(mktemp -d /tmp/kh-e2e-XXXXXX)
T_DIRS+=("$D2")
cp "$D1/khd.conf" "$D2/khd.conf"
restart_khd --no-fabric
D=$D2 restart_khd --no-fabric
for i in 1 2 3; do
	c=$(khget -p 0 -i -c pw-w w 1 | sed -n '1s/@.*//p')
	khctl release -c pw-w w "$c" >/dev/null
done
for i in $(seq 1 10); do
	KH_SOCKET=$D1/khd.sock khget -p 0 -i -c "pw-a$i" "a$i" 3 >"$D/r.a$i" 2>"$D/re.a$i" &
	KH_SOCKET=$D2/khd.sock khget -p 0 -i -c "pw-b$i" "b$i" 3 >"$D/r.b$i" 2>"$D/re.b$i" &
done
wait
na=$(grep -l '^nodes:' "$D"/r.a* | wc -l)
nb=$(grep -l '^nodes:' "$D"/r.b* | wc -l)
nref=$(cat "$D"/re.* | grep -c '^khget: state store error (nothing was changed)$')
same "pgstate-7.1 two front ends, 10 khgets each: one has them all ($na + $nb acknowledged)" $((na + nb)) 10
same "pgstate-7.2 ... the other's 10 are refused in one line each" "$nref" 10
loser=$D1
[ "$na" -gt 0 ] && loser=$D2
check "pgstate-7.3 ... by the node rows (its log: 'was changed by another front end')" \
	grep -qE 'put nodes?: .* was changed by another front end' "$loser/khd.log"
same "pgstate-7.4 ... no node is given twice" "$(all_acked 'r.*' | awk '{print $1}' | uniq -d)" ""
same "pgstate-7.5 ... PostgreSQL holds exactly the acknowledged allocations" "$(stored)" "$(all_acked 'r.*')"
stop_khd "$loser"
D=$loser restart_khd --no-fabric
o=$(KH_SOCKET=$loser/khd.sock khget -p 0 -i -c pw-z z 3 2>&1)
zr=$(awk '/^nodes:/ {for (i = 2; i <= NF; i++) print $i}' <<<"$o")
check "pgstate-7.6 the refused front end started again gives free nodes ($(echo $zr))" test -n "$zr"
same "pgstate-7.7 ... none of the others' (it loaded them)" \
	"$(all_acked 'r.*' | awk '{print $1}' | grep -xF "$zr")" ""
stop_khd "$D2"
stop_khd "$D1"
done_testing

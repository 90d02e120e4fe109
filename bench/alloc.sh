#!/bin/bash
# bench/alloc.sh: allocation speed (issue 2).  One khget of 1000 nodes on an
# 1100-node facility, and single-node khgets, each repeated; medians.
# Peers in the same run: the floor of any tool round trip (khctl info, same
# process start and socket), and SQLite's own CLI doing the same
# bookkeeping (one transaction updating 1000 node rows) on a copy of the
# state database.
# Usage: bench/alloc.sh [BIN]   (default build/bin)
set -eu
cd "$(dirname "$0")/.."
BIN=${1:-build/bin}
OUT=${BENCH_OUT:-bench/results}
mkdir -p "$OUT"
D=$(mktemp -d /tmp/kh-bench-XXXXXX)
trap 'p=$(head -n1 $D/khd.lock 2>/dev/null); kill $p 2>/dev/null; while kill -0 $p 2>/dev/null; do sleep 0.05; done; rm -rf $D' EXIT
export KH_SOCKET=$D/khd.sock
"$BIN"/khd -d "$D" --nodes 1100
"$BIN"/khget -c pw alice 1 >/dev/null # create the principal (slow hash) once
cat >"$D/release.sh" <<EOS
#!/bin/sh
r=\$("$BIN"/khctl nodes --user alice | cut -d' ' -f1 | tr '\n' ' ')
[ -n "\$r" ] && "$BIN"/khctl release -c pw alice \$r
# Wait until the fabric has prepared every free node again (idle-time
# work), so each timed khget pays for wiring, not for preparation.
for _ in \$(seq 300); do
	"$BIN"/khctl info | grep -Eq '^fabric off| prepared=1100 prepared-x=1100 ' && break
	sleep 0.1
done
exit 0
EOS
chmod +x "$D/release.sh"

hyperfine -N --warmup 3 --runs 30 --prepare "$D/release.sh" \
	--export-json "$OUT/alloc-1000.json" "$BIN/khget -n 3 -c pw alice 1000" >/dev/null
"$D/release.sh"
# Single-node khgets back to back, as a principal growing an allocation one
# node at a time does (210 of the 1100 nodes).
hyperfine -N --warmup 10 --runs 200 \
	--export-json "$OUT/alloc-1.json" "$BIN/khget -n 3 -c pw alice 1" >/dev/null
hyperfine -N --warmup 10 --runs 200 \
	--export-json "$OUT/alloc-floor.json" "$BIN/khctl info" >/dev/null
"$D/release.sh"
cp "$D/state.db" "$D/copy.db"
cat >"$D/sql.sh" <<EOS
#!/bin/sh
sqlite3 "$D/copy.db" "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; BEGIN;
INSERT OR REPLACE INTO channels(id,owner,type,created,credhash,nets) VALUES(999999,'alice','ct1',0,'','3');
UPDATE nodes SET state=1, owner='alice', chan=999999, ifs='3' WHERE rank < 1000;
COMMIT; BEGIN; UPDATE nodes SET state=0, owner=NULL, chan=NULL, ifs=''; DELETE FROM channels WHERE id=999999; COMMIT;" >/dev/null
EOS
chmod +x "$D/sql.sh"
hyperfine -N --warmup 3 --runs 30 --export-json "$OUT/alloc-sqlite.json" "$D/sql.sh" >/dev/null

med() { jq '.results[0].median * 1000' "$OUT/$1.json"; }
m1000=$(med alloc-1000)
m1=$(med alloc-1)
floor=$(med alloc-floor)
sql=$(med alloc-sqlite)
printf 'alloc: khget 1000 nodes  median %8.3f ms   (target <= 250 ms)\n' "$m1000"
printf 'alloc: khget 1 node      median %8.3f ms   (target <= 2 ms)\n' "$m1"
printf 'peer:  khctl info        median %8.3f ms   (tool round-trip floor)\n' "$floor"
printf 'peer:  sqlite3 CLI, same 1000-row transaction (+ undo) median %8.3f ms\n' "$sql"
awk -v a="$m1000" -v b="$sql" -v c="$m1" -v d="$floor" 'BEGIN {
	printf "ratios: khget-1000 / sqlite3-CLI = %.2f   khget-1 / floor = %.2f\n", a / b, c / d }'

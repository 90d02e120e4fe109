#!/bin/bash
# bench/state.sh: the state backends (docs/state.md) side by side, in the
# same run: khget of 1000 nodes and of 1 node on a 1100-node facility with
# its state in SQLite (the default, synchronous=NORMAL: a commit survives a
# crash of khd), SQLite with --sync full (fsync'd: survives power loss, as
# a PostgreSQL commit does) and PostgreSQL (a cluster started here in a
# scratch directory, tests/lib/pgcluster.sh, fsync and synchronous_commit
# on).  The facilities run without a fabric (--no-fabric): the wiring is
# the same whatever the store, and would hide what the store costs.
# Medians over hyperfine runs, nodes released between runs.
# Usage: bench/state.sh [BIN]   (default build/bin)
set -eu
cd "$(dirname "$0")/.."
BIN=${1:-build/bin}
OUT=${BENCH_OUT:-bench/results}
RUNS=${RUNS:-20}
mkdir -p "$OUT"
W=$(mktemp -d /tmp/kh-bench-state-XXXXXX)
PG=$(mktemp -d /tmp/kh-bench-pg-XXXXXX) # nobody's, beside W (root's, 0700)
stop_all() {
	for d in "$W"/sqlite "$W"/full "$W"/pgsql "$W"/fsqlite "$W"/fpgsql; do
		p=$(head -n1 "$d/khd.lock" 2>/dev/null) || continue
		kill "$p" 2>/dev/null || continue
		while kill -0 "$p" 2>/dev/null; do sleep 0.05; done
	done
	tests/lib/pgcluster.sh stop "$PG" >/dev/null 2>&1 || true
	rm -rf "$W" "$PG"
}
trap stop_all EXIT
CI=$(tests/lib/pgcluster.sh start "$PG" $$)
mkdir -p "$W/sqlite" "$W/full" "$W/pgsql"
"$BIN"/khd -d "$W/sqlite" --nodes 1100 --no-fabric
"$BIN"/khd -d "$W/full" --nodes 1100 --no-fabric --sync full
"$BIN"/khd -d "$W/pgsql" --nodes 1100 --no-fabric --state "postgresql:$CI"
for b in sqlite full pgsql; do
	KH_SOCKET=$W/$b/khd.sock "$BIN"/khget -c pw alice 1 >/dev/null # the principal (slow hash) once
	cat >"$W/release-$b.sh" <<EOS
#!/bin/sh
export KH_SOCKET=$W/$b/khd.sock
r=\$("$BIN"/khctl nodes --user alice | cut -d' ' -f1 | tr '\n' ' ')
[ -n "\$r" ] && "$BIN"/khctl release -c pw alice \$r
exit 0
EOS
	chmod +x "$W/release-$b.sh"
done
for b in sqlite full pgsql; do
	KH_SOCKET=$W/$b/khd.sock hyperfine -N --warmup 3 --runs "$RUNS" --prepare "$W/release-$b.sh" \
		--export-json "$OUT/state-$b-1000.json" "$BIN/khget -n 3 -c pw alice 1000" >/dev/null
	"$W/release-$b.sh"
	KH_SOCKET=$W/$b/khd.sock hyperfine -N --warmup 10 --runs $((RUNS * 5)) \
		--export-json "$OUT/state-$b-1.json" "$BIN/khget -n 3 -c pw alice 1" >/dev/null
	"$W/release-$b.sh"
done
med() { jq '.results[0].median * 1000' "$OUT/state-$1.json"; }
for n in 1000 1; do
	s=$(med "sqlite-$n")
	f=$(med "full-$n")
	p=$(med "pgsql-$n")
	printf 'state: khget %4d nodes  sqlite %8.3f ms  sqlite --sync full %8.3f ms  postgresql %8.3f ms\n' \
		"$n" "$s" "$f" "$p"
	awk -v s="$s" -v f="$f" -v p="$p" -v n="$n" 'BEGIN {
		printf "ratios (khget %d): postgresql / sqlite = %.2f   postgresql / sqlite-full = %.2f\n", n, p / s, p / f }'
done

[ "${FABRIC:-1}" = 1 ] || exit 0
for b in sqlite full pgsql; do
	p=$(head -n1 "$W/$b/khd.lock")
	kill "$p"
	while kill -0 "$p" 2>/dev/null; do sleep 0.05; done
done
# One facility at a time: the other's namespaces being made would be
# timed too.
for b in fsqlite fpgsql; do
	mkdir -p "$W/$b"
	if [ "$b" = fsqlite ]; then
		"$BIN"/khd -d "$W/$b" --nodes 1100
	else
		"$BIN"/khd -d "$W/$b" --nodes 1100 --state "postgresql:$CI" # the facility above, wired
	fi
	# as bench/alloc.sh: after a release, wait until the fabric has made
	# every free node's namespace again (idle-time work)
	cat >"$W/release-$b.sh" <<EOS
#!/bin/sh
export KH_SOCKET=$W/$b/khd.sock
r=\$("$BIN"/khctl nodes --user alice | cut -d' ' -f1 | tr '\n' ' ')
[ -n "\$r" ] && "$BIN"/khctl release -c pw alice \$r
for _ in \$(seq 600); do
	"$BIN"/khctl info | grep -Eq '^fabric off| prepared=1100 prepared-x=(1100|0) ' && break
	sleep 0.1
done
exit 0
EOS
	chmod +x "$W/release-$b.sh"
	KH_SOCKET=$W/$b/khd.sock "$BIN"/khget -c pw alice 1 >/dev/null
	"$W/release-$b.sh"
	KH_SOCKET=$W/$b/khd.sock hyperfine -N --warmup 2 --runs $(((RUNS + 1) / 2)) --prepare "$W/release-$b.sh" \
		--export-json "$OUT/state-$b-1000.json" "$BIN/khget -n 3 -c pw alice 1000" >/dev/null
	p=$(head -n1 "$W/$b/khd.lock")
	kill "$p"
	while kill -0 "$p" 2>/dev/null; do sleep 0.05; done
done
s=$(med fsqlite-1000)
p=$(med fpgsql-1000)
printf 'state: khget 1000 nodes with the fabric  sqlite %8.3f ms  postgresql %8.3f ms   (target <= 250 ms)\n' "$s" "$p"
awk -v s="$s" -v p="$p" 'BEGIN { printf "ratio (with the fabric): postgresql / sqlite = %.2f\n", p / s }'

#!/bin/bash
# bench/khfs.sh: the facility as files (issue 15).  First, the aggregated
# status of a query: `cat query/user=alice/status` over QNODES (default
# 1000) nodes of alice's, against `khctl nodes --user alice` (the same
# lines from khd).  Then programs in nodes: /bin/true on N booted
# nodes (default 100): through khfs (echo 'exec /bin/true' >N/ctl, then
# cat N/wait), through `khctl exec`, and as the original did it, typed to
# the nodes' console shells over the channel with khdo until every node
# has answered (as `sh -c true`: busybox ash runs `true` itself, without a
# process).  Medians of REPEATS runs, in ms.
# Usage (root): bench/khfs.sh [N]   (QNODES=1000 REPEATS=7 in the environment)
set -eu
cd "$(dirname "$0")/.."
BIN=${BIN:-$PWD/build/bin}
PATH=$BIN:$PATH
N=${1:-100}
REPEATS=${REPEATS:-7}
QNODES=${QNODES:-1000}
OUT=${BENCH_OUT:-bench/results}
mkdir -p "$OUT"
D=$(mktemp -d /tmp/kh-bench-khfs-XXXXXX)
M=$D/mnt
FSPID=
finish() {
	exec 7<&- 2>/dev/null || true
	[ -n "$FSPID" ] && kill "$FSPID" 2>/dev/null && wait "$FSPID" || true
	pid=$(head -n1 "$D/khd.lock" 2>/dev/null || true)
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
	rm -rf "$D"
}
trap finish EXIT
export KH_SOCKET=$D/khd.sock
TOTAL=$((N + 20 > QNODES + 10 ? N + 20 : QNODES + 10))
khd -d "$D" --nodes "$TOTAL" --no-fabric --no-rdma </dev/null >/dev/null 2>&1
tests/lib/mkbusybox.sh "$D/app.cpio.gz"
khget -c pw alice 1 >/dev/null
mkdir "$M"
khfs -c pw alice "$M" 7<&- &
FSPID=$!
for _ in $(seq 100); do mountpoint -q "$M" && break; sleep 0.05; done
us() { echo $((($(date +%s%N) - $1) / 1000)); }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ms1() { awk '{printf "%.1f", $1 / 1000}'; } # us -> ms, one decimal

# cat query/user=alice/status over QNODES nodes, and its peer.
QB=$(khget -c pw alice $((QNODES - 1)))
[ "$(wc -l <"$M/query/user=alice/status")" = "$QNODES" ] || { echo "khfs: query status is not $QNODES lines" >&2; exit 1; }
for _ in $(seq "$REPEATS"); do
	t=$(date +%s%N)
	cat "$M/query/user=alice/status" >/dev/null
	us "$t"
done | median | ms1 >"$D/qkhfs"
for _ in $(seq "$REPEATS"); do
	t=$(date +%s%N)
	khctl nodes --user alice >/dev/null
	us "$t"
done | median | ms1 >"$D/qkhctl"
cmp -s <(cat "$M/query/user=alice/status") <(khctl nodes --user alice) || { echo "khfs: query status differs from khctl nodes" >&2; exit 1; }
khctl release -c pw alice "$(head -n1 <<<"$QB" | cut -d@ -f1)"

exec 7<"$M/clone"
read -r S <&7
echo "res $N" >"$M/$S/ctl"
echo "load \$ramfsaddr $D/app.cpio.gz" >"$M/$S/ctl"
echo boot >"$M/$S/ctl"
CON=$(head -n1 "$M/$S/status" | awk "{print \$5}")
B=$(khctl block -c pw alice "$CON")
ms() { echo $((($(date +%s%N) - $1) / 1000000)); }

for _ in $(seq "$REPEATS"); do
	t=$(date +%s%N)
	echo 'exec /bin/true' >"$M/$S/ctl"
	[ "$(wc -l <"$M/$S/wait")" = "$N" ] || { echo "khfs: wrong wait" >&2; exit 1; }
	ms "$t"
done | median >"$D/khfs"
for _ in $(seq "$REPEATS"); do
	t=$(date +%s%N)
	khctl exec -n -c pw alice "$CON" /bin/true
	ms "$t"
done | median >"$D/khctl"
for i in $(seq "$REPEATS"); do
	t=$(date +%s%N)
	khdo --socket "$KH_SOCKET" -c pw alice --until "xok$i" write "sh -c true && echo x''ok$i" <<<"$B" >/dev/null || echo "khdo failed" >&2
	ms "$t"
done | median >"$D/khdo"

# The PUSH word count on 8 nodes of the session's channel... on 8 nodes of
# a channel of their own, against one machine and GNU parallel --pipe.
B8=$(khget -c pw alice 8)
CON8=$(head -n1 <<<"$B8" | cut -d@ -f1)
khdo --socket "$KH_SOCKET" -c pw alice loadfile '$ramfsaddr' "$D/app.cpio.gz" <<<"$B8" >/dev/null
khdo --socket "$KH_SOCKET" -c pw alice --until 'appliance up' write 'run kboot' <<<"$B8" >/dev/null
# (lines start with a word: tr -s squeezes across records, so a node whose
# stream began with blanks would count one empty word more)
for _ in $(seq 40); do sed -E "s/^[[:space:]]+//; /^$/d" /usr/share/common-licenses/GPL-3; done >"$D/text"
for _ in $(seq "$REPEATS"); do
	t=$(date +%s%N)
	tr -s ' ' '\n' <"$D/text" | sort | uniq -c | sort -rn >"$D/wc.local"
	ms "$t"
done | median >"$D/wclocal"
for _ in $(seq "$REPEATS"); do
	t=$(date +%s%N)
	khpush -c pw alice "$CON8" "cat $D/text |< tr -s ' ' '\n' |#| sort | uniq -c >| sort -rn" >"$D/wc.push"
	ms "$t"
done | median >"$D/wcpush"
cmp -s "$D/wc.local" "$D/wc.push" || { echo "khpush: a different answer" >&2; diff "$D/wc.local" "$D/wc.push" | head -5 >&2; exit 1; }
for _ in $(seq "$REPEATS"); do
	t=$(date +%s%N)
	parallel --pipe -j 8 --block 200k "tr -s ' ' '\n'" <"$D/text" | sort | uniq -c | sort -rn >"$D/wc.par"
	ms "$t"
done | median >"$D/wcpar"
cmp -s "$D/wc.local" "$D/wc.par" || echo "parallel: a different answer" >&2
printf '{"bench":"khfs","query_nodes":%d,"query_status_khfs_ms":%s,"nodes_khctl_ms":%s,"nodes":%d,"exec_true_khfs_ms":%d,"exec_true_khctl_ms":%d,"console_true_khdo_ms":%d,"wordcount_bytes":%d,"wordcount_local_ms":%d,"wordcount_khpush8_ms":%d,"wordcount_parallel8_ms":%d}\n' \
	"$QNODES" "$(cat "$D/qkhfs")" "$(cat "$D/qkhctl")" "$N" "$(cat "$D/khfs")" "$(cat "$D/khctl")" "$(cat "$D/khdo")" "$(stat -c %s "$D/text")" \
	"$(cat "$D/wclocal")" "$(cat "$D/wcpush")" "$(cat "$D/wcpar")" | tee "$OUT/khfs.json"

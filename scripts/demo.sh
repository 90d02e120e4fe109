#!/bin/bash
# make demo: start an embedded facility on a scratch directory, acquire
# nodes as the original's tools did, show what a user sees, and stop the
# facility, leaving nothing behind.
set -eu
cd "$(dirname "$0")/.."
PATH=$PWD/build/bin:$PATH
D=$(mktemp -d /tmp/kh-demo-XXXXXX)
export KH_SOCKET=$D/khd.sock
P=${USER:-demo}
stop() {
	pid=$(head -n1 "$D/khd.lock" 2>/dev/null || true)
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
	rm -rf "$D"
}
trap stop EXIT
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

step khd -d "$D" --nodes 1100
khd -d "$D" --nodes 1100 --host "$(hostname)"
khctl info

step khget -c demo-secret "$P" 1
khget -c demo-secret "$P" 1

step khget -x -c demo-secret "$P" 100 "  (first lines)"
t=$(date +%s%N)
out=$(khget -x -c demo-secret "$P" 100)
took=$(ms "$t")
head -n 6 <<<"$out"
echo "..."
tail -c 120 <<<"$out"
echo "(100 nodes acquired in $took ms)"

step khget -c demo-secret "$P" 999 "  (every node left)"
t=$(date +%s%N)
big=$(khget -c demo-secret "$P" 999)
echo "$(grep -c '^nodeinfo' <<<"$big") nodes acquired in $(ms "$t") ms"

step khget -c demo-secret "$P" 1 "  (the pool is empty: all or nothing)"
khget -c demo-secret "$P" 1 || echo "(exit status $?)"

step khctl domains
khctl domains
c1=$(head -n1 <<<"$out" | cut -d@ -f1)
c2=$(head -n1 <<<"$big" | cut -d@ -f1)
step khctl release -c demo-secret "$P" "$c1" "$c2"
khctl release -c demo-secret "$P" "$c1" "$c2"
echo "free nodes now: $(khctl nodes --free | wc -l)"
echo
echo "Booting appliances, consoles and domains come with the next issues;"
echo "see README.md for what works today."

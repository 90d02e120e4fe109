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
t=$(date +%s%N)
khd -d "$D" --nodes 1100 --host "$(hostname)"
echo "(serving after $(ms "$t") ms)"
khctl info
# khd gives every free node its network namespace and first interfaces in
# its idle time (docs/fabric.md); allocations then only join bridges.
for _ in $(seq 600); do khctl info | grep -Eq '^fabric off|prepared=1100 ' && break; sleep 0.1; done
echo "(every node's network prepared after $(ms "$t") ms: $(khctl info | grep '^fabric'))"

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

c1=$(head -n1 <<<"$out" | cut -d@ -f1)
APP=$D/busybox.cpio.gz
tests/lib/mkbusybox.sh "$APP"
step "khcon con3: mrw \$ramfsaddr $(stat -c %s "$APP") + the bytes; run kboot   (a busybox appliance to all 100)"
t=$(date +%s%N)
{ printf 'mrw $ramfsaddr %d\n' "$(stat -c %s "$APP")"; cat "$APP"; echo 'echo loaded-$?'; } |
	khcon -c demo-secret "$P" --timeout 60 --until loaded-0 --count 100 "$c1" >/dev/null
echo "loaded into 100 nodes in $(ms "$t") ms; stored once: $(khctl info | grep '^store')"
t=$(date +%s%N)
echo 'run kboot' | khcon -c demo-secret "$P" --timeout 60 --until 'appliance up' --count 100 "$c1" >/dev/null
echo "100 nodes booted in $(ms "$t") ms"
step "echo 'echo \"I am \$(hostname), pid \$\$\"' | khcon --prefix -n 1-2 $c1"
echo 'echo "I am $(hostname), pid $$"' | khcon -c demo-secret "$P" --prefix -n 1-2 --until 'pid 1' --count 2 "$c1" |
	grep 'I am kh' | tr -d '\r'

step khget -c demo-secret "$P" 999 "  (every node left)"
t=$(date +%s%N)
big=$(khget -c demo-secret "$P" 999)
echo "$(grep -c '^nodeinfo' <<<"$big") nodes acquired in $(ms "$t") ms"

step khget -c demo-secret "$P" 1 "  (the pool is empty: all or nothing)"
khget -c demo-secret "$P" 1 || echo "(exit status $?)"

step khctl domains
khctl domains
c2=$(head -n1 <<<"$big" | cut -d@ -f1)
step khctl release -c demo-secret "$P" "$c1" "$c2"
khctl release -c demo-secret "$P" "$c1" "$c2"
echo "free nodes now: $(khctl nodes --free | wc -l)"
echo
echo "Each node above is wired into its domains (docs/fabric.md); channels are"
echo "also reached with ssh (khd --ssh-port, docs/channels.md) and driven with"
echo "khdo (docs/khdo.md). The paper's web farm comes with the next issue."

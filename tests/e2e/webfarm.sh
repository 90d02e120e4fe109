#!/bin/bash
# webfarm-*: the paper's Listing 1 as examples/webfarm.sh runs it (1 web
# server, then 100) and `make demo` (scripts/demo.sh), end to end, as a
# user runs them.  Both run in a network namespace of this test's own,
# which khd takes for the host (its uplink and NAT go there), so another
# facility on this machine holding the external domain's uplink does not
# get in the way; everything else (khd, nodes, nginx, wget) is as a user
# has it.
. "$(dirname "$0")/lib.sh"

isolated() { unshare -n sh -c 'ip link set lo up && exec "$@"' sh "$@"; }

# webfarm-1: on a facility the user started (KH_SOCKET), as alice.
run_example() {
	local dir=$1
	shift
	khd -d "$dir" --nodes 120 && KH_SOCKET=$dir/khd.sock KH_USER=alice KH_CRED=pw-alice \
		COUNTS="1 100" examples/webfarm.sh
	local rc=$?
	KH_SOCKET=$dir/khd.sock khctl nodes --free | wc -l >"$dir/free-after"
	kill "$(head -n1 "$dir/khd.lock")"
	while kill -0 "$(head -n1 "$dir/khd.lock")" 2>/dev/null; do sleep 0.05; done
	return $rc
}
W=$(mktemp -d /tmp/kh-e2e-XXXXXX)
T_DIRS+=("$W")
o=$(isolated bash -c "PATH='$PATH'; $(declare -f run_example); run_example '$W'" 2>&1)
rc=$?
check "webfarm-1.1 examples/webfarm.sh runs Listing 1 with 1 and then 100 web servers" test "$rc" = 0
same "webfarm-1.2 ... the one web server's page names its node" \
	"$(grep -c '^1 of 1 web servers answered with a page naming their node' <<<"$o")" 1
same "webfarm-1.3 ... and so do all 100" \
	"$(grep -c '^100 of 100 web servers answered with a page naming their node' <<<"$o")" 1
check "webfarm-1.4 ... the page fetched from the single node is nginx's, naming it" \
	grep -qE '<h1>kh[0-9a-f]{8}-n[0-9]+</h1>' <<<"$o"
check "webfarm-1.5 ... khget -x printed the original's control block" \
	grep -qx '    network External : eth0' <<<"$o"
same "webfarm-1.6 ... and every node is free again afterwards" "$(cat "$W/free-after" 2>/dev/null)" 120
[ "$rc" = 0 ] || printf '%s\n' "$o" | tail -n 20 | sed 's/^/# /' >&3

# webfarm-2: the README's main job.
o=$(isolated bash scripts/demo.sh 2>&1)
rc=$?
check "webfarm-2.1 make demo's script runs to the end" test "$rc" = 0
check "webfarm-2.2 ... shows the 100 web servers answering" \
	grep -q '^100 of 100 web servers answered' <<<"$o"
check "webfarm-2.3 ... and leaves nothing behind" grep -q '^left behind: nothing' <<<"$o"
[ "$rc" = 0 ] || printf '%s\n' "$o" | tail -n 20 | sed 's/^/# /' >&3

done_testing

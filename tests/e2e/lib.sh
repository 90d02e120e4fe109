# lib.sh: helpers for end-to-end tests.  Each test script prints TAP:
# "ok N - what" / "not ok N - what" and a plan at the end.  Daemons and
# scratch directories made here are removed on exit.
BIN=${KH_BIN:-build/bin}
case "$BIN" in /*) ;; *) BIN=$PWD/$BIN ;; esac
T_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PATH=$BIN:$PATH
T_N=0
T_FAILED=0
T_DIRS=()
# TAP goes to fd 3, so "check ... >/dev/null" silences the command only.
exec 3>&1

ok() { T_N=$((T_N + 1)); echo "ok $T_N - $1" >&3; }
nok() {
	T_N=$((T_N + 1))
	T_FAILED=$((T_FAILED + 1))
	echo "not ok $T_N - $1" >&3
	[ -n "${2:-}" ] && printf '%s\n' "$2" | sed 's/^/# /' >&3
	return 0
}
# check DESC CMD...: passes when CMD succeeds.
check() {
	local d=$1
	shift
	if "$@"; then ok "$d"; else nok "$d" "${o:+output was:
$o}"; fi
}
# same DESC GOT WANT
same() {
	if [ "$2" == "$3" ]; then ok "$1"; else nok "$1" "got:  $2
want: $3"; fi
}
done_testing() {
	echo "1..$T_N" >&3
	[ "$T_FAILED" -eq 0 ]
}

# start_khd [khd options]: a fresh facility in a new directory; sets D and
# KH_SOCKET.  Sanitizer reports go to $D/san.*.
# KH_HOSTS=N: the facility is N hosts instead (examples/cluster.sh: a front
# end khd with its agents, state in PostgreSQL); D is the front end's
# directory; --nodes is spread over the hosts, the other options go to the
# front end's khd.
T_CLUSTERS=()
start_khd() {
	if [ -n "${KH_HOSTS:-}" ]; then
		start_cluster "$@"
		return
	fi
	D=$(mktemp -d /tmp/kh-e2e-XXXXXX)
	T_DIRS+=("$D")
	export KH_SOCKET=$D/khd.sock
	ASAN_OPTIONS="${ASAN_OPTIONS:-}:log_path=$D/san" UBSAN_OPTIONS="${UBSAN_OPTIONS:-}:log_path=$D/san" \
		khd -d "$D" "$@"
}
start_cluster() {
	local n=64 cl args=()
	while [ $# -gt 0 ]; do
		case $1 in
		--nodes) n=$2 && shift ;;
		--no-fabric | --no-rdma) ;; # the front end has neither
		*) args+=("$1") ;;
		esac
		shift
	done
	cl=$(mktemp -d /tmp/kh-e2e-cl-XXXXXX)
	rmdir "$cl"
	T_CLUSTERS+=("$cl")
	KH_CLUSTER=$cl KH_BIN=$BIN KH_KHD_ARGS="${args[*]}" "$T_ROOT/examples/cluster.sh" up "$KH_HOSTS" \
		$(((n + KH_HOSTS - 1) / KH_HOSTS)) >/dev/null 2>"$cl.err" || {
		nok "a facility of $KH_HOSTS hosts (examples/cluster.sh up)" "$(cat "$cl.err")"
		return 1
	}
	rm -f "$cl.err"
	D=$cl/front
	export KH_SOCKET=$D/khd.sock
}
# restart_khd [options]: start khd again on the same $D.
restart_khd() {
	ASAN_OPTIONS="${ASAN_OPTIONS:-}:log_path=$D/san" UBSAN_OPTIONS="${UBSAN_OPTIONS:-}:log_path=$D/san" \
		khd -d "$D" "$@"
}
khd_pid() { head -n1 "$1/khd.lock" 2>/dev/null; }
# stop_khd [DIR]: SIGTERM, wait for a clean exit, then no sanitizer report.
stop_khd() {
	local dir=${1:-$D} pid
	pid=$(khd_pid "$dir")
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null
	for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
	if kill -0 "$pid" 2>/dev/null; then
		nok "khd in $dir stops on SIGTERM"
		kill -9 "$pid"
	fi
	if ls "$dir"/san.* >/dev/null 2>&1; then
		nok "khd in $dir ran without sanitizer reports" "$(cat "$dir"/san.* | head -40)"
		rm -f "$dir"/san.*
	fi
}
# kill9_khd: kill -9 khd of $D and wait until it is gone.
kill9_khd() {
	local pid
	pid=$(khd_pid "$D")
	kill -9 "$pid"
	for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.02; done
}
# KH_KEEP=1: scratch directories (khd.log, ...) are kept for a post-mortem.
cleanup() {
	for c in "${T_CLUSTERS[@]}"; do
		KH_CLUSTER=$c "$T_ROOT/examples/cluster.sh" down >/dev/null 2>&1
	done
	for d in "${T_DIRS[@]}"; do
		stop_khd "$d" >/dev/null 2>&1
		# nodes a killed khd left running, with their console holder, or
		# its mounts (DIR/run, DIR/images): taken over and stopped
		{ grep -q " $d/run/conhold.sock\$" /proc/net/unix 2>/dev/null ||
			grep -q " $d/" /proc/self/mounts; } &&
			khd -d "$d" --stop-nodes >/dev/null 2>&1
		[ -n "${KH_KEEP:-}" ] && echo "# kept $d" >&3 || rm -rf "$d"
	done
}
trap cleanup EXIT

# snapshot: everything a principal can see of the facility.
snapshot() { khctl nodes; khctl domains; khctl allowed; }

# rejects DESC PATTERN CMD...: CMD fails with exactly one line on stderr
# that matches PATTERN, prints nothing on stdout, and changes nothing.
rejects() {
	local d=$1 pat=$2 before after out err rc
	shift 2
	before=$(snapshot)
	out=$("$@" 2>/tmp/kh-e2e-err.$$)
	rc=$?
	err=$(cat /tmp/kh-e2e-err.$$)
	rm -f /tmp/kh-e2e-err.$$
	after=$(snapshot)
	if [ "$rc" -eq 0 ]; then
		nok "$d" "exit status 0; stdout: $out"
	elif [ "$(printf '%s\n' "$err" | wc -l)" -ne 1 ] || ! grep -qE -- "$pat" <<<"$err"; then
		nok "$d" "stderr: $err (want one line matching $pat)"
	elif [ -n "$out" ]; then
		nok "$d" "stdout not empty: $out"
	elif [ "$before" != "$after" ]; then
		nok "$d" "the facility changed"
	else
		ok "$d"
	fi
}
# send LINE: one raw protocol exchange with khd (socat), prints the reply.
send() { printf '%s' "$1" | socat -t 2 - "UNIX-CONNECT:$KH_SOCKET"; }

# node_run CRED USER CON RANK CMD: run CMD in the shell of node RANK (an
# appliance's busybox shell on channel CON), as a user types it; print its
# output, then its status as the last line "status N".  The output is kept
# in a file in the node and printed between markers, apart from the
# shell's echo of what it was typed; a marker is unique even in a command
# substitution (BASHPID).
# node_bg CRED USER CON RANK CMD: start CMD in the background there.
NODE_SEQ=0
node_run() {
	local cred=$1 user=$2 con=$3 r=$4 m
	shift 4
	NODE_SEQ=$((NODE_SEQ + 1))
	m="$BASHPID$NODE_SEQ"
	printf '{ %s; } >/tmp/.o 2>&1; s=$?; echo "@@S$((%s+0))"; cat /tmp/.o; echo "@@E$((%s+0)) $s"\n' \
		"$*" "$m" "$m" |
		khcon -c "$cred" "$user" --prefix -n "$r" --timeout 120 --until "@@E$m " "$con" |
		tr -d '\r' | sed -n "s/^\[$r\] //p" | sed -n "/^@@S$m\$/,\$p" | sed 1d |
		sed -E "s/(.)@@E$m /\1\n@@E$m /" | sed -E "s/^@@E$m ([0-9]+)$/status \1/"
}
node_bg() {
	local cred=$1 user=$2 con=$3 r=$4 m
	shift 4
	NODE_SEQ=$((NODE_SEQ + 1))
	m="$BASHPID$NODE_SEQ"
	printf '%s 2>&1 &\necho "@@B$((%s+0))"\n' "$*" "$m" |
		khcon -c "$cred" "$user" --prefix -n "$r" --timeout 60 --until "@@B$m" "$con" >/dev/null
}

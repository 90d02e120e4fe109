# lib.sh: what the examples share (sourced by bash): the facility, nodes
# acquired and released, commands run on the nodes' consoles.
#
# The facility is $KH_SOCKET's when it is set; otherwise the example starts
# khd on a scratch directory (as root) and stops it at the end.  The
# principal is $KH_USER (default $USER) with credential $KH_CRED (default a
# made-up one, right for a new principal).  khget, khdo, khctl and
# khappliance come from PATH; this tree's build/bin is tried last.
# Everything acquired is released at the end, also on failure or ^C;
# KH_KEEP=1 keeps the nodes (on a facility given by KH_SOCKET).
# shellcheck shell=bash
set -euo pipefail

ex_name=$(basename "$0" .sh)
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PATH=$PATH:$top/build/bin
export KH_USER=${KH_USER:-${USER:-demo}}
export KH_CRED=${KH_CRED:-$ex_name-demo}
work=$(mktemp -d "/tmp/kh-$ex_name-XXXXXX")
held=() # "USER con<C>": what to release at the end
own_khd=""

say() { printf '\n== %s\n' "$*"; }
die() {
	echo "$ex_name: $*" >&2
	exit 1
}
ex_finish() {
	local rc=$? h
	trap - EXIT INT TERM ERR
	if [ ${#held[@]} -gt 0 ] && [ -n "${KH_KEEP:-}" ] && [ -z "$own_khd" ]; then
		say "kept: ${held[*]} (khctl block USER con<C> prints a block again; khctl release USER con<C> releases)"
		held=()
	fi
	if [ ${#held[@]} -gt 0 ]; then
		say "releasing the nodes"
		for h in "${held[@]}"; do
			# shellcheck disable=SC2086 # "USER CHANNEL"
			khctl release $h || rc=1
		done
	fi
	if [ -n "$own_khd" ]; then
		local pid
		pid=$(head -n1 "$own_khd/khd.lock" 2>/dev/null || true)
		if [ -n "$pid" ]; then
			kill -TERM "$pid" 2>/dev/null || true
			for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		fi
	fi
	rm -rf "$work"
	exit "$rc"
}
trap ex_finish EXIT
trap 'exit 130' INT TERM
trap 'echo "$ex_name: line $LINENO failed" >&2' ERR

# need PROGRAM...: each must be in PATH
need() {
	for t in "$@"; do
		command -v "$t" >/dev/null || die "$t is not in PATH (make; scripts/deps.sh; docs/examples.md)"
	done
}

# facility [NODES]: use $KH_SOCKET or start a khd of NODES nodes.  Most
# examples use the external domain, whose uplink one facility per host
# holds (docs/fabric.md): say so rather than fail later.  An example that
# stays in private domains sets PRIVATE_ONLY=1 first.
facility() {
	need khd khget khdo khctl khappliance
	if [ -z "${KH_SOCKET:-}" ]; then
		if [ -z "${PRIVATE_ONLY:-}" ] && ip -br addr 2>/dev/null | grep -q ' 10\.0\.31\.254/'; then
			die "another facility on this host holds the external domain's uplink; stop it or use it (KH_SOCKET)"
		fi
		own_khd=$work/facility
		mkdir -p "$own_khd"
		# facility N [TYPE-LINES]: more node types after the default's
		[ -z "${2:-}" ] || printf 'type ct1 count=%s\n%s\n' "${1:-16}" "$2" >"$own_khd/khd.conf"
		# with its sshd on a free loopback port: the service interface
		# (docs/ebb.md) that nodes of the public domain reach
		local p sshopt=()
		if [ -x /usr/sbin/sshd ]; then
			for _ in $(seq 50); do
				p=$((20000 + RANDOM % 20000))
				ss -Hltn "sport = :$p" | grep -q . || { sshopt=(--ssh-port "$p" --ssh-listen 127.0.0.1); break; }
			done
		fi
		khd -d "$own_khd" --nodes "${1:-16}" "${sshopt[@]}" || die "cannot start khd (it runs as root)"
		export KH_SOCKET=$own_khd/khd.sock
		echo "a facility of ${1:-16} nodes in $own_khd (stopped at the end)"
	fi
	if [ -z "${PRIVATE_ONLY:-}" ] && grep -q 'already has 10.0.31.254' "${KH_SOCKET%/*}/khd.log" 2>/dev/null; then
		die "another facility on this host holds the external domain's uplink; stop it or use it (KH_SOCKET)"
	fi
	return 0
}

# service: true when the facility serves nodes of the public domain
# (khd --ssh-port: KH_SOCKET=ssh://kh@... in their environment)
service() { grep -q 'service interface: ssh://' "${KH_SOCKET%/*}/khd.log" 2>/dev/null; }

# acquire VAR KHGET-ARGUMENTS...: khget's control block into VAR; its
# channel is released at the end.
acquire() {
	local -n blk_=$1
	shift
	blk_=$(khget "$@") || die "khget $* failed"
	held+=("${*: -2:1} $(chan "$blk_")")
}
# release BLOCK USER: give the block's nodes back now
release() {
	local c i
	c=$(chan "$1")
	khctl release "$2" "$c" || die "cannot release $c"
	for i in "${!held[@]}"; do [ "${held[$i]}" != "$2 $c" ] || unset 'held[i]'; done
	held=("${held[@]}")
}
# The control block, read as the original's scripts did (line prefixes).
chan() { head -n1 <<<"$1" | cut -d@ -f1; }
ranks() { sed -n 's/^nodes: //p' <<<"$1"; }
# netid BLOCK K: the K-th private domain of the block (from 1)
netid() { awk '/^network [0-9]+ :/ {print $2}' <<<"$1" | sed -n "${2}p"; }
# addr NETID RANK: a node's address in a domain (the plan, docs/fabric.md)
addr() {
	local n=$1 h=$(($2 + 1))
	echo "10.$((n >> 4)).$((((n & 15) << 4) + (h >> 8))).$((h & 255))"
}
# addrs NETID BLOCK: the addresses of the block's nodes in domain NETID
addrs() { for r in $(ranks "$2"); do addr "$1" "$r"; done | paste -sd' '; }

# on BLOCK CMD: run CMD in the console shell of every node of BLOCK; print
# its output as "  [RANK] line".  The tag is typed in two pieces, so the
# console's echo of the command never matches it.  A console takes one
# line: a CMD written over several lines is joined (each line ends a
# command, or is inside a compound one).
ex_seq=0
on() {
	local tag=kh$$x$((ex_seq += 1)) cmd
	cmd=$(printf '%s' "$2" | tr '\n\t' '  ')
	if ! echo "$1" | khdo --prefix -t 120 --until "$tag-end" \
		write "{ $cmd; } 2>&1 | sed 's/^/$tag''> /'; echo $tag-''end" >"$work/on.out"; then
		sed 's/^/  /' "$work/on.out" >&2
		die "$(chan "$1") did not finish: $2"
	fi
	sed -nE "s/\r//g; s/^\[([0-9]+)\] .*$tag> (.*)/  [\1] \2/p" "$work/on.out"
}
# boot BLOCK FILE WORD UNTIL: load FILE into every node of BLOCK and boot
# it; wait until every node's console said UNTIL; print what the service
# said (its lines start with "WORD: ").
boot() {
	echo "$1" | khdo loadramdisk "$2" || die "cannot load $2 on $(chan "$1")"
	echo "$1" | khdo --prefix -t 120 --until "$4" write 'run kboot' >"$work/boot.out" ||
		die "$(chan "$1") did not boot $2: $(tail -n3 "$work/boot.out" | tr -d '\r')"
	sed -nE "s/\r//g; s/^\[([0-9]+)\] .*($3: .*)/  [\1] \2/p" "$work/boot.out"
}
# appliance NAME: build appliances/NAME into $work/NAME.cpio.gz, in the
# background (wait for it with built)
appliance() {
	khappliance -r "$top/appliances/$1" -o "$work/$1.cpio.gz" 2>"$work/$1.log" &
}
# built NAME...: wait for the builds; print their size lines
built() {
	wait
	for a in "$@"; do
		sed 's/^/  /' "$work/$a.log"
		[ -s "$work/$a.cpio.gz" ] || die "khappliance -r appliances/$a failed"
	done
}

#!/bin/sh
# mkroot.sh DIR: a Debian 12 root for the server appliance (examples/
# servers.sh): minbase (dpkg, apt, coreutils, bash, perl-base) with python3,
# OpenSSH's server and client, procps, iproute2 (with libatm1, which its
# tc plugin q_atm.so needs) and ping, from Debian's
# archive through the host's apt sources.  No manuals, locales or docs
# (copyrights stay), no SSH host keys or machine-id (each node makes its
# own), no device nodes (khd gives every node its /dev).  About a minute;
# needs mmdebstrap and root.
set -eu
[ $# -eq 1 ] || { echo "usage: mkroot.sh DIR" >&2; exit 2; }
dir=$1
tmp=$dir.tmp.$$
trap 'rm -rf "$tmp" "$tmp.log"' EXIT
rm -rf "$tmp"
mmdebstrap --variant=minbase \
	--include=python3,openssh-server,procps,iproute2,libatm1,iputils-ping \
	--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
	--dpkgopt='path-exclude=/usr/share/man/*' \
	--dpkgopt='path-exclude=/usr/share/locale/*' \
	--dpkgopt='path-include=/usr/share/locale/locale.alias' \
	--dpkgopt='path-exclude=/usr/share/doc/*' \
	--dpkgopt='path-include=/usr/share/doc/*/copyright' \
	--dpkgopt='path-exclude=/usr/share/info/*' \
	--customize-hook='rm -f "$1"/etc/ssh/ssh_host_*; : >"$1"/etc/machine-id' \
	bookworm "$tmp" >"$tmp.log" 2>&1 || {
	tail -n 20 "$tmp.log" >&2
	echo "mkroot.sh: mmdebstrap failed" >&2
	exit 1
}
rm -rf "${tmp:?}"/dev/*
rm -rf "$dir"
mv "$tmp" "$dir"

#!/bin/sh
# Install the Debian packages Kittyhawk needs, only those that are missing.
set -e
PKGS="build-essential clang libsqlite3-dev sqlite3 libsodium-dev libmnl-dev libnftables-dev nftables libcmocka-dev
zlib1g-dev iproute2 busybox-static cpio crun socat jq openssh-client u-boot-tools
hyperfine iperf3 iputils-ping"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null

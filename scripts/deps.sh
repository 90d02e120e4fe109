#!/bin/sh
# Install the Debian packages Kittyhawk needs, only those that are missing.
set -e
PKGS="build-essential clang libsqlite3-dev sqlite3 libsodium-dev libmnl-dev libnftables-dev nftables libcmocka-dev
zlib1g-dev iproute2 busybox-static cpio crun socat jq openssh-client u-boot-tools
hyperfine iperf3 iputils-ping wget"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
# openssh-server only for its sshd binary, which khd runs with its own
# host key and configuration (khd --ssh-port, docs/channels.md).
sshd_missing=""
dpkg-query -W -f='${Status}' openssh-server 2>/dev/null | grep -q "ok installed" || sshd_missing=1
[ -z "$missing" ] && [ -z "$sshd_missing" ] && exit 0
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
if [ -n "$missing" ]; then
	echo "deps: installing$missing"
	$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
if [ -n "$sshd_missing" ]; then
	# The host gets no sshd of its own from this: a policy-rc.d that refuses
	# every service start keeps the package from starting it now, and
	# Debian's sshd_not_to_be_run keeps ssh.service from starting it at
	# boot (delete that file to run a host sshd).
	echo "deps: installing openssh-server (for khd; the host's own sshd stays off)"
	policy=/usr/sbin/policy-rc.d
	made=""
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\n# scripts/deps.sh: no service starts while it installs\nexit 101\n' |
			$SUDO tee "$policy" >/dev/null
		$SUDO chmod 755 "$policy"
		made=1
		trap '$SUDO rm -f "$policy"' EXIT
	fi
	$SUDO mkdir -p /etc/ssh
	[ -e /etc/ssh/sshd_not_to_be_run ] || $SUDO touch /etc/ssh/sshd_not_to_be_run
	$SUDO apt-get install -y -qq --no-install-recommends openssh-server >/dev/null
	if [ -n "$made" ]; then
		$SUDO rm -f "$policy"
		trap - EXIT
	fi
	if pgrep -f '^(/usr/sbin/)?sshd( -D)?$|sshd: /usr/sbin/sshd( -D)? \[listener\]' >/dev/null; then
		echo "deps: warning: an sshd with the host's configuration is running" >&2
	fi
fi

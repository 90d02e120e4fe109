#!/bin/sh
# Install the Debian packages Kittyhawk needs, only those that are missing.
set -e
PKGS="build-essential clang libclang-rt-14-dev libsqlite3-dev sqlite3 libsodium-dev libmnl-dev libnftables-dev nftables libcmocka-dev
zlib1g-dev iproute2 busybox-static cpio crun socat jq openssh-client u-boot-tools
hyperfine iperf3 iputils-ping wget curl python3-prometheus-client rclone mmdebstrap
libmemcached-tools libmemcached-dev python3-pymemcache libfuse3-dev fuse3 parallel
qemu-system-x86 linux-image-cloud-amd64 libpq-dev"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
# Packages wanted only for their programs, whose services must not start on
# the host: openssh-server (sshd, which khd runs with its own host key and
# configuration: khd --ssh-port, docs/channels.md), nginx (for the web
# appliance, docs/appliances.md), memcached (the reference khmcd's tests
# compare against; they start their own on a random port, docs/mc.md) and
# postgresql-15 (the PostgreSQL state backend's tests and benchmark run
# initdb and pg_ctl in a scratch directory, docs/state.md).
SERVICES="openssh-server nginx memcached postgresql-15"
svc_missing=""
for p in $SERVICES; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || svc_missing="$svc_missing $p"
done
[ -z "$missing" ] && [ -z "$svc_missing" ] && exit 0
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
if [ -n "$missing" ]; then
	echo "deps: installing$missing"
	$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
if [ -n "$svc_missing" ]; then
	# A policy-rc.d that refuses every service start keeps the packages
	# from starting their services now; Debian's sshd_not_to_be_run keeps
	# ssh.service from starting at boot, and nginx.service,
	# memcached.service and postgresql.service are disabled (systemctl
	# enable nginx, or delete that file, to run them on the host).
	echo "deps: installing$svc_missing (for their programs; the host's services stay off)"
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
	$SUDO apt-get install -y -qq --no-install-recommends $svc_missing >/dev/null
	for svc in nginx memcached postgresql; do
		case "$svc_missing" in *"$svc"*)
			if command -v systemctl >/dev/null 2>&1; then
				$SUDO systemctl disable "$svc" >/dev/null 2>&1 || true
			fi
			$SUDO update-rc.d "$svc" disable >/dev/null 2>&1 || true
			;;
		esac
	done
	if [ -n "$made" ]; then
		$SUDO rm -f "$policy"
		trap - EXIT
	fi
	if pgrep -f '^(/usr/sbin/)?sshd( -D)?$|sshd: /usr/sbin/sshd( -D)? \[listener\]' >/dev/null; then
		echo "deps: warning: an sshd with the host's configuration is running" >&2
	fi
	if pgrep -x nginx >/dev/null; then
		echo "deps: warning: an nginx is running on the host" >&2
	fi
	if pgrep -x -u memcache memcached >/dev/null 2>&1; then
		echo "deps: warning: the host's memcached service is running" >&2
	fi
	if pgrep -u postgres -x postgres >/dev/null 2>&1; then
		echo "deps: warning: the host's PostgreSQL service is running" >&2
	fi
fi

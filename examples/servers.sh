#!/bin/bash
# servers.sh: general-purpose servers (the paper's third scenario): nodes
# running a whole Debian userland (dpkg and apt, bash, perl, python3,
# OpenSSH) from one shared root.  The root is one appliance, loaded once
# for all the nodes and unpacked once; every node writes into a layer of
# its own over it (docs/nodes.md), so a change on one server is seen on
# no other.  Each server runs sshd and a Python web page; the principal
# logs in with its own key.
#
#   examples/servers.sh                        on a facility of its own (root)
#   KH_SOCKET=DIR/khd.sock examples/servers.sh on a running facility
#
# The first run builds the Debian root with mmdebstrap from Debian's
# archive (about a minute; appliances/server/mkroot.sh) and the appliance
# (about 40 s); both are kept in $KH_CACHE (build/cache) for later runs.
# NSERVERS (3) sizes it.  See examples/lib.sh for KH_USER, KH_CRED and
# KH_KEEP.
. "$(dirname "$0")/lib.sh"
NSERVERS=${NSERVERS:-3}
cache=${KH_CACHE:-$top/build/cache}
root=$cache/debian-bookworm
app=$cache/server.cpio.gz

need ssh ssh-keygen wget
facility 16

say "the shared root: Debian 12 ($root)"
mkdir -p "$cache"
if [ ! -e "$root.made" ] || [ "$top/appliances/server/mkroot.sh" -nt "$root.made" ]; then
	need mmdebstrap
	echo "  building it once with mmdebstrap (appliances/server/mkroot.sh)"
	"$top/appliances/server/mkroot.sh" "$root" || die "cannot build the Debian root"
	touch "$root.made"
fi
if [ ! -s "$app" ] || [ -n "$(find "$top/appliances/server" "$root.made" -newer "$app" -print -quit)" ]; then
	khappliance --root "$root" -r "$top/appliances/server/debian.recipe" -o "$app" 2>&1 |
		sed 's/^/  /'
	[ -s "$app" ] || die "khappliance failed"
else
	echo "  $(basename "$app"): $(du -m "$app" | cut -f1) MB, made earlier from it"
fi

say "acquiring $NSERVERS nodes in the external domain (and a private one of their own)"
acquire srv -x -p 1 "$KH_USER" "$NSERVERS"
echo "$srv" | sed 's/^/  /'

say "loading the root once for all of them, and booting"
boot "$srv" "$app" server "server: "
khctl info | sed -n 's/^store /  the facility stores /p'

say "the principal's key for root on every server (through the channel)"
ssh-keygen -q -t ed25519 -N '' -C "$KH_USER@$ex_name" -f "$work/key"
on "$srv" "mkdir -p /root/.ssh && echo '$(cat "$work/key.pub")' >/root/.ssh/authorized_keys && echo key installed"
cat >"$work/ssh.conf" <<EOF
User root
IdentityFile $work/key
StrictHostKeyChecking no
UserKnownHostsFile /dev/null
LogLevel ERROR
BatchMode yes
EOF

say "every server's web page (khdo peripcmd \"wget -qO- http://%ip%/\")"
echo "$srv" | khdo peripcmd "wget -qO- http://%ip%/" | sed 's/^/  /'

say "a normal userland over ssh (khdo peripcmd \"ssh root@%ip% ...\")"
cat >"$work/look.sh" <<'EOF'
. /etc/os-release
echo "$(hostname): $PRETTY_NAME on the host's kernel $(uname -r)"
echo "  dpkg: $(dpkg-query -W | wc -l) packages; $(dpkg -S /usr/bin/python3 | cut -d: -f1) gives python3"
echo "  apt: $(apt list --installed 2>/dev/null | grep -c installed) installed, apt $(apt --version | cut -d' ' -f2)"
echo "  python3: $(python3 -c 'import json, sqlite3, ssl; print("json, sqlite3", sqlite3.sqlite_version, "and", ssl.OPENSSL_VERSION)')"
echo "  perl: $(perl -MPOSIX -e 'printf "perl %vd, POSIX::uname says %s %s", $^V, (POSIX::uname())[0, 4]')"
echo "  running: $(ps -eo comm= | grep -E '^(sshd|python3)$' | sort -u | paste -sd' ') (PID 1: $(cat /proc/1/comm))"
EOF
echo "$srv" | khdo peripcmd "ssh -F $work/ssh.conf %ip% sh -s <$work/look.sh" | sed 's/^/  /'

first=$(awk '/^nodeinfo:/ {print $4; exit}' <<<"$srv")
say "each server writes into its own layer: remove a package on $first only"
ssh -F "$work/ssh.conf" "$first" 'dpkg --purge iputils-ping >/dev/null && echo "  $(hostname): dpkg --purge iputils-ping"'
cat >"$work/ping.sh" <<'EOF'
echo "$(hostname): iputils-ping $(dpkg-query -W -f='${db:Status-Status}' iputils-ping 2>/dev/null || echo not-installed), $(command -v ping || echo no ping)"
EOF
echo "$srv" | khdo peripcmd "ssh -F $work/ssh.conf %ip% sh -s <$work/ping.sh" | sed 's/^/  /'

say "done"

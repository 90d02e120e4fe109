#!/bin/sh
# mkbusybox.sh OUT.cpio.gz [INIT-SCRIPT]: a busybox appliance for tests and
# benchmarks (a gzip'd newc cpio, as the original's ramdisks), made from
# Debian's busybox-static.  The default /init says
# "appliance up on <hostname>" and keeps a shell on the console (khd gives
# the node its /proc, /sys and /dev).
set -eu
out=$1
init=${2:-}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/proc" "$root/sys" "$root/dev" "$root/tmp" "$root/etc"
cp /bin/busybox "$root/bin/busybox"
for app in $(/bin/busybox --list); do
	[ "$app" = busybox ] || ln -s busybox "$root/bin/$app"
done
if [ -n "$init" ]; then
	cp "$init" "$root/init"
else
	cat >"$root/init" <<'EOS'
#!/bin/sh
echo "appliance up on $(hostname)"
exec /bin/sh
EOS
fi
chmod 755 "$root/init"
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 --reproducible) | gzip -9n >"$out"

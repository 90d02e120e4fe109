#!/bin/bash
# webfarm.sh: the paper's Listing 1, a web server on a node acquired with
# -x, then 100 of them "with no other change":
#
#     nodes=$(khget -x $USER 1)
#     echo "$nodes" | khdo loadkernel ./uImage
#     echo "$nodes" | khdo loadramdisk ./apache.cpio.gz.uimg
#     echo "$nodes" | khdo write "run kboot"
#     echo "$nodes" | khdo peripcmd "wget http://%ip%/"
#
# Two differences, both said where they happen: ct nodes run the host's
# kernel, so there is no loadkernel (with -t vm1 the line runs as it
# is); and wget retries until the node's nginx listens, since "run kboot"
# returns as soon as the nodes start booting.  The appliance is
# appliances/web (nginx from Debian) built by khappliance with a U-Boot
# header, as the original's apache.cpio.gz.uimg was.
#
#   examples/webfarm.sh                         on a facility of its own (root)
#   KH_SOCKET=DIR/khd.sock examples/webfarm.sh  on a running facility
#   COUNTS="1 100" (the default) says how many servers each round boots.
#   examples/webfarm.sh -t vm1                  on QEMU nodes of type vm1:
#       Listing 1 literally, loadkernel included (a Debian kernel, $KERNEL
#       or the newest /boot/vmlinuz-*-cloud-amd64, in a uImage); its own
#       facility gets "type vm1 backend=vm"; COUNTS defaults to "1 4"
#       (each VM is a QEMU process: 100 of them need 100 cores' worth
#       under TCG).
#
# See examples/lib.sh for KH_USER, KH_CRED and KH_KEEP.
. "$(dirname "$0")/lib.sh"
TYPE=
while getopts t: o; do
	case $o in
	t) TYPE=$OPTARG ;;
	*) die "usage: examples/webfarm.sh [-t TYPE]" ;;
	esac
done
case "$TYPE" in vm*) COUNTS=${COUNTS:-1 4} ;; *) COUNTS=${COUNTS:-1 100} ;; esac

need wget
max=0
for n in $COUNTS; do [ "$n" -gt "$max" ] && max=$n; done
if [ -n "$TYPE" ] && [ -z "${KH_SOCKET:-}" ]; then
	case "$TYPE" in
	vm*) facility $((max + 10)) "type $TYPE backend=vm cpus=1 mem=256M count=$((max + 2))" ;;
	*) facility $((max + 10)) "type $TYPE count=$((max + 2))" ;;
	esac
else
	facility $((max + 10))
fi
ms() { echo $((($(date +%s%N) - $1) / 1000000)); }
backend=ct
if [ -n "$TYPE" ]; then
	backend=$(khctl info | awk -v t="$TYPE" '$1 == "type" && $2 == t {sub("backend=", "", $3); print $3}')
	[ -n "$backend" ] || die "no node type $TYPE in this facility (khctl info)"
fi
tflag=()
[ -z "$TYPE" ] || tflag=(-t "$TYPE")

kmod=()
if [ "$backend" = vm ]; then
	KERNEL=${KERNEL:-$(ls -1 /boot/vmlinuz-*-cloud-amd64 2>/dev/null | sort -V | tail -n1)}
	[ -n "$KERNEL" ] || die "no kernel: KERNEL=FILE, or apt-get install linux-image-cloud-amd64"
	need mkimage
	kmod=(--kmod "${KERNEL##*/vmlinuz-}")
	say "mkimage -A x86_64 -O linux -T kernel -C none -d $KERNEL uImage"
	mkimage -q -A x86_64 -O linux -T kernel -C none -a 0 -e 0 -n "${KERNEL##*/}" -d "$KERNEL" \
		"$work/uImage" >/dev/null || die "mkimage failed"
fi

say "khappliance --uimage -r appliances/web ${kmod[*]} -o apache.cpio.gz.uimg"
APP=$work/apache.cpio.gz.uimg
khappliance --uimage "${kmod[@]}" -r "$top/appliances/web" -o "$APP" || die "cannot build the web appliance"

for n in $COUNTS; do
	say "Listing 1 with $n web server$([ "$n" -gt 1 ] && echo s)"
	t=$(date +%s%N)
	nodes=$(khget -x "${tflag[@]}" "$KH_USER" "$n") || die "khget -x ${tflag[*]} $KH_USER $n failed"
	held+=("$KH_USER $(chan "$nodes")")
	echo "\$ nodes=\$(khget -x \$USER $n)      ($(ms "$t") ms)"
	if [ "$n" -le 2 ]; then
		sed 's/^/    /' <<<"$nodes"
	else
		head -n 5 <<<"$nodes" | sed 's/^/    /'
		echo "    ... ($(grep -c '^nodeinfo' <<<"$nodes") nodeinfo lines)"
	fi

	if [ "$backend" = vm ]; then
		t=$(date +%s%N)
		echo "$nodes" | khdo loadkernel "$work/uImage" >"$work/load.out" 2>&1 ||
			die "loadkernel failed: $(tail -n 3 "$work/load.out")"
		echo "\$ echo \"\$nodes\" | khdo loadkernel ./uImage      ($(ms "$t") ms, $(stat -c %s "$work/uImage") bytes to $n nodes)"
	else
		echo "\$ echo \"\$nodes\" | khdo loadkernel ./uImage      (not on ct nodes: they run the host kernel)"
	fi

	t=$(date +%s%N)
	echo "$nodes" | khdo loadramdisk "$APP" >"$work/load.out" 2>&1 ||
		die "loadramdisk failed: $(tail -n 3 "$work/load.out")"
	echo "\$ echo \"\$nodes\" | khdo loadramdisk ./apache.cpio.gz.uimg      ($(ms "$t") ms, $(stat -c %s "$APP") bytes to $n nodes)"

	t=$(date +%s%N)
	echo "$nodes" | khdo write "run kboot" >"$work/boot.out" 2>&1 || true
	echo "\$ echo \"\$nodes\" | khdo write \"run kboot\"      ($(ms "$t") ms)"
	tr -d '\r' <"$work/boot.out" | grep -m 3 -oE '## Transferring.*|web: .*' | sed 's/^/    /' || true

	# The node's page names it: each fetch is checked against the address
	# it was fetched from.
	t=$(date +%s%N)
	tries=60
	[ "$backend" = vm ] && tries=$((60 + 30 * n)) # a TCG boot takes seconds of CPU
	echo "$nodes" | khdo peripcmd \
		"wget -q -O- --tries=$tries --waitretry=1 --retry-connrefused --retry-on-host-error http://%ip%/ | grep -q '<li>eth0 %ip%</li>' && echo 'http://%ip%/ names its node' || echo 'http://%ip%/ FAILED'" \
		>"$work/pages.out" 2>&1 || true
	got=$(grep -c 'names its node' "$work/pages.out" || true)
	echo "\$ echo \"\$nodes\" | khdo peripcmd \"wget http://%ip%/\"      ($(ms "$t") ms)"
	if [ "$n" -le 2 ]; then
		ip=$(awk '/^nodeinfo/ {print $4; exit}' <<<"$nodes")
		wget -q -O- "http://$ip/" | sed 's/^/    /'
	else
		head -n 3 "$work/pages.out" | sed 's/^/    /'
		echo "    ..."
	fi
	echo "$got of $n web servers answered with a page naming their node"
	[ "$got" = "$n" ] || die "$(grep -v 'names its node' "$work/pages.out" | head -n 5)"

	# Done with this round: the next one acquires afresh, as Listing 1
	# run again would.
	khctl release "$KH_USER" "$(chan "$nodes")" >/dev/null
	held=("${held[@]:0:${#held[@]}-1}")
done

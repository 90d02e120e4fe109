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
# kernel, so there is no loadkernel (a vm node would take that line as it
# is); and wget retries until the node's nginx listens, since "run kboot"
# returns as soon as the nodes start booting.  The appliance is
# appliances/web (nginx from Debian) built by khappliance with a U-Boot
# header, as the original's apache.cpio.gz.uimg was.
#
#   examples/webfarm.sh                         on a facility of its own (root)
#   KH_SOCKET=DIR/khd.sock examples/webfarm.sh  on a running facility
#   COUNTS="1 100" (the default) says how many servers each round boots.
#
# See examples/lib.sh for KH_USER, KH_CRED and KH_KEEP.
. "$(dirname "$0")/lib.sh"
COUNTS=${COUNTS:-1 100}

need wget
max=0
for n in $COUNTS; do [ "$n" -gt "$max" ] && max=$n; done
facility $((max + 10))
ms() { echo $((($(date +%s%N) - $1) / 1000000)); }

say "khappliance --uimage -r appliances/web -o apache.cpio.gz.uimg"
APP=$work/apache.cpio.gz.uimg
khappliance --uimage -r "$top/appliances/web" -o "$APP" || die "cannot build the web appliance"

for n in $COUNTS; do
	say "Listing 1 with $n web server$([ "$n" -gt 1 ] && echo s)"
	t=$(date +%s%N)
	nodes=$(khget -x "$KH_USER" "$n") || die "khget -x $KH_USER $n failed"
	held+=("$KH_USER $(chan "$nodes")")
	echo "\$ nodes=\$(khget -x \$USER $n)      ($(ms "$t") ms)"
	if [ "$n" -le 2 ]; then
		sed 's/^/    /' <<<"$nodes"
	else
		head -n 5 <<<"$nodes" | sed 's/^/    /'
		echo "    ... ($(grep -c '^nodeinfo' <<<"$nodes") nodeinfo lines)"
	fi

	echo "\$ echo \"\$nodes\" | khdo loadkernel ./uImage      (not on ct nodes: they run the host kernel)"

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
	echo "$nodes" | khdo peripcmd \
		"wget -q -O- --tries=60 --waitretry=1 --retry-connrefused --retry-on-host-error http://%ip%/ | grep -q '<li>eth0 %ip%</li>' && echo 'http://%ip%/ names its node' || echo 'http://%ip%/ FAILED'" \
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

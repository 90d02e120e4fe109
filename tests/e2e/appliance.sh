# appliance-*: khappliance and the shell and web recipes (issue 6) as a
# principal uses them: build twice (same bytes), read the archives with the
# real cpio, run the web server from the unpacked tree, refuse bad input with
# one line and no file, then boot the shell appliance and the web appliance
# (.cpio.gz and --uimage) on nodes and fetch every node's page from the host
# with khdo peripcmd.
. "$(dirname "$0")/lib.sh"
TOP=$(cd "$(dirname "$0")/../.." && pwd)
W=$(mktemp -d /tmp/kh-e2e-XXXXXX)
T_DIRS+=("$W")
chmod 755 "$W"
unset SOURCE_DATE_EPOCH

# appliance-1: the recipes build, twice to the same bytes, with a size line.
sizere='^[a-z.]+: [0-9.]+ MB \([0-9.e-]+% of the [0-9.]+ [MG]B root file system /\), [0-9]+ files, [0-9.]+ MB unpacked$'
for r in shell web; do
	khappliance -o "$W/$r.cpio.gz" -r "$TOP/appliances/$r" 2>"$W/$r.size"
	same "appliance-1.1 $r: khappliance -r appliances/$r succeeds" "$?" "0"
	khappliance -o "$W/$r.2.cpio.gz" -r "$TOP/appliances/$r" 2>/dev/null
	check "appliance-1.2 $r: built twice, the same bytes" cmp -s "$W/$r.cpio.gz" "$W/$r.2.cpio.gz"
	o=$(cat "$W/$r.size")
	check "appliance-1.3 $r: one size line against the root file system" grep -qE "$sizere" <<<"$o"
	echo "# $o"
done
mkdir "$W/def"
o=$(cd "$W/def" && khappliance -q -r "$TOP/appliances/shell" 2>&1)
check "appliance-1.4 without -o: NAME.cpio.gz in the current directory" cmp -s "$W/def/shell.cpio.gz" "$W/shell.cpio.gz"
same "appliance-1.5 ... and -q prints nothing" "$o" ""
SOURCE_DATE_EPOCH=1700000000 khappliance -q -o "$W/d1.cpio.gz" -r "$TOP/appliances/shell"
SOURCE_DATE_EPOCH=1700000000 khappliance -q -o "$W/d2.cpio.gz" -r "$TOP/appliances/shell"
check "appliance-1.6 SOURCE_DATE_EPOCH: the same date, the same bytes" cmp -s "$W/d1.cpio.gz" "$W/d2.cpio.gz"
check "appliance-1.7 ... another date, other bytes" sh -c "! cmp -s '$W/d1.cpio.gz' '$W/shell.cpio.gz'"
same "appliance-1.8 ... and the entries carry it" \
	"$(zcat "$W/d1.cpio.gz" | TZ=UTC cpio -tv --quiet 2>/dev/null | awk '{print $6, $7, $8}' | sort -u)" "Nov 14 2023"
khappliance -q --uimage -o "$W/web.uimg" -r "$TOP/appliances/web"
khappliance -q --uimage -o "$W/web.2.uimg" -r "$TOP/appliances/web"
check "appliance-1.9 --uimage: reproducible too" cmp -s "$W/web.uimg" "$W/web.2.uimg"
o=$(mkimage -l "$W/web.uimg")
check "appliance-1.10 --uimage: mkimage reads a gzip'd ramdisk image" \
	grep -q 'Image Type: .*Linux RAMDisk Image (gzip compressed)' <<<"$o"
check "appliance-1.11 ... named after the recipe" grep -q '^Image Name: *web$' <<<"$o"
check "appliance-1.12 ... whose data is the .cpio.gz" \
	cmp -s <(tail -c +65 "$W/web.uimg") "$W/web.cpio.gz"
o=$(khappliance -o - -r "$TOP/appliances/shell" 2>/dev/null | cmp - "$W/shell.cpio.gz" && echo same)
same "appliance-1.13 -o -: the archive on standard output" "$o" "same"

# appliance-2: what is inside, read by cpio, and run from the unpacked tree.
lst() { zcat "$1" | cpio -t --quiet 2>/dev/null; }
n=$(lst "$W/web.cpio.gz" | wc -l)
same "appliance-2.1 cpio -t lists as many entries as the size line says" \
	"$n" "$(sed -E 's/.*, ([0-9]+) files,.*/\1/' "$W/web.size")"
same "appliance-2.2 entries are sorted (the archive is reproducible by order)" \
	"$(lst "$W/web.cpio.gz" | LC_ALL=C sort | md5sum)" "$(lst "$W/web.cpio.gz" | md5sum)"
for f in init etc/kh/service usr/sbin/nginx etc/nginx/nginx.conf etc/nginx/mime.types \
	var/log/nginx var/lib/nginx var/www/html run tmp etc/passwd etc/group \
	lib64 usr/lib64/ld-linux-x86-64.so.2 usr/lib/x86_64-linux-gnu/libssl.so.3 usr/bin/busybox usr/bin/sh; do
	check "appliance-2.3 web has $f" grep -qx "$f" <<<"$(lst "$W/web.cpio.gz")"
done
same "appliance-2.4 every entry is owned by root, dated 0" \
	"$(zcat "$W/web.cpio.gz" | cpio -tv --quiet 2>/dev/null | awk '{print $3, $4, $8}' | sort -u)" "root root 1970"
X=$W/web.tree
mkdir "$X"
(cd "$X" && zcat "$W/web.cpio.gz" | cpio -idm --quiet 2>/dev/null)
check "appliance-2.5 cpio -i unpacks it" test -x "$X/usr/sbin/nginx"
check "appliance-2.6 www-data is in the appliance's /etc/passwd" grep -q '^www-data:x:33:33:' "$X/etc/passwd"
check "appliance-2.7 ... and its group" grep -q '^www-data:x:33:' "$X/etc/group"
for f in $(cd "$X" && find . -type f | sort); do
	readelf -h "$X/$f" >/dev/null 2>&1 || continue
	for lib in $(readelf -d "$X/$f" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
		[ -e "$X/usr/lib/x86_64-linux-gnu/$lib" ] || echo "${f#./} needs $lib"
	done
done >"$W/missing"
same "appliance-2.8 every DT_NEEDED of every ELF file is in the appliance" "$(cat "$W/missing")" ""
o=$(chroot "$X" /usr/sbin/nginx -t 2>&1)
check "appliance-2.9 nginx, chrooted into the unpacked appliance, accepts its configuration" \
	grep -q 'test is successful' <<<"$o"
same "appliance-2.10 the shell of /init runs there" "$(chroot "$X" /bin/sh -c 'echo $((6 * 7))')" "42"
S=$W/shell.tree
mkdir "$S"
(cd "$S" && zcat "$W/shell.cpio.gz" | cpio -idm --quiet 2>/dev/null)
same "appliance-2.11 shell: busybox, its applets, no library" \
	"$(chroot "$S" /bin/ls /usr/lib 2>&1; chroot "$S" /bin/sh -c 'wget --help 2>&1 | head -n1 | cut -c1-7')" \
	"ls: /usr/lib: No such file or directory
BusyBox"

# appliance-3: bad input: one line, status 2 (usage) or 1, no file left.
# fails DESC STATUS PATTERN CMD...
mkdir -p "$W/out"
fails() {
	local d=$1 want=$2 pat=$3 out err rc
	shift 3
	rm -rf "$W/out"/* "$W/out"/.[!.]*
	out=$("$@" 2>"$W/err")
	rc=$?
	err=$(cat "$W/err")
	if [ "$rc" -ne "$want" ]; then
		nok "$d" "status $rc (want $want); stderr: $err"
	elif [ "$(printf '%s\n' "$err" | wc -l)" -ne 1 ] || ! grep -qE -- "$pat" <<<"$err"; then
		nok "$d" "stderr: $err (want one line matching $pat)"
	elif [ -n "$out" ]; then
		nok "$d" "stdout: $out"
	elif [ -n "$(ls -A "$W/out")" ]; then
		nok "$d" "left behind: $(ls -A "$W/out")"
	else
		ok "$d"
	fi
}
O=$W/out/x.cpio.gz
fails "appliance-3.1 a program that is not there" 1 \
	"^khappliance: nosuchprog: no such program in the root's PATH" khappliance -o "$O" busybox nosuchprog
fails "appliance-3.2 an unknown option" 2 "^khappliance: unknown option '--frob'" khappliance -o "$O" --frob
fails "appliance-3.3 nothing to build" 2 "^khappliance: nothing to put in the appliance" khappliance -o "$O"
mkdir "$W/badrecipe"
printf 'busybox\n-f\n' >"$W/badrecipe/recipe"
fails "appliance-3.4 a bad recipe line, named" 2 "^khappliance: $W/badrecipe/recipe:2: -f needs a value$" \
	khappliance -o "$O" -r "$W/badrecipe"
printf 'busybox\n-f no-such-file\n' >"$W/badrecipe/recipe"
fails "appliance-3.5 a recipe file that is not there, named with its line" 1 \
	"^khappliance: $W/badrecipe/recipe:2: $W/badrecipe/no-such-file: No such file or directory$" \
	khappliance -o "$O" -r "$W/badrecipe"
fails "appliance-3.6 a recipe that is not there" 1 "^khappliance: recipe $W/nothere: No such file or directory$" \
	khappliance -o "$O" -r "$W/nothere"
fails "appliance-3.7 a -f that is not in the root" 1 "^khappliance: /etc/no-such-file: No such file or directory$" \
	khappliance -o "$O" -f /etc/no-such-file busybox
fails "appliance-3.8 an output directory that is not there" 1 "^khappliance: $W/out/no/x.cpio.gz: No such file or directory$" \
	khappliance -o "$W/out/no/x.cpio.gz" busybox
fails "appliance-3.9 a program given as a relative path" 1 "a program is a name or an absolute path" \
	khappliance -o "$O" ./busybox
printf 'secret\n' >"$W/secret"
chmod 600 "$W/secret"
chown nobody "$W/out"
fails "appliance-3.10 an unreadable file (as nobody)" 1 "^khappliance: $W/secret: Permission denied$" \
	setpriv --reuid=nobody --regid=nogroup --clear-groups khappliance -o "$O" -f "$W/secret=/secret" busybox
echo 'plain text, not ELF' >"$W/plain"
khappliance -q -o "$W/plain.cpio.gz" -f "$W/plain=/etc/plain" /etc/hostname busybox
same "appliance-3.11 a non-ELF file (and a non-ELF program) is copied as it is" \
	"$(lst "$W/plain.cpio.gz" | grep -xE 'etc/(plain|hostname)' | tr '\n' ' ')" "etc/hostname etc/plain "

# appliance-4: the shell appliance boots on a node with -x; a command runs
# on its console.  One facility per host holds the external uplink: wait a
# while for another test's to go, else fetch pages from a node instead.
uplink_busy() { ip -br addr | grep -q ' 10\.0\.31\.254/'; }
for _ in $(seq 30); do uplink_busy || break; sleep 1; done
HOSTFETCH=1
uplink_busy && HOSTFETCH=0
start_khd --nodes 4 --load-timeout 3000
FAC=$(khctl info | head -n1 | awk '{print $4}')
export KH_CRED=pw KH_USER=alice
unset KH_CHANCRED KH_SSH
norm() { sed -E 's/\r//g; s/^(\[[0-9]+\] )((=> )|(\/ # )|(~ # )|(\x1b\[6n))+/\1/'; }
con() { # con CHANNEL SECS UNTIL COUNT: the channel, prefixed, until UNTIL COUNT times
	khcon -c pw alice --prefix --timeout "$2" --until "$3" --count "$4" "$1" | norm
}
SB=$(khget -x -c pw alice 1)
SCON=$(head -n1 <<<"$SB" | cut -d@ -f1)
check "appliance-4.1 khdo loadramdisk shell.cpio.gz" khdo loadramdisk "$W/shell.cpio.gz" <<<"$SB"
o=$(khdo -t 30 --prefix --until 'appliance up on' write 'run kboot' <<<"$SB" | norm)
check "appliance-4.2 run kboot: /init says the appliance is up on the node" \
	grep -q "appliance up on kh$FAC-n0" <<<"$o"
o=$(echo 'echo "sum=$((6*7)) on $(hostname) pid1=$(cat /proc/1/comm)"' | con "$SCON" 10 "sum=42" 1)
check "appliance-4.3 a command through the console runs in the node's shell" \
	grep -q "^\[0\] sum=42 on kh$FAC-n0 pid1=sh" <<<"$o"

# appliance-5: the web appliance on 2 nodes, both forms; every node's page
# names that node.
WB=$(khget -x -c pw alice 2)
WCON=$(head -n1 <<<"$WB" | cut -d@ -f1)
ips=$(awk '/^nodeinfo:/ {print $2 "=" $4}' <<<"$WB")
# pages: every node's page, fetched from the host (khdo peripcmd) or, when
# another facility holds the uplink, from the shell node in the same domain.
pages() {
	if [ "$HOSTFETCH" = 1 ]; then
		khdo peripcmd 'echo == %ip%; timeout 10 wget -qO- http://%ip%/' <<<"$WB"
	else
		for ri in $ips; do
			echo "== ${ri#*=}"
			echo "timeout 10 wget -qO- http://${ri#*=}/; echo fetched-\$((40+2))" |
				con "$SCON" 15 "fetched-42" 1 | sed 's/^\[0\] //' | grep -v fetched-42
		done
	fi
}
# named: every node's section names its hostname and address
named() {
	local ri r ip bad=""
	for ri in $ips; do
		r=${ri%%=*}
		ip=${ri#*=}
		awk -v ip="$ip" '$0 == "== " ip {on=1; next} /^== / {on=0} on' <<<"$1" >"$W/page"
		grep -q "<h1>kh$FAC-n$r</h1>" "$W/page" && grep -q "<li>eth0 $ip</li>" "$W/page" || bad="$bad $r"
	done
	[ -z "$bad" ] || { echo "nodes without their page:$bad"; return 1; }
}
web_round() { # web_round FILE FORM
	o=$(khdo loadramdisk "$1" <<<"$WB" 2>&1)
	same "appliance-5.1 $2: khdo loadramdisk into 2 nodes" "$? $o" "0 "
	o=$(khdo -t 60 --prefix --until 'web: nginx serving' write 'run kboot' <<<"$WB" | norm)
	check "appliance-5.2 $2: run kboot; the service starts nginx on both" \
		test "$(grep -c 'web: nginx serving http://10\.0\.16\.[0-9]*/ on kh' <<<"$o")" -eq 2
	p=$(pages)
	if o=$(named "$p"); then
		ok "appliance-5.3 $2: each node's page names that node$([ "$HOSTFETCH" = 1 ] && echo ' (khdo peripcmd from the host)')"
	else
		nok "appliance-5.3 $2: each node's page names that node" "$o
$p"
	fi
	if [ "$HOSTFETCH" = 0 ]; then
		ok "appliance-5.4 $2: pages fetched from the host # SKIP another facility holds the external uplink; fetched from a node"
	fi
	o=$(echo 'ps -o user,comm | grep -c "^www-data *nginx"; echo workers-$((40+2))' | con "$WCON" 10 "workers-42" 2)
	same "appliance-5.5 $2: nginx workers run as www-data on both nodes" "$(grep -cE '^\[[0-9]+\] 1$' <<<"$o")" "2"
	o=$(echo 'grep ^PPid /proc/$(cat /run/nginx.pid)/status; grep " / " /proc/mounts | cut -d" " -f3; echo ppid-$((40+2))' |
		con "$WCON" 10 "ppid-42" 2)
	same "appliance-5.6 $2: nginx's master is PID 1's child on both" "$(grep -cE '^\[[0-9]+\] PPid:\s+1$' <<<"$o")" "2"
	same "appliance-5.7 $2: ... on a root that is an overlay" "$(grep -cE '^\[[0-9]+\] overlay$' <<<"$o")" "2"
}
web_round "$W/web.cpio.gz" ".cpio.gz"
khctl reset -c pw alice "$WCON"
web_round "$W/web.uimg" "--uimage"

stop_khd
done_testing

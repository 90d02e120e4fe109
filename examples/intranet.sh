#!/bin/bash
# intranet.sh: the paper's Figure 3, a private intranet made of nodes.  A
# gateway in the external, the public and a private domain; a file server
# joining the memory of disk nodes, on a disk domain, into one store;
# workers on the private domain running a job over the file server's share.
#
# ct nodes share the host's kernel, which has no AoE, NBD or NFS, and they
# cannot mount, so every piece is user space from Debian (docs/examples.md):
#   disk nodes   rclone's SFTP server over a directory of their tmpfs root,
#                that is their memory (the original: AoE targets over RAM);
#   file server  rclone: a union of the disks, files cut in 16 KiB chunks
#                spread over them (the original: RAID over AoE), exported by
#                SFTP (the original: NFS);
#   workers      OpenSSH's sftp copies the job and its input in and the
#                results out (the original mounted the NFS export);
#   gateway      nftables: NAT out through the external domain, published
#                ports in, nothing else from the public or external domain.
#
#   examples/intranet.sh                        on a facility of its own (root)
#   KH_SOCKET=DIR/khd.sock examples/intranet.sh on a running facility
#
# NDISKS (2) and NWORKERS (3) size it; KH_SHARE_PASS sets the share's
# password (default: a random one).  See examples/lib.sh for KH_USER,
# KH_CRED and KH_KEEP.
. "$(dirname "$0")/lib.sh"
NDISKS=${NDISKS:-2}
NWORKERS=${NWORKERS:-3}

need rclone sftp
facility 16

say "building the appliances (khappliance -r appliances/NAME)"
for a in gateway fileserver disk worker; do appliance $a; done
built gateway fileserver disk worker
# khgetdisk: as in the original, the file server allocates its disk nodes
# itself, with khget through the facility's service interface (OpenSSH,
# docs/ebb.md); its appliance gets khget, ssh and a key of the principal.
KHGETDISK=""
if service; then
	ssh-keygen -q -t ed25519 -N '' -C "$KH_USER@intranet" -f "$work/key"
	khappliance -q -r "$top/appliances/fileserver" -o "$work/fileserver.cpio.gz" ssh \
		-f "$(command -v khget)=/usr/bin/khget" -f "$work/key=/etc/kh/key" >/dev/null ||
		die "cannot add khget to the file server's appliance"
	KHGETDISK=1
fi

say "acquiring nodes"
acquire gw -x -i -p 1 "$KH_USER" 1 # external, public, a new private domain
P=$(netid "$gw" 1)
# the principal exists now (its first khget made it): register the key
if [ -n "$KHGETDISK" ]; then
	khctl addkey "$KH_USER" "$work/key.pub" || die "cannot register the file server's key"
fi
if [ -n "$KHGETDISK" ]; then
	# that private domain, a new disk domain, and the public one to reach the facility
	acquire fs -n "$P" -p 1 -i "$KH_USER" 1
	DD=$(netid "$fs" 2)
	say "khgetdisk: the file server boots, then allocates $NDISKS disk nodes itself"
	boot "$fs" "$work/fileserver.cpio.gz" fileserver "fileserver: waiting"
	o=$(on "$fs" "KH_SSH_KEY=/etc/kh/key khget -c '$KH_CRED' -n $DD $KH_USER $NDISKS")
	disks=$(sed -E 's/^  \[[0-9]+\] //' <<<"$o")
	grep -q '^nodes: ' <<<"$disks" || die "the file server could not allocate its disks: $o"
	held+=("$KH_USER $(chan "$disks")")
	echo "  [$(ranks "$fs")] khget -n $DD $KH_USER $NDISKS: $(chan "$disks"), nodes $(ranks "$disks") (through ${KH_SOCKET:+the service interface})"
else
	acquire fs -n "$P" -p 1 "$KH_USER" 1 # that private domain, a new disk domain
	DD=$(netid "$fs" 2)
	acquire disks -n "$DD" "$KH_USER" "$NDISKS"
fi
acquire workers -n "$P" "$KH_USER" "$NWORKERS"
GWX=$(addr 1 "$(ranks "$gw")")
GWI=$(addr 2 "$(ranks "$gw")")
GWP=$(addr "$P" "$(ranks "$gw")")
FSP=$(addr "$P" "$(ranks "$fs")")
DISKS=$(addrs "$DD" "$disks")
WORKERS=$(addrs "$P" "$workers")
printf '  %-11s %-6s %-8s %s\n' role nodes channel "addresses (domain)" \
	gateway "$(ranks "$gw")" "$(chan "$gw")" "$GWX (external), $GWI (public), $GWP (private $P)" \
	fileserver "$(ranks "$fs")" "$(chan "$fs")" "$FSP (private $P), $(addr "$DD" "$(ranks "$fs")") (disk domain $DD)" \
	disks "$(ranks "$disks")" "$(chan "$disks")" "$DISKS (disk domain $DD)" \
	workers "$(ranks "$workers")" "$(chan "$workers")" "$WORKERS (private $P)"

say "booting: gateway, disks, file server (unless it booted for khgetdisk), workers"
o=$(boot "$gw" "$work/gateway.cpio.gz" gateway "gateway: from")
echo "$o"
grep -q "gateway: routing" <<<"$o" || die "the gateway does not route"
o=$(boot "$disks" "$work/disk.cpio.gz" disk "disk: s")
echo "$o"
[ "$(grep -c 'disk: serving' <<<"$o")" = "$NDISKS" ] || die "not every disk node serves its memory"
[ -n "$KHGETDISK" ] || boot "$fs" "$work/fileserver.cpio.gz" fileserver "fileserver: waiting"
boot "$workers" "$work/worker.cpio.gz" worker "worker: waiting"

say "the private nodes route through the gateway ($GWP)"
on "$fs" "ip route add default via $GWP && echo default route via $GWP"
on "$workers" "ip route add default via $GWP && echo default route via $GWP"

say "the file server joins the disks' memory into one store and exports it"
pass=${KH_SHARE_PASS:-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')}
o=$(on "$fs" "kh-fileserver $pass $DISKS")
echo "$o"
grep -q "fileserver: $NDISKS disk nodes" <<<"$o" || die "the file server could not join its disks"
on "$gw" "kh-gateway forward 2222 $FSP:22"

# The principal reaches the share from outside through the gateway's
# published port; ssh reads the password from an askpass program.
printf '#!/bin/sh\necho %s\n' "$pass" >"$work/askpass"
chmod 700 "$work/askpass"
share() { # share HOST PORT: sftp batch commands from standard input
	SSH_ASKPASS=$work/askpass SSH_ASKPASS_REQUIRE=force sftp -o BatchMode=no \
		-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \
		-o NumberOfPasswordPrompts=1 -P "$2" -b - "kh@$1"
}

say "the principal puts a job and its input on the share (sftp -P 2222 kh@$GWX)"
mkdir -p "$work/data"
for f in /usr/share/common-licenses/*; do [ -L "$f" ] || cp "$f" "$work/data/"; done
cat >"$work/job.sh" <<'EOF'
# job.sh K N IN OUT: count the words of every N-th file of IN, from the K-th.
k=$1 n=$2 in=$3 out=$4 i=0 mine=""
for f in $(ls "$in" | sort); do
	[ $((i % n)) -eq "$k" ] && mine="$mine $f"
	i=$((i + 1))
done
host=$(hostname)
[ -n "$mine" ] || exit 0
(cd "$in" && cat $mine) | tr -cs 'A-Za-z' '\n' | tr 'A-Z' 'a-z' | grep . | sort | uniq -c |
	sort -k1,1nr -k2 >"$out/words-$host.txt"
echo "$host counted$mine" >"$out/done-$host.txt"
EOF
{
	echo "put $work/job.sh job.sh"
	echo "-mkdir data"
	echo "put $work/data/* data/"
} | share "$GWX" 2222 >/dev/null || die "cannot reach the share through the gateway"
echo "  job.sh, and $(ls "$work/data" | wc -l) files ($(du -sk "$work/data" | cut -f1) KiB) in data/"

say "$NWORKERS workers run the job (kh-worker $FSP PASSWORD $WORKERS)"
o=$(on "$workers" "kh-worker $FSP $pass $WORKERS")
echo "$o"
[ "$(grep -c 'job exited 0' <<<"$o")" = "$NWORKERS" ] || die "not every worker finished its job"

say "the results, fetched through the gateway"
mkdir -p "$work/results"
echo "get results/* $work/results/" | share "$GWX" 2222 >/dev/null || die "cannot fetch the results"
sed 's/^/  /' "$work"/results/done-*.txt
echo "  the most frequent words over all the workers' parts:"
cat "$work"/results/words-*.txt | awk '{n[$2] += $1} END {for (w in n) print n[w], w}' |
	sort -k1,1nr -k2 | sed -n '1,5s/^/    /p'

say "where the bytes are: in the disk nodes' memory (kh-store on each, results/ only)"
on "$disks" "kh-store | grep -v '^  [dj][ao][tb]'"

say "private nodes reach the host (10.0.31.254) through the gateway's NAT"
on "$workers" 'ping -c1 -W2 10.0.31.254 >/dev/null && echo reaches the host || echo cannot reach the host'
on "$gw" "nft list chain ip khgw post | grep -o 'counter.*masquerade'"

say "another principal's node on the public domain sees only the published port"
visitor=$KH_USER-visitor
acquire vis -i "$visitor" 1
KH_USER=$visitor boot "$vis" "$work/worker.cpio.gz" worker "worker: waiting" >/dev/null
KH_USER=$visitor on "$vis" "ping -c1 -W1 $FSP >/dev/null 2>&1 && echo reaches the file server || echo cannot reach the file server at $FSP"
KH_USER=$visitor on "$vis" "ip route add $(addr "$P" -1)/20 via $GWI; ping -c1 -W1 $FSP >/dev/null 2>&1 && echo routed through the gateway: reaches it || echo even routed through the gateway: cannot"
KH_USER=$visitor on "$vis" "echo | timeout 3 nc $GWI 2222 | head -c 7 | grep -q SSH && echo port 2222 of the gateway: the file server answers"
release "$vis" "$visitor"

say "done"

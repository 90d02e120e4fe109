#!/bin/bash
# cache.sh: the HPDC'10 paper's application: memcached servers on nodes of
# a private domain as the front end of a content-addressed store (what is
# stored is named by the hash of its bytes), and clients on other nodes of
# the domain that get with one-sided reads through the domain's RDMA
# device, with memcached's interface kept.
#
#   1. three cache nodes (appliances/memcached: khmcd, which exposes its
#      memory through the device) in a new private domain;
#   2. two client nodes in that domain, on a channel of their own;
#   3. a client stores a file in the store (kh-cas put: 256 KiB chunks
#      under their SHA-256, a manifest naming them, keys spread over the
#      servers by ketama), the other gets it back, every chunk checked
#      against its name;
#   4. each client's gets, one-sided and over TCP, for a few seconds;
#   5. what alice is billed for the one-sided reads.
#
#   examples/cache.sh                         on a facility of its own (root)
#   KH_SOCKET=DIR/khd.sock examples/cache.sh  on a running facility
#
# See examples/lib.sh for KH_USER, KH_CRED and KH_KEEP.
. "$(dirname "$0")/lib.sh"
NSERVERS=${NSERVERS:-3}
MB=${MB:-8} # the size of the file stored

PRIVATE_ONLY=1 # only private domains: another facility's uplink does not matter
facility $((NSERVERS + 4))
say "khappliance -r appliances/memcached"
appliance memcached
built memcached

say "$NSERVERS cache nodes in a new private domain: khget -p 1 $KH_USER $NSERVERS"
acquire servers -p 1 "$KH_USER" "$NSERVERS"
net=$(netid "$servers" 1)
list=$(for a in $(addrs "$net" "$servers"); do printf '%s:11211,' "$a"; done)
list=${list%,}
boot "$servers" "$work/memcached.cpio.gz" memcached 'memcached: khmcd serving'
echo "  the servers: $list"

say "2 client nodes in the same domain: khget -n $net $KH_USER 2"
acquire clients -n "$net" "$KH_USER" 2
boot "$clients" "$work/memcached.cpio.gz" memcached 'memcached: khmcd serving' >/dev/null
read -r c1 c2 <<<"$(ranks "$clients")"

say "node $c1 stores a $MB MB file; node $c2 gets it back"
# only RANK CMD: CMD on that node of the clients' channel alone
only() { on "$clients" "case \$(hostname) in *-n$1) $2 ;; esac"; }
# ms since T0 (the node's clock in centiseconds: busybox date has no %N)
ms='awk -v a=$t0 -v b=$(cut -d" " -f1 /proc/uptime) "BEGIN {printf \"%d\", (b - a) * 1000}"'
put=$(only "$c1" "export KHMC_SERVERS=$list; dd if=/dev/urandom of=/tmp/file bs=1048576 count=$MB 2>/dev/null;
	echo sha256 \$(sha256sum /tmp/file | cut -d' ' -f1); t0=\$(cut -d' ' -f1 /proc/uptime);
	name=\$(kh-cas put /tmp/file); echo put_ms \$($ms); echo name \$name")
printf '%s\n' "$put"
name=$(awk '$2 == "name" {print $3}' <<<"$put")
sum=$(awk '$2 == "sha256" {print $3}' <<<"$put")
[ -n "$name" ] || die "kh-cas put did not name the file"
got=$(only "$c2" "export KHMC_SERVERS=$list; t0=\$(cut -d' ' -f1 /proc/uptime); kh-cas get $name >/tmp/back;
	echo status \$?; echo get_ms \$($ms); echo sha256 \$(sha256sum /tmp/back | cut -d' ' -f1)")
printf '%s\n' "$got"
[ "$(awk '$2 == "sha256" {print $3}' <<<"$got")" = "$sum" ] || die "the file came back different"
echo "  content verified: node $c2 got back what node $c1 stored ($MB MB, every chunk checked against its name)"
echo "  what each server holds (items, bytes):"
on "$servers" "printf 'stats\\r\\n' | nc 127.0.0.1 11211 | awk '\$2 ~ /^(curr_items|bytes)\$/ {v[\$2] = \$3} END {print \"curr_items\", v[\"curr_items\"], \"bytes\", v[\"bytes\"]}'"

say "gets from node $c1 for 2 s each: one-sided, then TCP (1 KB values, one client)"
only "$c1" "for t in rdma tcp; do
	khmc -s $list bench --transport \$t --keys 1000 --value-size 1024 --get-ratio 1 --concurrency 1 --duration 2 | grep '^get' | cut -d' ' -f1-4 | sed \"s/^/\$t /\"; done"

say "khbill usage: the one-sided reads are billed per domain"
sleep 1.5 # the meter's next second
bill=$(khbill usage "$KH_USER") || die "khbill usage failed"
grep -E '^rdma-(rd|ops)' <<<"$bill" | sed 's/^/  /'
echo
echo "cache.sh: done"

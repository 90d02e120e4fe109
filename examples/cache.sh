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
put=$(only "$c1" "export KHMC_SERVERS=$list; dd if=/dev/urandom of=/tmp/file bs=1048576 count=$MB 2>/dev/null;
	echo sha256 \$(sha256sum /tmp/file | cut -d' ' -f1); t0=\$(date +%s%N);
	name=\$(kh-cas put /tmp/file); t1=\$(date +%s%N); echo name \$name;
	echo put_ms \$(( (t1 - t0) / 1000000 ))")
sed 's/^/  /' <<<"$put"
name=$(awk '$2 == "name" {print $3}' <<<"$put")
sum=$(awk '$2 == "sha256" {print $3}' <<<"$put")
[ -n "$name" ] || die "kh-cas put did not name the file"
got=$(only "$c2" "export KHMC_SERVERS=$list; t0=\$(date +%s%N); kh-cas get $name >/tmp/back;
	echo status \$?; t1=\$(date +%s%N); echo sha256 \$(sha256sum /tmp/back | cut -d' ' -f1);
	echo get_ms \$(( (t1 - t0) / 1000000 ))")
sed 's/^/  /' <<<"$got"
[ "$(awk '$2 == "sha256" {print $3}' <<<"$got")" = "$sum" ] || die "the file came back different"
echo "  content verified: node $c2 got back what node $c1 stored ($MB MB, every chunk checked against its name)"
on "$servers" "printf 'stats\\r\\n' | nc 127.0.0.1 11211 | grep -E 'curr_items|bytes ' | tr -d '\\r'" |
	sed 's/^/  /' | paste - -

say "gets from node $c1 for 2 s each: one-sided, then TCP (1 KB values, one client)"
only "$c1" "for t in rdma tcp; do
	khmc -s $list bench --transport \$t --keys 1000 --value-size 1024 --get-ratio 1 --concurrency 1 --duration 2 | grep '^get' | cut -d' ' -f1-4 | sed \"s/^/\$t /\"; done" |
	sed 's/^/  /'

say "khbill usage: the one-sided reads are billed per domain"
sleep 1.5 # the meter's next second
khbill usage | grep -E '^rdma-(rd|ops):' | sed 's/^/  /' || true
echo
echo "cache.sh: done"

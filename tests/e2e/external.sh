# external-*: the external domain (issue 4, item 3).  The host reaches -x
# nodes at their external address; the nodes reach the host and, through
# NAT, a machine beyond it (a network namespace made here, "outside");
# nodes without -x are reachable from neither; khd stopping leaves no
# uplink, NAT table or forwarding switch behind.
. "$(dirname "$0")/lib.sh"
LIB=$(cd "$(dirname "$0")/../lib" && pwd)

OUT=khx$$
OUTNS=khout$$
fwd_before=$(cat /proc/sys/net/ipv4/ip_forward)
outside_down() {
	ip netns del "$OUTNS" 2>/dev/null
	ip link del "$OUT" 2>/dev/null
	[ -n "${SOCAT_PID:-}" ] && kill "$SOCAT_PID" 2>/dev/null
	return 0
}
trap 'outside_down; cleanup' EXIT

# One facility per host has the external uplink (docs/fabric.md).
if ip -br addr | grep -q ' 10\.0\.31\.254/'; then
	ok "external # SKIP another facility on this host holds the external uplink (10.0.31.254)"
	done_testing
	exit 0
fi
start_khd --nodes 6 --load-timeout 3000
FAC=$(khctl info | head -n1 | awk '{print $4}')
UP=kh$FAC
APP=$D/app.cpio.gz
"$LIB/mkbusybox.sh" "$APP"

norm() { sed -E 's/\r//g; s/^(\[[0-9]+\] )((=> )|(\/ # )|(\x1b\[6n))+/\1/'; }
con() { # con CHANNEL SECS UNTIL COUNT: the channel, prefixed, until UNTIL COUNT times
	khcon -c pw alice --prefix --timeout "$2" --until "$3" --count "$4" "$1" | norm
}
boot() { # boot CHANNEL COUNT
	{ printf 'mrw $ramfsaddr %d\n' "$(stat -c %s "$APP")"; cat "$APP"; echo 'run kboot'; } |
		con "$1" 20 "appliance up on" "$2" >/dev/null
}

blk=$(khget -x -c pw alice 2)
XCON=$(head -n1 <<<"$blk" | cut -d@ -f1)
ip0=$(awk '/^nodeinfo: 0 / {print $4}' <<<"$blk")
ip1=$(awk '/^nodeinfo: 1 / {print $4}' <<<"$blk")
same "external-1.1 nodeinfo gives the external address of -x nodes" "$ip0 $ip1" "10.0.16.1 10.0.16.2"
blk2=$(khget -c pw alice 1)
PCON=$(head -n1 <<<"$blk2" | cut -d@ -f1)
pip=$(awk '/^nodeinfo: / {print $4}' <<<"$blk2")
same "external-1.2 ... and the private address of others" "$pip" "10.0.48.3"

check "external-1.3 the host has the uplink with the gateway address" \
	sh -c "ip -br addr show dev $UP | grep -q '10.0.31.254/20'"
check "external-1.4 the host namespace holds no bridge or node interface of the facility" \
	sh -c "! ip -br link | grep -Eq '^(d[0-9]+|n[0-9]+e[0-9]+)[ @]'"
check "external-1.5 a NAT table for the external subnet" \
	sh -c "nft list table ip $UP | grep -q 'ip saddr 10.0.16.0/20 oifname != \"$UP\" masquerade'"

boot "$XCON" 2
boot "$PCON" 1

# external-2: the host reaches -x nodes (ICMP and TCP), not private ones.
check "external-2.1 the host pings an external node" ping -c1 -W2 "$ip0"
check "external-2.2 ... and the other" ping -c1 -W2 "$ip1"
check "external-2.3 the host cannot reach a node outside the external domain" \
	sh -c "! ping -c1 -W1 $pip"
marker=page-$((6 * 7))
o=$(printf '%s\n' "mkdir -p /www; echo \"$marker from \$(hostname)\" >/www/index.html; httpd -p 80 -h /www; echo httpd-\$((40+2)) \$?" |
	con "$XCON" 10 "httpd-42" 2)
check "external-2.4 the nodes start a web server" grep -q '^\[1\] httpd-42 0' <<<"$o"
page=$(wget -qO- -T 5 "http://$ip1/")
same "external-2.5 the host fetches a node's page at its external address" "$page" "$marker from kh$FAC-n1"

# external-3: nodes reach the host, and a machine beyond it through NAT.
ip netns add "$OUTNS"
ip link add "$OUT" type veth peer name eth0 netns "$OUTNS"
ip addr add 192.168.250.1/30 dev "$OUT"
ip link set "$OUT" up
ip -n "$OUTNS" addr add 192.168.250.2/30 dev eth0
ip -n "$OUTNS" link set eth0 up
ip -n "$OUTNS" link set lo up
# The server reads the whole request before it answers: closing a socket
# with unread bytes sends a reset, which can overtake the answer.
cat >"$D/peer.sh" <<'EOF'
cr=$(printf '\r')
while read -r l; do [ "${l%$cr}" = "" ] && break; done
printf 'HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\npeer=%s\n' "$SOCAT_PEERADDR"
EOF
ip netns exec "$OUTNS" socat TCP-LISTEN:8081,fork,reuseaddr EXEC:"sh $D/peer.sh" &
SOCAT_PID=$!
for _ in $(seq 50); do ip netns exec "$OUTNS" sh -c 'ss -ltn | grep -q :8081' && break; sleep 0.1; done
o=$(printf '%s\n' 'ping -c1 -W2 10.0.31.254 >/dev/null; echo gw-$((40+2)) $?' | con "$XCON" 10 "gw-42" 2)
check "external-3.1 a node reaches the host at the gateway address" grep -q '^\[0\] gw-42 0' <<<"$o"
o=$(printf '%s\n' 'timeout 5 wget -qO- http://192.168.250.2:8081/; echo beyond-$((40+2)) $?' | con "$XCON" 15 "beyond-42" 2)
check "external-3.2 a node reaches a machine beyond the host" grep -q '^\[0\] beyond-42 0' <<<"$o"
check "external-3.3 ... which sees the host's address (NAT), not the node's" \
	grep -q '^\[0\] peer=192.168.250.1' <<<"$o"
o=$(printf '%s\n' 'ping -c1 -W1 10.0.31.254 >/dev/null; echo pgw-$((40+2)) $?; timeout 3 wget -qO- http://192.168.250.2:8081/ >/dev/null 2>&1; echo pbeyond-$((40+2)) $?' |
	con "$PCON" 10 "pbeyond-42" 1)
check "external-3.4 a node without -x reaches neither the host" grep -Eq '^\[2\] pgw-42 [1-9]' <<<"$o"
check "external-3.5 ... nor beyond it" grep -Eq '^\[2\] pbeyond-42 [1-9]' <<<"$o"

# external-4: a clean stop leaves nothing of the fabric on the host.
stop_khd
check "external-4.1 the uplink is gone after khd stops" sh -c "! ip link show $UP 2>/dev/null | grep -q ."
check "external-4.2 the NAT table is gone" sh -c "! nft list table ip $UP >/dev/null 2>&1"
same "external-4.3 ip_forward is as it was before khd" "$(cat /proc/sys/net/ipv4/ip_forward)" "$fwd_before"
done_testing

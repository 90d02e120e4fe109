# ebbkv-*: the elastic memcached-protocol store over libebb's EBBs (issue
# 16, items 4 and 6): it speaks the text protocol, grows under a
# memcaslap load (the NodeAllocator's local backend: nodes are processes
# on loopback, each with its own EBB runtime), moves keys to the new
# nodes, gives them back when the load falls, and no request fails.
. "$(dirname "$0")/lib.sh"

free_port() {
	local p
	for _ in $(seq 50); do
		p=$((20000 + RANDOM % 20000))
		ss -Hltn "sport = :$p" | grep -q . || ss -Hltn "sport = :$((p + 1))" | grep -q . ||
			{ echo "$p"; return; }
	done
}
S=$(mktemp -d /tmp/kh-e2e-XXXXXX)
T_DIRS+=("$S")
P=$(free_port)
M=$((P + 1))
ASAN_OPTIONS="${ASAN_OPTIONS:-}:log_path=$S/san" UBSAN_OPTIONS="${UBSAN_OPTIONS:-}:log_path=$S/san" \
	ebbkv -p "$P" -l 127.0.0.1 --msg "127.0.0.1:$M" --grow 2000 --shrink 300 --max-nodes 3 \
	2>"$S/kv.log" &
KV=$!
trap 'kill $KV 2>/dev/null; cleanup' EXIT
for _ in $(seq 100); do ss -Hltn "sport = :$P" | grep -q . && break; sleep 0.05; done
mc() { printf "$1" | socat -t 3 - "TCP:127.0.0.1:$P" | tr -d '\r'; }
stat() { mc 'stats\r\nquit\r\n' | awk -v s="$1" '$2 == s {print $3}'; }

same "ebbkv-1.1 set and get" "$(mc 'set k1 42 0 5\r\nhello\r\nget k1 nope\r\nquit\r\n')" \
	"STORED
VALUE k1 42 5
hello
END"
same "ebbkv-1.2 gets, add, replace, delete" \
	"$(mc 'gets k1\r\nadd k1 0 0 1\r\nx\r\nadd k2 0 0 1\r\ny\r\nreplace k3 0 0 1\r\nz\r\ndelete k2\r\ndelete k2\r\nquit\r\n')" \
	"VALUE k1 42 5 0
hello
END
NOT_STORED
STORED
NOT_STORED
DELETED
NOT_FOUND"
same "ebbkv-1.3 bad lines get an error and the connection goes on" \
	"$(mc 'bogus\r\nset k 0 0 notanumber\r\nget '"$(head -c 300 /dev/zero | tr '\0' k)"'\r\nset k 0 0 2\r\nabcd\r\nversion\r\nquit\r\n')" \
	"ERROR
CLIENT_ERROR bad command line format
CLIENT_ERROR bad command line format
CLIENT_ERROR bad data chunk
ERROR
VERSION 1.6.0-ebbkv"
for i in $(seq 1 200); do printf 'set pre%d 0 0 %d\r\nv%d\r\n' "$i" $((${#i} + 1)) "$i"; done |
	socat -t 3 - "TCP:127.0.0.1:$P" >/dev/null
same "ebbkv-1.4 one node to start with" "$(stat nodes)" "1"

o=$(timeout 120 memcaslap -s "127.0.0.1:$P" -t 8s -T 2 -c 16 -v 0.1 2>&1)
echo "$o" | sed -n '/cmd_get/,$p' | sed 's/^/# /' >&3
check "ebbkv-2.1 memcaslap ran" grep -q '^Run time' <<<"$o"
same "ebbkv-2.2 no get missed a key it set" "$(awk '/^get_misses/ {print $2}' <<<"$o")" "0"
same "ebbkv-2.3 no value failed verification" "$(awk '/^verify_failed/ {print $2}' <<<"$o")" "0"
check "ebbkv-2.4 it grew under the load" grep -q 'grow: node 1 at .* serves a share of the keys' "$S/kv.log"
same "ebbkv-2.5 no request failed" "$(stat failed)" "0"
for _ in $(seq 100); do [ "$(stat nodes)" = 1 ] && break; sleep 0.2; done
same "ebbkv-3.1 it shrinks back to one node when the load falls" "$(stat nodes)" "1"
check "ebbkv-3.2 ... giving nodes back" grep -q 'shrink: node .* given back' "$S/kv.log"
miss=0
for i in $(seq 1 200); do
	[ "$(mc "get pre$i\r\nquit\r\n" | sed -n 2p)" = "v$i" ] || miss=$((miss + 1))
done
same "ebbkv-3.3 every key set before it grew is still there" "$miss" "0"
same "ebbkv-3.4 no request failed" "$(stat failed)" "0"
check "ebbkv-3.5 no node process is left" bash -c "! pgrep -f '[e]bbkv --node .* --home 127.0.0.1:$M' >/dev/null"
kill $KV
wait $KV
same "ebbkv-4.1 SIGTERM stops it cleanly" "$?" "0"
check "ebbkv-4.2 without sanitizer reports" bash -c "! ls $S/san.* >/dev/null 2>&1"
done_testing

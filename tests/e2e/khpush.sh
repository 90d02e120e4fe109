# khpush-*: PUSH pipelines across nodes (issue 15): records spread over
# the nodes (|<), routed by key (|#|) and gathered (>|) give exactly what
# the same pipeline gives on one machine; bad pipelines are refused.
. "$(dirname "$0")/lib.sh"
LIB=$(cd "$(dirname "$0")/../lib" && pwd)

start_khd --nodes 10 --no-fabric --no-rdma
"$LIB/mkbusybox.sh" "$D/app.cpio.gz"
B=$(khget -c pw alice 8)
CON=$(head -n1 <<<"$B" | cut -d@ -f1)
khdo --socket "$KH_SOCKET" -c pw alice loadfile '$ramfsaddr' "$D/app.cpio.gz" <<<"$B" >/dev/null
khdo --socket "$KH_SOCKET" -c pw alice --until 'appliance up' write 'run kboot' <<<"$B" >/dev/null
for i in $(seq 3000); do echo "the quick brown fox $i jumps over the lazy dog, the end"; done >"$D/text"
cat /usr/share/common-licenses/GPL-3 >>"$D/text"
cat "$D/text" | tr -s ' ' '\n' | sort | uniq -c | sort -rn >"$D/local"
khpush -c pw alice "$CON" "cat $D/text |< tr -s ' ' '\n' |#| sort | uniq -c >| sort -rn" >"$D/push"
same "khpush-1.1 the word count over 8 nodes runs" "$?" "0"
check "khpush-1.2 ... and gives exactly the single-machine answer" cmp -s "$D/local" "$D/push"
# A text whose lines begin with blanks or are empty (the GPL as it is,
# after an empty and an indented line): tr -s squeezes across lines, so
# khpush never starts a node's share with such a line (docs/khfs.md).
T=$D/raw
{ echo; echo '   indented'; cat /usr/share/common-licenses/GPL-3; } >"$T"
tr -s ' ' '\n' <"$T" | sort | uniq -c | sort -rn >"$D/local2"
khpush -c pw alice "$CON" "cat $T |< tr -s ' ' '\n' |#| sort | uniq -c >| sort -rn" >"$D/push2"
check "khpush-1.6 a raw text (empty and indented lines): exactly the single-machine answer too" cmp -s "$D/local2" "$D/push2"
e1=$(grep -E '^ *[0-9]+ $' "$D/local2" | awk '{print $1}')
e2=$(grep -E '^ *[0-9]+ $' "$D/push2" | awk '{print $1}')
same "khpush-1.7 ... the empty word included (one machine: $e1)" "${e2:-none}" "${e1:-none}"
o=$(seq 1 20000 | khpush -c pw alice "$CON" " |< sed 's/^/x/' >| ")
same "khpush-1.3 stdin and stdout by default; no record lost, none cut" \
	"$(sort <<<"$o" | md5sum)" "$(seq 1 20000 | sed 's/^/x/' | sort | md5sum)"
o=$(khpush -c pw alice "$CON" "seq 1 800 |< cat >| sort -n | uniq | wc -l")
same "khpush-1.4 every record once" "$o" "800"
o=$(khpush -c pw alice "$CON" 'seq 1 64 |< echo $KH_RANK >| sort -u | wc -l')
same "khpush-1.5 |< spreads over every node" "$o" "8"
rejects "khpush-2.1 a pipeline without |<" "bad pipeline" khpush -c pw alice "$CON" "cat x | sort"
rejects "khpush-2.2 an empty node stage" "bad pipeline" khpush -c pw alice "$CON" "cat x |< >| sort"
rejects "khpush-2.3 a node not the principal's" "node 9 is not yours" khpush -c pw alice 9 "seq 3 |< cat"
done_testing

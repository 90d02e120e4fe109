#!/bin/bash
# Run the libFuzzer harnesses built by `make fuzz-build` (docs/fuzzing.md).
#
#   fuzz/run.sh seeds [PATTERN]       every seed of fuzz/corpus/NAME/ once,
#                                     as TAP (make check, tests/run.sh)
#   fuzz/run.sh run SECS [PATTERN]    fuzz each target for SECS seconds from
#                                     its seeds; one line of figures per
#                                     target; fails if any crashed
#
# New inputs found while fuzzing go to build/fuzz/corpus/NAME/ (not into
# the tree), crashing inputs to build/fuzz/crashes/, logs to
# build/fuzz/logs/.  fuzz/NAME.options holds extra libFuzzer flags for a
# target, fuzz/dict/NAME.dict its dictionary.
cd "$(dirname "$0")/.." || exit 2
B=build/fuzz
mode=${1:-}
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

targets() {
	local f t
	for f in fuzz/*.c; do
		t=$(basename "$f" .c)
		case "$t" in *"$1"*) echo "$t" ;; esac
	done
}

flags() {
	[ -f "fuzz/$1.options" ] && grep -v '^#' "fuzz/$1.options"
	[ -f "fuzz/dict/$1.dict" ] && echo "-dict=fuzz/dict/$1.dict"
}

case "$mode" in
seeds)
	n=0
	for t in $(targets "${2:-}"); do
		n=$((n + 1))
		seeds=(fuzz/corpus/"$t"/*)
		if [ ! -x "$B/$t" ]; then
			echo "not ok $n - fuzz/$t: $B/$t not built (make fuzz-build)"
			continue
		fi
		if [ ! -e "${seeds[0]}" ]; then
			echo "not ok $n - fuzz/$t: no seeds in fuzz/corpus/$t"
			continue
		fi
		log=$(mktemp)
		# files given one by one: each runs once, nothing is written
		if "$B/$t" $(flags "$t" | grep -v '^-dict') "${seeds[@]}" >"$log" 2>&1; then
			echo "ok $n - fuzz/$t: ${#seeds[@]} seeds"
		else
			echo "not ok $n - fuzz/$t: a seed fails"
			grep -E 'ERROR|SUMMARY|Running:|runtime error' "$log" | tail -n 20 | sed 's/^/# /'
		fi
		rm -f "$log"
	done
	echo "1..$n"
	;;
run)
	secs=${2:-60}
	pattern=${3:-}
	mkdir -p "$B/logs" "$B/crashes"
	printf '%-10s %6s %12s %9s %7s %8s\n' target secs executions exec/s corpus crashes
	bad=0
	for t in $(targets "$pattern"); do
		mkdir -p "$B/corpus/$t"
		log=$B/logs/$t.log
		start=$(date +%s)
		"$B/$t" $(flags "$t") -max_total_time="$secs" -timeout=10 -print_final_stats=1 \
			-artifact_prefix="$B/crashes/$t-" "$B/corpus/$t" "fuzz/corpus/$t" >"$log" 2>&1
		rc=$?
		took=$(($(date +%s) - start))
		execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
		rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)
		corpus=$(ls "$B/corpus/$t" | wc -l)
		crashes=0
		if [ "$rc" -ne 0 ]; then
			crashes=$(grep -c '^artifact_prefix=\|Test unit written to' "$log")
			[ "$crashes" -eq 0 ] && crashes=1
			bad=1
		fi
		printf '%-10s %6s %12s %9s %7s %8s\n' "$t" "$took" "${execs:-?}" "${rate:-?}" \
			"$corpus" "$crashes"
		if [ "$rc" -ne 0 ]; then
			grep -E 'ERROR|SUMMARY|runtime error|Test unit written' "$log" | head -n 8 |
				sed 's/^/    /'
		fi
	done
	[ "$bad" -eq 0 ] || echo "fuzz: crashes found (inputs in $B/crashes/, logs in $B/logs/)"
	exit "$bad"
	;;
*)
	echo "usage: fuzz/run.sh seeds [PATTERN] | run SECS [PATTERN]" >&2
	exit 2
	;;
esac

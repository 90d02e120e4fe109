#!/bin/bash
# Run every test and end with "N passed, N failed".
#  - unit tests (cmocka, TAP output) of the normal build and of the
#    AddressSanitizer+UndefinedBehaviorSanitizer build (build/san);
#  - every seed of the fuzzing harnesses once (build/fuzz, make fuzz-build);
#  - end-to-end tests (tests/e2e/*.sh), which start real khd daemons on
#    scratch directories and drive them with the real tools, built with the
#    sanitizers.
# Usage: tests/run.sh [PATTERN]   (only tests whose file name contains PATTERN)
cd "$(dirname "$0")/.." || exit 2
pattern=${1:-}
pass=0
fail=0
skip=0
failed=()
export CMOCKA_MESSAGE_OUTPUT=TAP
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# Count "ok"/"not ok" lines of one TAP producer; a producer that fails with
# no "not ok" line (a crash, a sanitizer report) counts as one failure.
run_tap() {
	local name=$1 log
	shift
	log=$(mktemp)
	"$@" >"$log" 2>&1
	local rc=$?
	local p f s
	# a skipped check is reported as skipped, never as passed
	s=$(grep -E '^ok ' "$log" | grep -ciE '# skip')
	p=$(($(grep -cE '^ok ' "$log") - s))
	f=$(grep -cE '^not ok ' "$log")
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1
		echo "not ok - $name exited with status $rc"
	fi
	if [ "$f" -gt 0 ]; then
		failed+=("$name")
		sed 's/^/    /' "$log" | grep -vE '^    ok ' | tail -n 60
	fi
	printf '%-40s %4d passed, %d failed%s\n' "$name" "$p" "$f" "$([ "$s" -gt 0 ] && echo ", $s skipped")"
	pass=$((pass + p))
	fail=$((fail + f))
	skip=$((skip + s))
	rm -f "$log"
}

for build in build build/san; do
	for t in "$build"/tests/test_*; do
		[ -x "$t" ] || continue
		case "$t" in *"$pattern"*) ;; *) continue ;; esac
		run_tap "${t#build/}" "$t"
	done
done

# The libFuzzer harnesses (make fuzz-build): every seed of fuzz/corpus/ once,
# so the harnesses and their seeds keep working (docs/fuzzing.md).
if [ -d build/fuzz ]; then
	case "fuzz" in *"$pattern"*) run_tap "fuzz (seeds)" fuzz/run.sh seeds ;; esac
fi

export KH_BIN=${KH_BIN:-build/san/bin}
for t in tests/e2e/*.sh; do
	case "$t" in */lib.sh) continue ;; *"$pattern"*) ;; *) continue ;; esac
	run_tap "${t#tests/}" bash "$t"
done

[ ${#failed[@]} -gt 0 ] && echo "failed: ${failed[*]}"
if [ "$skip" -gt 0 ]; then
	echo "$pass passed, $fail failed, $skip skipped"
else
	echo "$pass passed, $fail failed"
fi
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]

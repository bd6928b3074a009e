#!/usr/bin/env bash
# replay.sh BINDIR HARNESS... -- runs every input of tests/fuzz/corpus/<harness>
# and tests/fuzz/regress/<harness> once through $BINDIR/fuzz_<harness>. One test
# per harness: passed when every input ran clean, failed on a crash, a
# sanitizer report or a failed check (the input is named). Ends with
# "fuzz-replay: N passed, N failed, N skipped"; exits 1 if any failed.
set -u
cd "$(dirname "$0")/../.."
bindir=$1
shift
pass=0 fail=0 skip=0
for h in "$@"; do
    dirs=()
    for d in "tests/fuzz/corpus/$h" "tests/fuzz/regress/$h"; do
        [ -d "$d" ] && dirs+=("$d")
    done
    n=0
    for d in "${dirs[@]}"; do n=$(( n + $(find "$d" -type f | wc -l) )); done
    if [ "$n" -eq 0 ]; then
        echo "SKIP fuzz-replay $h: no corpus in tests/fuzz/corpus/$h"
        skip=$((skip + 1))
        continue
    fi
    log="build/results/fuzz-replay-$h.log"
    mkdir -p build/results
    # -runs=0: execute the given inputs once each, search for nothing new
    if timeout 300 "$bindir/fuzz_$h" -runs=0 -timeout=10 -artifact_prefix=build/results/fuzz-replay-$h- -rss_limit_mb=2048 "${dirs[@]}" >"$log" 2>&1; then
        echo "ok   fuzz-replay $h: $n inputs ($(grep -o 'cov: [0-9]*' "$log" | tail -1))"
        pass=$((pass + 1))
    else
        echo "FAIL fuzz-replay $h: see $log"
        grep -E 'ERROR|SUMMARY|check failed|runtime error|Test unit written|Running' "$log" | tail -15
        fail=$((fail + 1))
    fi
done
echo "fuzz-replay: $pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]

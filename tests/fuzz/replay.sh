#!/usr/bin/env bash
# replay.sh BINDIR HARNESS... -- runs every input of tests/fuzz/corpus/<harness>
# and tests/fuzz/regress/<harness> once through $BINDIR/fuzz_<harness>. One test
# per harness: passed when every input ran clean, failed on a crash, a
# sanitizer report or a failed check (the input is named). Ends with
# "N passed, N failed, N skipped"; exits 1 if any failed.
set -u
cd "$(dirname "$0")/../.."
bindir=$1
shift
pass=0 fail=0 skip=0
for h in "$@"; do
    inputs=()
    for d in "tests/fuzz/corpus/$h" "tests/fuzz/regress/$h"; do
        [ -d "$d" ] || continue
        for f in "$d"/*; do [ -f "$f" ] && inputs+=("$f"); done
    done
    n=${#inputs[@]}
    if [ "$n" -eq 0 ]; then
        echo "SKIP fuzz-replay $h: no input in tests/fuzz/corpus/$h or tests/fuzz/regress/$h"
        skip=$((skip + 1))
        continue
    fi
    log="build/results/fuzz-replay-$h.log"
    mkdir -p build/results
    # given files, libFuzzer runs each once ("Running: <file>") and searches
    # for nothing new; the first failure stops it, so its input is the last
    # one named
    if timeout 300 "$bindir/fuzz_$h" -timeout=10 -rss_limit_mb=2048 \
            -artifact_prefix="build/results/fuzz-replay-$h-" "${inputs[@]}" >"$log" 2>&1; then
        echo "ok   fuzz-replay $h: $n inputs"
        pass=$((pass + 1))
    else
        echo "FAIL fuzz-replay $h: input $(grep -a '^Running: ' "$log" | tail -1 | cut -d' ' -f2-) (log: $log)"
        grep -aE '^==[0-9]+== ERROR|^SUMMARY|check failed|runtime error' "$log" | head -10
        fail=$((fail + 1))
    fi
done
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]

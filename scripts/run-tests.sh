#!/usr/bin/env bash
# run-tests.sh -- runs each test suite named on the command line (make test-<name>),
# keeps its output in build/results/<name>.log, and ends with one summary line
# "N passed, N failed, N skipped" summed over every suite. Exits 1 if any suite
# failed (non-zero exit or a failed test), 0 otherwise.
set -u
cd "$(dirname "$0")/.."
mkdir -p build/results
status=0
suites=("$@")
for s in "${suites[@]}"; do
    echo "==== suite $s"
    start=$(date +%s)
    make --no-print-directory "test-$s" 2>&1 | tee "build/results/$s.log"
    rc=${PIPESTATUS[0]}
    echo "$rc" > "build/results/$s.rc"
    echo "==== suite $s: exit $rc in $(( $(date +%s) - start ))s"
    [ "$rc" -eq 0 ] || status=1
done
python3 scripts/summarize.py "${suites[@]}" || status=1
exit $status

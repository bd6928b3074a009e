#!/usr/bin/env bash
# test-rules.sh -- checks and unit-tests the Prometheus rules with promtool (make test-prometheus).
#
#   scripts/prometheus/test-rules.sh [RULES [TESTS]]   (default: rules.yml, rules_test.yml beside it)
#
# Checks, each printed PASS or FAIL:
#   1. `promtool check rules` accepts RULES (syntax, PromQL, templates);
#   2. every test group of TESTS (`promtool test rules`), one check per group,
#      named by its `name:`;
#   3. every alert of RULES has, in TESTS, a case where it fires (exp_labels)
#      and one where it must not (exp_alerts: []); every recording rule is
#      the expression of a promql_expr_test.
# Ends with "prometheus: N passed, N failed" (scripts/summarize.py reads it);
# exits 1 when a check failed. promtool missing is a failure, not a skip:
# scripts/setup.sh installs it (Debian's prometheus package).
set -u
DIR="$(cd "$(dirname "$0")" && pwd)"
RULES="${1:-$DIR/rules.yml}"
TESTS="${2:-$DIR/rules_test.yml}"
passed=0
failed=0

pass() { passed=$((passed + 1)); echo "PASS: $1"; }
fail() { failed=$((failed + 1)); echo "FAIL: $1"; }
summary() { echo "prometheus: $passed passed, $failed failed"; [ "$failed" -eq 0 ]; }

if ! command -v promtool >/dev/null; then
    echo "promtool is not installed: scripts/setup.sh installs it (apt-get install prometheus)" >&2
    fail "promtool is on PATH"
    summary
    exit 1
fi

# 1. the rules file
if out=$(timeout 60 promtool check rules "$RULES" 2>&1); then
    pass "promtool check rules $(basename "$RULES"): $(echo "$out" | grep -o '[0-9]* rules found')"
else
    fail "promtool check rules $(basename "$RULES")"
    echo "$out" | sed 's/^/    /'
fi

# 2. the unit tests: promtool names each failing group ("    name: <name>,")
groups=$(sed -n 's/^  - name: //p' "$TESTS")
out=$(timeout 120 promtool test rules "$TESTS" 2>&1)
rc=$?
failed_names=$(echo "$out" | sed -n 's/^    name: \(.*\),$/\1/p' | sort -u)
if [ -z "$groups" ]; then
    fail "$(basename "$TESTS") has test groups"
elif [ "$rc" -ne 0 ] && [ -z "$failed_names" ]; then
    # a failure promtool did not pin on a group: a bad file, a rule that does not load
    fail "promtool test rules $(basename "$TESTS") (exit $rc, no group ran)"
else
    while IFS= read -r g; do
        if grep -qxF -- "$g" <<<"$failed_names"; then fail "rules test: $g"; else pass "rules test: $g"; fi
    done <<<"$groups"
fi
[ "$rc" -eq 0 ] || echo "$out" | sed 's/^/    /'

# 3. coverage: each alert fires somewhere and stays quiet somewhere; each record is tested
for alert in $(sed -n 's/^ *- alert: *//p' "$RULES"); do
    cases=$(grep -A2 -E "^ *alertname: $alert\$" "$TESTS")
    if grep -q 'exp_alerts: *$' <<<"$cases" && grep -q 'exp_alerts: \[\]' <<<"$cases"; then
        pass "alert $alert is tested firing and not firing"
    else
        fail "alert $alert is tested firing and not firing (rules_test.yml needs both cases)"
    fi
done
for record in $(sed -n 's/^ *- record: *//p' "$RULES"); do
    if grep -qE "^ *- expr: $record([^a-z0-9_:]|\$)" "$TESTS"; then
        pass "recording rule $record has a promql_expr_test"
    else
        fail "recording rule $record has a promql_expr_test"
    fi
done
summary

#!/usr/bin/env bash
# docs.sh -- writes the settings tables into the Markdown files named, between
# "<!-- settings:KIND -->" and "<!-- /settings -->" (KIND: service or limits),
# as $SETTINGS_DOC prints them from svc_settings[] (make docs builds it).
#
#   scripts/docs.sh FILE...           rewrites the tables that differ
#   scripts/docs.sh --check FILE...   changes nothing: one test per file (its
#                                     tables equal the printed ones, shown as a
#                                     diff when not) and one for the table's
#                                     own rules; ends with "docs: N passed, N
#                                     failed", exits 1 when one failed
set -u
cd "$(dirname "$0")/.."
check=0
if [ "${1:-}" = --check ]; then
    check=1
    shift
fi
doc=${SETTINGS_DOC:-build/bin/settings_doc}
passed=0
failed=0
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT

# Prints FILE with its tables printed afresh. Links in meanings are written
# from the repository's root: the prefix climbs from FILE's folder to it.
# Exits 3 when FILE has no table, 4 when a table is not closed.
render() {
    local prefix
    prefix=$(dirname "$1" | awk -F/ '$0 != "." { for (i = 1; i <= NF; i++) printf "../" }')
    awk -v doc="$doc" -v prefix="$prefix" '
        /^<!-- settings:[a-z]+ -->$/ {
            print
            kind = $2
            sub(/^settings:/, "", kind)
            fflush()
            if (system(doc " " kind " \"" prefix "\"") != 0)
                exit 5
            inside = 1
            found++
            next
        }
        /^<!-- \/settings -->$/ { inside = 0; print; next }
        !inside { print }
        END { if (!found) exit 3; if (inside) exit 4 }' "$1"
}

for f in "$@"; do
    if ! render "$f" >"$tmp"; then
        echo "FAIL $f: no settings table, or one without <!-- /settings -->"
        failed=$((failed + 1))
    elif cmp -s "$f" "$tmp"; then
        passed=$((passed + 1))
    elif [ $check = 1 ]; then
        echo "FAIL $f: its settings table differs from svc_settings[] (common/svc/core/config.c); run make docs"
        diff -u "$f" "$tmp" | sed -n '3,$p'
        failed=$((failed + 1))
    else
        cp "$tmp" "$f"
        echo "docs.sh: rewrote the settings table in $f"
        passed=$((passed + 1))
    fi
done
if [ $check = 1 ]; then
    if "$doc" self-test; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
    fi
    echo "docs: $passed passed, $failed failed"
fi
[ $failed -eq 0 ]

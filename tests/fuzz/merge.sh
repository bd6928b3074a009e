#!/usr/bin/env bash
# merge.sh HARNESS BINARY WORKDIR -- folds what a fuzzing run found (WORKDIR)
# into tests/fuzz/corpus/HARNESS and minimizes it, so the repository's corpus
# stays small. Hand-written seeds (any name that is not libFuzzer's 40-hex
# one) are always kept; the found inputs are replaced by the fewest, smallest
# ones that reach code the seeds do not (libFuzzer's -merge=1 on edges only,
# -use_counters=0: hit counts would keep ten times as many files). The whole
# set found stays in WORKDIR, from which the next run starts. Prints
# "corpus A -> B inputs". Exits non-zero when the merge fails; the corpus is
# then left as it was.
set -eu
cd "$(dirname "$0")/../.."
h=$1 bin=$2 work=$3
corpus=tests/fuzz/corpus/$h
mkdir -p "$corpus"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/out"
before=$(find "$corpus" -type f | wc -l)
found() { [[ $(basename "$1") =~ ^[0-9a-f]{40}$ ]]; }
for f in "$corpus"/*; do
    if [ -f "$f" ] && ! found "$f"; then cp "$f" "$tmp/out/"; fi
done
"$bin" -merge=1 -use_counters=0 -timeout=10 "$tmp/out" "$corpus" "$work" >"$tmp/merge.log" 2>&1 || {
    tail -20 "$tmp/merge.log" >&2
    exit 1
}
for f in "$corpus"/*; do
    if [ -f "$f" ] && found "$f"; then rm "$f"; fi
done
for f in "$tmp/out"/*; do
    if [ -f "$f" ] && found "$f"; then cp "$f" "$corpus/"; fi
done
echo "corpus $before -> $(find "$corpus" -type f | wc -l) inputs ($(cat "$corpus"/* | wc -c) bytes)"

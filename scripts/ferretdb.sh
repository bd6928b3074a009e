#!/usr/bin/env bash
# ferretdb.sh -- builds and locates the static FerretDB 1.x (SQLite backend) server the tests and `make run` use.
#
#   scripts/ferretdb.sh build   build it if missing or stale (idempotent), print its path
#   scripts/ferretdb.sh path    print its path; exit 1 if it has not been built
#
# The server is scripts/ferretdb/main.go, a small main around FerretDB's
# embeddable package (the upstream cmd/ferretdb panics when built from the
# module proxy). It is built with CGO_ENABLED=0 into .cache/ferretdb/<checksum>/ferretdb,
# so the same binary runs on the host and in a scratch container image. Each
# version of the sources gets its own folder, .cache/ferretdb/<checksum>/, so
# checkouts of different versions on one machine never rebuild over each other.
# Usage of the binary:
#   ferretdb --listen-addr=127.0.0.1:PORT --postgresql-url=URL   (scripts/postgres.sh start prints URL)
#   ferretdb --listen-addr=127.0.0.1:PORT --sqlite-url=file:/abs/dir/
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SRC="$ROOT/scripts/ferretdb"
# Prints a checksum of the sources the binary is built from.
source_sum() {
    cat "$SRC/go.mod" "$SRC/go.sum" "$SRC/main.go" | sha256sum | cut -d' ' -f1
}
OUT_DIR="$ROOT/.cache/ferretdb/$(source_sum | cut -c1-16)"
BIN="$OUT_DIR/ferretdb"
STAMP="$OUT_DIR/source.sha256"

# Builds the binary unless it exists and was built from the current sources.
build() {
    local sum; sum="$(source_sum)"
    if [ -x "$BIN" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$sum" ]; then
        echo "$BIN"
        return 0
    fi
    command -v go >/dev/null || { echo "ferretdb.sh: go is not installed" >&2; exit 1; }
    mkdir -p "$OUT_DIR"
    echo "ferretdb.sh: building FerretDB (first build downloads modules and compiles SQLite: a few minutes)..." >&2
    local start=$SECONDS
    if ! ( cd "$SRC" && GOTOOLCHAIN=local CGO_ENABLED=0 \
            go build -v -trimpath -ldflags='-s -w' -o "$BIN.tmp" . ) 2>&1 \
        | while read -r line; do echo "ferretdb.sh: [$((SECONDS - start))s] $line" >&2; done
    then
        echo "ferretdb.sh: build failed" >&2; exit 1
    fi
    mv "$BIN.tmp" "$BIN"
    echo "$sum" > "$STAMP"
    echo "ferretdb.sh: built in $((SECONDS - start))s" >&2
    echo "$BIN"
}

# Prints the binary's path, or fails when it has not been built.
path() {
    if [ -x "$BIN" ]; then echo "$BIN"; else echo "ferretdb.sh: not built; run scripts/ferretdb.sh build" >&2; exit 1; fi
}

case "${1:-}" in
    build) build ;;
    path)  path ;;
    *) echo "usage: $0 build|path" >&2; exit 2 ;;
esac

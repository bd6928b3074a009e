#!/usr/bin/env bash
# jaeger.sh -- builds and locates the Jaeger v2 all-in-one server that `make run TRACES=on` starts.
#
#   scripts/jaeger.sh build   build it if missing or stale (idempotent), print its path
#   scripts/jaeger.sh path    print its path; exit 1 if it has not been built
#
# The server is cmd/jaeger of the Go module github.com/jaegertracing/jaeger at
# v1.75.0 (the module's tag for Jaeger v2.12.0), named by the tool directive of
# scripts/jaeger/go.mod (made with `go get -tool
# github.com/jaegertracing/jaeger/cmd/jaeger@v1.75.0`), so go.sum pins every
# module it is built from. It is built from the Go module proxy with
# CGO_ENABLED=0 into .cache/jaeger/<checksum of go.mod and go.sum>/jaeger, a
# static binary; each version of the module list gets its own folder, so
# checkouts of different versions on one machine never rebuild over each other.
# The first build compiles about 1,500 packages: many minutes on two cores.
#
# A binary built from the module proxy carries no web UI: the UI's assets are
# compiled into Jaeger's release binaries and images only, so its / answers a
# placeholder page ("This is not the Jaeger UI you are looking for"). Its query
# API (/api/services, /api/traces/<id>), which the dashboard reads, is whole.
# Run it with the configuration scripts/jaeger/config.yaml (its header lists
# the variables it reads):
#   JAEGER_PORT=16686 JAEGER_OTLP_PORT=4318 jaeger --config=scripts/jaeger/config.yaml
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SRC="$ROOT/scripts/jaeger"
PACKAGE=github.com/jaegertracing/jaeger/cmd/jaeger
# Prints a checksum of the module list the binary is built from.
source_sum() {
    cat "$SRC/go.mod" "$SRC/go.sum" | sha256sum | cut -d' ' -f1
}
OUT_DIR="$ROOT/.cache/jaeger/$(source_sum | cut -c1-16)"
BIN="$OUT_DIR/jaeger"
STAMP="$OUT_DIR/source.sha256"

# Builds the binary unless it exists and was built from the current module list.
# Progress: every package go compiles, with the seconds since the start.
build() {
    local sum; sum="$(source_sum)"
    if [ -x "$BIN" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$sum" ]; then
        echo "$BIN"
        return 0
    fi
    command -v go >/dev/null || { echo "jaeger.sh: go is not installed" >&2; exit 1; }
    mkdir -p "$OUT_DIR"
    echo "jaeger.sh: building Jaeger (cmd/jaeger of github.com/jaegertracing/jaeger, scripts/jaeger/go.mod);" \
         "the first build downloads its modules and compiles ~1500 packages: 10 minutes or more on 2 cores..." >&2
    local start=$SECONDS n=0
    if ! ( cd "$SRC" && GOTOOLCHAIN=local CGO_ENABLED=0 \
            go build -v -trimpath -ldflags='-s -w' -o "$BIN.tmp" "$PACKAGE" ) 2>&1 \
        | while read -r line; do n=$((n + 1)); echo "jaeger.sh: [$((SECONDS - start))s #$n] $line" >&2; done
    then
        rm -f "$BIN.tmp"
        echo "jaeger.sh: build failed" >&2; exit 1
    fi
    mv "$BIN.tmp" "$BIN"
    echo "$sum" > "$STAMP"
    echo "jaeger.sh: built in $((SECONDS - start))s" >&2
    echo "$BIN"
}

# Prints the binary's path, or fails when it has not been built.
path() {
    if [ -x "$BIN" ]; then echo "$BIN"; else echo "jaeger.sh: not built; run scripts/jaeger.sh build" >&2; exit 1; fi
}

case "${1:-}" in
    build) build ;;
    path)  path ;;
    *) echo "usage: $0 build|path" >&2; exit 2 ;;
esac

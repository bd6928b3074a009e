# gobuild.sh -- builds and locates a static Go binary in .cache/: the half that
# scripts/ferretdb.sh and scripts/jaeger.sh share. Sourced by them, never run.
#
# The sourcing script sets these, then sources this file with its own arguments:
#   NAME       the binary's name and its cache folder's: .cache/NAME/<checksum>/NAME
#   SRC        the folder holding go.mod; the build runs there
#   PACKAGE    what `go build` builds there (`.`, or a package of the module list)
#   SUM_FILES  the files (an array) whose checksum names the build: each version
#              gets its own folder, so checkouts of different versions on one
#              machine never rebuild over each other
#   NOTE       what the first build does and about how long it takes, said first
# Then `<script> build` builds it with CGO_ENABLED=0 (a static binary that also
# runs in a scratch image) unless it exists and was built from the current
# files, showing every package go compiles, numbered, with the seconds since the
# start, and prints its path; `<script> path` prints the path, or exits 1 when
# it has not been built.
ME="$(basename "$0")"

# Prints a checksum of the files the binary is built from.
source_sum() {
    cat "${SUM_FILES[@]}" | sha256sum | cut -d' ' -f1
}
OUT_DIR="$ROOT/.cache/$NAME/$(source_sum | cut -c1-16)"
BIN="$OUT_DIR/$NAME"
STAMP="$OUT_DIR/source.sha256"

# Builds the binary unless it exists and was built from the current files.
build() {
    local sum; sum="$(source_sum)"
    if [ -x "$BIN" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$sum" ]; then
        echo "$BIN"
        return 0
    fi
    command -v go >/dev/null || { echo "$ME: go is not installed" >&2; exit 1; }
    mkdir -p "$OUT_DIR"
    echo "$ME: $NOTE" >&2
    local start=$SECONDS n=0
    if ! ( cd "$SRC" && GOTOOLCHAIN=local CGO_ENABLED=0 \
            go build -v -trimpath -ldflags='-s -w' -o "$BIN.tmp" "$PACKAGE" ) 2>&1 \
        | while read -r line; do n=$((n + 1)); echo "$ME: [$((SECONDS - start))s #$n] $line" >&2; done
    then
        rm -f "$BIN.tmp"
        echo "$ME: build failed" >&2; exit 1
    fi
    mv "$BIN.tmp" "$BIN"
    echo "$sum" > "$STAMP"
    echo "$ME: built in $((SECONDS - start))s" >&2
    echo "$BIN"
}

# Prints the binary's path, or fails when it has not been built.
path() {
    if [ -x "$BIN" ]; then echo "$BIN"; else echo "$ME: not built; run scripts/$ME build" >&2; exit 1; fi
}

case "${1:-}" in
    build) build ;;
    path)  path ;;
    *) echo "usage: $0 build|path" >&2; exit 2 ;;
esac

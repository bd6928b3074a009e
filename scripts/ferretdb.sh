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
NAME=ferretdb
SRC="$ROOT/scripts/ferretdb"
PACKAGE=.
SUM_FILES=("$SRC/go.mod" "$SRC/go.sum" "$SRC/main.go")
NOTE="building FerretDB (first build downloads modules and compiles SQLite: a few minutes)..."
source "$ROOT/scripts/gobuild.sh"

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
NAME=jaeger
SRC="$ROOT/scripts/jaeger"
PACKAGE=github.com/jaegertracing/jaeger/cmd/jaeger
SUM_FILES=("$SRC/go.mod" "$SRC/go.sum")
NOTE="building Jaeger (cmd/jaeger of github.com/jaegertracing/jaeger, scripts/jaeger/go.mod); \
the first build downloads its modules and compiles ~1500 packages: 10 minutes or more on 2 cores..."
source "$ROOT/scripts/gobuild.sh"

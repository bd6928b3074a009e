#!/usr/bin/env bash
# base-images.sh -- makes the images this project's containers need without a registry: debian:bookworm-slim, FerretDB, Jaeger, Prometheus.
#
#   scripts/docker/base-images.sh              every image, each only if missing
#   scripts/docker/base-images.sh debian       debian:bookworm-slim only
#   scripts/docker/base-images.sh ferretdb     resilience-ferretdb:1.24 only
#   scripts/docker/base-images.sh jaeger       resilience-jaeger:2.12.0 only
#   scripts/docker/base-images.sh prometheus   resilience-prometheus:2.42 only
#   FORCE=1 scripts/docker/base-images.sh      rebuild even when present
#
# debian:bookworm-slim: debootstrap --variant=minbase of Debian 12 from
# deb.debian.org, trimmed like the official slim image (no docs, man pages or
# apt lists), with the same apt sources (bookworm, -updates, -security), then
# `docker import`ed under the official name, so the project's Dockerfiles
# build unchanged on a machine that reaches no registry. Needs root.
#
# resilience-ferretdb:1.24: the static FerretDB from scripts/ferretdb.sh in a
# FROM-scratch image (scripts/docker/ferretdb.Dockerfile); the e2e test puts it
# in place of the official mongo image through a compose override.
#
# resilience-jaeger:2.12.0: the static Jaeger from scripts/jaeger.sh in a
# FROM-scratch image (scripts/docker/jaeger.Dockerfile); resilience-prometheus:2.42:
# Debian's prometheus package on debian:bookworm-slim (scripts/docker/prometheus.Dockerfile).
# They stand in for jaegertracing/jaeger and prom/prometheus through
# JAEGER_IMAGE and PROMETHEUS_IMAGE (docker-compose.yaml, docker-stack.yaml).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
DEBIAN_IMAGE=debian:bookworm-slim
FERRETDB_IMAGE=resilience-ferretdb:1.24
JAEGER_IMAGE=resilience-jaeger:2.12.0
PROMETHEUS_IMAGE=resilience-prometheus:2.42
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SCRATCH_DIRS=()
trap 'rm -rf "${SCRATCH_DIRS[@]}"' EXIT

# Returns 0 when the image exists locally (and FORCE is not set).
have_image() {
    [ -z "${FORCE:-}" ] && docker image inspect "$1" >/dev/null 2>&1
}

# Writes the official slim image's apt sources and size-saving dpkg/apt rules into the root dir $1.
trim_like_slim() {
    local dir="$1"
    rm -f "$dir/etc/apt/sources.list"
    cat > "$dir/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
    cat > "$dir/etc/dpkg/dpkg.cfg.d/docker" <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
DPKG
    cat > "$dir/etc/apt/apt.conf.d/docker-clean" <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";
Acquire::Languages "none";
APT
    find "$dir/usr/share/doc" -mindepth 2 ! -name copyright -delete 2>/dev/null || true
    rm -rf "$dir/usr/share/man/"* "$dir/usr/share/info/"* "$dir/usr/share/locale/"* \
           "$dir/var/lib/apt/lists/"* "$dir/var/cache/apt/"*.bin "$dir/var/cache/apt/archives/"*.deb \
           "$dir/var/log/"* "$dir/tmp/"*
}

# Builds debian:bookworm-slim with debootstrap + docker import, unless present.
build_debian() {
    if have_image "$DEBIAN_IMAGE"; then echo "base-images: $DEBIAN_IMAGE present"; return 0; fi
    command -v debootstrap >/dev/null || { echo "base-images: debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }
    [ "$(id -u)" -eq 0 ] || { echo "base-images: debootstrap needs root" >&2; exit 1; }
    local dir; dir="$(mktemp -d /tmp/bookworm-slim.XXXXXX)"
    SCRATCH_DIRS+=("$dir" "$dir.log")
    echo "base-images: debootstrap --variant=minbase bookworm from $MIRROR (about a minute)..."
    local start=$SECONDS
    debootstrap --variant=minbase bookworm "$dir" "$MIRROR" > "$dir.log" 2>&1 \
        || { tail -20 "$dir.log" >&2; exit 1; }
    trim_like_slim "$dir"
    tar --numeric-owner -C "$dir" -c . | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["bash"]' - "$DEBIAN_IMAGE" >/dev/null
    echo "base-images: $DEBIAN_IMAGE imported in $((SECONDS - start))s"
}

# Builds image from the static binary bin and dockerfile, unless present and
# made from this binary and this Dockerfile (the label
# org.resilience-suite.source holds their hash: an image from an older binary or
# Dockerfile is rebuilt). More arguments are folders made in the build context.
build_static_image() {
    local image="$1" bin="$2" dockerfile="$3"; shift 3
    local name; name="$(basename "$bin")"
    local source; source="$(cat "$bin" "$dockerfile" | sha256sum | cut -c1-16)"
    if have_image "$image" && [ "$(docker image inspect -f \
            '{{index .Config.Labels "org.resilience-suite.source"}}' "$image")" = "$source" ]; then
        echo "base-images: $image present"; return 0
    fi
    local ctx; ctx="$(mktemp -d "/tmp/$name-image.XXXXXX")"
    SCRATCH_DIRS+=("$ctx")
    cp "$bin" "$ctx/$name"
    local dir
    for dir in "$@"; do mkdir -p "$ctx/$dir"; done
    docker build -q --label "org.resilience-suite.source=$source" -t "$image" -f "$dockerfile" "$ctx" >/dev/null
    echo "base-images: $image built"
}

# The FerretDB image (an empty data/db in its context: the image's volume) and
# the Jaeger image, from the static binaries the scripts build.
build_ferretdb() {
    local bin; bin="$("$ROOT/scripts/ferretdb.sh" build)"
    build_static_image "$FERRETDB_IMAGE" "$bin" "$ROOT/scripts/docker/ferretdb.Dockerfile" data/db
}

build_jaeger() {
    local bin; bin="$("$ROOT/scripts/jaeger.sh" build)"
    build_static_image "$JAEGER_IMAGE" "$bin" "$ROOT/scripts/docker/jaeger.Dockerfile"
}

# Builds the Prometheus image (Debian's package, installed from the mirror by
# apt in the build), unless present and made from this Dockerfile.
build_prometheus() {
    build_debian
    local source; source="$(sha256sum < "$ROOT/scripts/docker/prometheus.Dockerfile" | cut -c1-16)"
    if have_image "$PROMETHEUS_IMAGE" && [ "$(docker image inspect -f \
            '{{index .Config.Labels "org.resilience-suite.source"}}' "$PROMETHEUS_IMAGE")" = "$source" ]; then
        echo "base-images: $PROMETHEUS_IMAGE present"; return 0
    fi
    local ctx; ctx="$(mktemp -d /tmp/prometheus-image.XXXXXX)"
    SCRATCH_DIRS+=("$ctx")
    docker build -q --label "org.resilience-suite.source=$source" -t "$PROMETHEUS_IMAGE" \
        -f "$ROOT/scripts/docker/prometheus.Dockerfile" "$ctx" >/dev/null
    echo "base-images: $PROMETHEUS_IMAGE built"
}

case "${1:-all}" in
    debian)     build_debian ;;
    ferretdb)   build_ferretdb ;;
    jaeger)     build_jaeger ;;
    prometheus) build_prometheus ;;
    all)        build_debian; build_ferretdb; build_jaeger; build_prometheus ;;
    *) echo "usage: $0 [all|debian|ferretdb|jaeger|prometheus]" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# setup.sh -- installs what building and testing this project needs on Debian 12:
# Debian's packages (only those missing) and, through scripts/ferretdb.sh and
# scripts/jaeger.sh, the FerretDB server the tests and `make run` use and the
# Jaeger server of `make run TRACES=on` (its first build takes many minutes,
# then it is cached). Safe to run again: it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
    build-essential pkg-config make python3 curl ca-certificates
    libcivetweb-dev libmongoc-dev libbson-dev libcjson-dev libcurl4-openssl-dev
    libcmocka-dev
)
# Extra packages a part of the project asks for, one name per line.
for f in scripts/packages.d/*.txt; do
    [ -e "$f" ] || continue
    while read -r p; do
        case "$p" in ''|'#'*) ;; *) PACKAGES+=("$p") ;; esac
    done < "$f"
done

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
    echo "setup: Debian packages present"
fi

if [ -x scripts/ferretdb.sh ]; then
    scripts/ferretdb.sh build
fi
if [ -x scripts/jaeger.sh ]; then
    scripts/jaeger.sh build
fi

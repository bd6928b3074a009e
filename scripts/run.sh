#!/usr/bin/env bash
# run.sh -- runs the whole suite on this machine (what `make run` calls): FerretDB and
# order (3000) -> payment (3001) -> shipment (3002), wired as docker-compose wires them.
#
#   make run                      FerretDB on 127.0.0.1:27017 over PostgreSQL, data in .data/postgres
#   FERRETDB_BACKEND=sqlite make run   FerretDB over SQLite instead, data in .data/ferretdb
#   MONGO_URL=mongodb://h:p make run   use that database, start no FerretDB
#
# Why PostgreSQL by default: FerretDB 1.24's SQLite backend looks a document up
# by _id with a full scan (its _id index is on another expression), so every
# outcome update slows as a collection grows, and its writers wait in SQLite's
# sleeping busy handler; see "Performance" in the README for the figures.
#
# Ports can be moved with ORDER_PORT, PAYMENT_PORT, SHIPMENT_PORT, FERRETDB_PORT,
# the data with DATA_DIR (default .data; `make bench-services` uses a temporary one);
# FERRETDB_LOG_LEVEL (default error) shows more of the database server's log.
# PROFILE=classroom applies scripts/profiles/classroom.env (a calm baseline,
# admin routes on with a random ADMIN_TOKEN, printed at start); any variable set by hand wins.
# Any other variable the services read (JUMPS, ERR_RATE, CB_*, LOG_FORMAT, ...) is
# passed through. Logs are interleaved with a [name] prefix. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
BIN="${BUILD:-build}/bin"
ORDER_PORT="${ORDER_PORT:-3000}"
PAYMENT_PORT="${PAYMENT_PORT:-3001}"
SHIPMENT_PORT="${SHIPMENT_PORT:-3002}"
FERRETDB_PORT="${FERRETDB_PORT:-27017}"
PIDS=()
STOP_PG=""
DATA_DIR="$(mkdir -p "${DATA_DIR:-.data}" && cd "${DATA_DIR:-.data}" && pwd)"

# Prints a line from this script.
say() { echo "[run] $*"; }

# Fails when something already listens on port ($2 names who wanted it).
need_free_port() {
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
        say "port $1 ($2) is already in use: stop what uses it, or set ${3}=<another port>"
        exit 1
    fi
}

# Waits up to 30 s for an HTTP 200 (or a TCP accept, for FerretDB) on port.
wait_ready() {
    local port=$1 kind=$2 pid=$3 i
    for i in $(seq 1 300); do
        kill -0 "$pid" 2>/dev/null || { say "$kind exited during start-up"; return 1; }
        if [ "$kind" = ferretdb ]; then
            (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        else
            curl -fs -o /dev/null "http://127.0.0.1:$port/" && return 0
        fi
        sleep 0.1
    done
    say "$kind did not become ready on port $port"; return 1
}

# Starts "$@" with its output prefixed by [name]; records the pid. The
# services write the prefix themselves (LOG_PREFIX) straight to this
# terminal; anything else goes through awk, which ignores Ctrl-C so that the
# last lines of a stopping process still show, and reads what the pipe holds
# in one go (sed -u would read it a byte at a time).
start() {
    local name=$1; shift
    case "$name" in
    order|payment|shipment) LOG_PREFIX="[$name] " "$@" 2>&1 & ;;
    *) "$@" > >(trap '' INT; exec awk -v p="[$name] " '{ print p $0; fflush() }') 2>&1 & ;;
    esac
    PIDS+=($!)
}

# Stops every process (SIGTERM, they finish what is in flight), waits, and
# exits with $1 (0 after Ctrl-C, the script's status otherwise).
stop_all() {
    local code=$1
    trap - INT TERM EXIT
    [ ${#PIDS[@]} -gt 0 ] || exit "$code"
    say "stopping"
    local p
    for ((i=${#PIDS[@]}-1; i>=0; i--)); do kill -TERM "${PIDS[$i]}" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    [ -z "$STOP_PG" ] || scripts/postgres.sh stop "$DATA_DIR/postgres"
    say "stopped"
    exit "$code"
}
trap 'stop_all 0' INT TERM
trap 'stop_all $?' EXIT

# PROFILE=classroom (make run PROFILE=classroom): the settings in
# scripts/profiles/<name>.env, each unless the environment already sets it.
if [ -n "${PROFILE:-}" ]; then
    PROFILE_FILE="scripts/profiles/$PROFILE.env"
    if [ ! -f "$PROFILE_FILE" ]; then
        say "PROFILE: no profile \"$PROFILE\"; the profiles are: $(ls scripts/profiles | sed 's/\.env$//' | tr '\n' ' ')"
        exit 1
    fi
    while IFS='=' read -r key value; do
        case "$key" in ''|'#'*) continue ;; esac
        if [ -z "${!key+x}" ]; then export "$key=$value"; fi
    done < "$PROFILE_FILE"
    if [ "${ADMIN_TOKEN:-}" = random ]; then
        ADMIN_TOKEN="$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
        export ADMIN_TOKEN
        say "admin token: $ADMIN_TOKEN  (dashboard: http://127.0.0.1:$ORDER_PORT/dashboard)"
    fi
    say "profile $PROFILE ($PROFILE_FILE): INJECT_ERR=$INJECT_ERR CB_VOLUME_THRESHOLD=$CB_VOLUME_THRESHOLD CB_RESET_TIMEOUT_MS=$CB_RESET_TIMEOUT_MS LOG_LEVEL=$LOG_LEVEL"
fi

for b in order payment shipment; do
    [ -x "$BIN/$b" ] || { say "$BIN/$b is missing: run make"; exit 1; }
done
need_free_port "$ORDER_PORT" order ORDER_PORT
need_free_port "$PAYMENT_PORT" payment PAYMENT_PORT
need_free_port "$SHIPMENT_PORT" shipment SHIPMENT_PORT

if [ -z "${MONGO_URL:-}" ]; then
    need_free_port "$FERRETDB_PORT" ferretdb FERRETDB_PORT
    FERRETDB="$(scripts/ferretdb.sh build)"
    case "${FERRETDB_BACKEND:-postgresql}" in
    postgresql)
        say "starting PostgreSQL (data in $DATA_DIR/postgres)"
        PG_URL="$(scripts/postgres.sh start "$DATA_DIR/postgres")"
        STOP_PG=1
        BACKEND_ARG="--postgresql-url=$PG_URL"; DATA="$DATA_DIR/postgres" ;;
    sqlite)
        mkdir -p "$DATA_DIR/ferretdb"
        BACKEND_ARG="--sqlite-url=file:$DATA_DIR/ferretdb/"; DATA="$DATA_DIR/ferretdb" ;;
    *)  say "FERRETDB_BACKEND: expected postgresql or sqlite, got \"$FERRETDB_BACKEND\""; exit 1 ;;
    esac
    start ferretdb "$FERRETDB" --listen-addr="127.0.0.1:$FERRETDB_PORT" "$BACKEND_ARG" \
        --log-level="${FERRETDB_LOG_LEVEL:-error}"
    wait_ready "$FERRETDB_PORT" ferretdb "${PIDS[-1]}"
    export MONGO_URL="mongodb://127.0.0.1:$FERRETDB_PORT"
    say "FerretDB on $MONGO_URL (${FERRETDB_BACKEND:-postgresql} backend, data in $DATA)"
fi
export JUMPS="${JUMPS:-4}"

start shipment env ID=shipment PORT="$SHIPMENT_PORT" INJECT_ERR="${INJECT_ERR:-1}" "$BIN/shipment"
wait_ready "$SHIPMENT_PORT" shipment "${PIDS[-1]}"
start payment env ID=payment PORT="$PAYMENT_PORT" \
    CHAIN_SVC="http://127.0.0.1:$SHIPMENT_PORT/create" "$BIN/payment"
wait_ready "$PAYMENT_PORT" payment "${PIDS[-1]}"
start order env ID=order PORT="$ORDER_PORT" \
    CHAIN_SVC="http://127.0.0.1:$PAYMENT_PORT/create" "$BIN/order"
wait_ready "$ORDER_PORT" order "${PIDS[-1]}"

say "order     http://127.0.0.1:$ORDER_PORT/    (POST /create; dashboard at /dashboard)"
say "payment   http://127.0.0.1:$PAYMENT_PORT/"
say "shipment  http://127.0.0.1:$SHIPMENT_PORT/  (INJECT_ERR=${INJECT_ERR:-1})"
say "send order/tests.http (VS Code REST Client or JetBrains HTTP client); Ctrl-C stops everything"
wait -n "${PIDS[@]}" || true
say "a process exited; stopping the others"

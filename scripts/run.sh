#!/usr/bin/env bash
# run.sh -- runs the whole suite on this machine (what `make run` calls): FerretDB and
# the services of services.tsv, order (3000) -> payment (3001) -> shipment (3002), wired
# as docker-compose wires them.
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
# Ports can be moved with <NAME>_PORT for each service (ORDER_PORT, ...), FERRETDB_PORT,
# the data with DATA_DIR (default .data; `make bench-services` uses a temporary one);
# FERRETDB_LOG_LEVEL (default error) shows more of the database server's log.
# PROFILE=classroom applies scripts/profiles/classroom.env (a calm baseline,
# admin routes on with a random ADMIN_TOKEN, printed at start, traces and metrics
# on); any variable set by hand wins.
#
# TRACES=on (off by default) also starts Jaeger v2 (scripts/jaeger.sh builds it;
# scripts/jaeger/config.yaml: spans in memory): OTLP/HTTP on 127.0.0.1:JAEGER_OTLP_PORT
# (4318), its query API and / on 127.0.0.1:JAEGER_PORT (16686), open to the dashboard's
# origin (CORS). Each service gets OTEL_EXPORTER_OTLP_ENDPOINT (that OTLP address),
# OTEL_SERVICE_NAME (its name) and TRACES_QUERY_URL (the query API, which the
# dashboard reads traces from); OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG
# pass through. JAEGER_LOG_LEVEL (default warn) shows more of its log.
# METRICS=on (off by default) also starts Debian's Prometheus on
# 127.0.0.1:PROMETHEUS_PORT (9090), data in $DATA_DIR/prometheus, with a
# configuration written at each start to $DATA_DIR/run/prometheus.yml: the
# services scraped every 5 s (job "resilience") and the rules of
# scripts/prometheus/rules.yml when that file is there (said at start when it
# is not). PROMETHEUS_LOG_LEVEL (default warn) shows more of its log.
# Any other variable the services read (JUMPS, ERR_RATE, CB_*, LOG_FORMAT, ...) is
# passed through. Logs are interleaved with a [name] prefix. Ctrl-C stops everything.
#
# Supervision (as docker-compose's `restart: always`): every process (PostgreSQL,
# FerretDB, Jaeger, shipment, payment, order, Prometheus) runs under a keeper that restarts it when it
# exits, whatever its status, after a back-off of 0.5 s doubling to at most 10 s,
# back to 0.5 s once a run has stayed up 10 s. Each exit is logged with its status
# or signal, each restart with its count. A watchdog pings FerretDB every 2 s
# (dbtool ping, 2 s timeout each); 3 misses in a row while its process is alive
# (hung, or SIGSTOPped) and it is killed (SIGKILL) and so restarted: a database
# that stops answering is restarted at most ~12 s after its last answer (3 x (2 s
# wait + 2 s ping)). The state is in $DATA_DIR/run/: <name>.pid (the running
# process), <name>.ready (its pid once it answers), status.json (per process: pid,
# restarts, watchdog kills, last exit and when), which the services read for
# /health's "supervisor" (RUN_STATUS_FILE). Ctrl-C, SIGTERM and SIGHUP stop
# everything: Prometheus, order, payment, shipment, Jaeger, FerretDB, PostgreSQL
# in that order.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
BIN="${BUILD:-build}/bin"
# The services, in chain order, from services.tsv (name port collection next):
# each one's port is in <NAME>_PORT (its default there), NEXT[name] is the
# service it calls (- for the last).
SERVICES=""; SERVICES_LAST_FIRST=""; declare -A NEXT
while read -r svc port _ next; do
    case "$svc" in ''|'#'*) continue ;; esac
    SERVICES="${SERVICES:+$SERVICES }$svc"; SERVICES_LAST_FIRST="$svc${SERVICES_LAST_FIRST:+ $SERVICES_LAST_FIRST}"
    NEXT[$svc]=$next
    var="${svc^^}_PORT"; printf -v "$var" '%s' "${!var:-$port}"
done < services.tsv
FERRETDB_PORT="${FERRETDB_PORT:-27017}"
JAEGER_PORT="${JAEGER_PORT:-16686}"
JAEGER_OTLP_PORT="${JAEGER_OTLP_PORT:-4318}"
PROMETHEUS_PORT="${PROMETHEUS_PORT:-9090}"
# Prometheus's rules (scripts/prometheus/rules.yml), used when the file is there.
PROMETHEUS_RULES="$ROOT/scripts/prometheus/rules.yml"
DATA_DIR="$(mkdir -p "${DATA_DIR:-.data}" && cd "${DATA_DIR:-.data}" && pwd)"
RUN_DIR="$DATA_DIR/run"
STATUS_FILE="$RUN_DIR/status.json"
# The restart back-off, in milliseconds: the first delay, its cap, and how long
# a run must last for the next delay to start again from the first.
RESTART_FIRST_MS=500
RESTART_MAX_MS=10000
RESTART_RESET_MS=10000
# The database watchdog: a ping every WATCHDOG_EVERY_S, each given
# WATCHDOG_TIMEOUT_S; WATCHDOG_MISSES in a row kill the process. A process that
# has not answered yet gets READY_LIMIT_S to start before misses count.
WATCHDOG_EVERY_S=2
WATCHDOG_TIMEOUT_S=2
WATCHDOG_MISSES=3
READY_LIMIT_S=30
# The processes, in start order; names are the log prefixes and the pid files'.
SUPERVISED="postgres ferretdb jaeger $SERVICES_LAST_FIRST prometheus"
KEEPERS=()          # "name:pid" of each keeper (and the watchdog), in start order

# Prints a line from this script.
say() { echo "[run] $*"; }

# Fails when something already listens on port ($2 names who wanted it).
need_free_port() {
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
        say "port $1 ($2) is already in use: stop what uses it, or set ${3}=<another port>"
        exit 1
    fi
}

# Milliseconds of the wall clock, into the variable named $1 (no subshell).
now_ms() { local us=${EPOCHREALTIME/./}; printf -v "$1" '%d' $((us / 1000)); }

# The wall clock as an ISO 8601 UTC time with milliseconds, into the variable named $1.
iso_now() { local us=${EPOCHREALTIME/./}; printf -v "$1" '%(%Y-%m-%dT%H:%M:%S)T.%03dZ' $((us / 1000000)) $((us / 1000 % 1000)); }

# "1.5" from 1500 (milliseconds as seconds), into the variable named $1.
ms_as_s() { printf -v "$1" '%d.%d' $(($2 / 1000)) $(($2 % 1000 / 100)); }

# True when process name answers: PostgreSQL accepts on its socket, FerretDB
# accepts TCP, Jaeger answers its query API's list of services, Prometheus its
# readiness route, a service answers GET / with 200.
is_ready() {
    case "$1" in
    postgres) pg_isready -q -h "$DATA_DIR/postgres" -U postgres -d postgres ;;
    ferretdb) (exec 3<>"/dev/tcp/127.0.0.1/$FERRETDB_PORT") 2>/dev/null ;;
    jaeger) curl -fs -m 2 -o /dev/null "http://127.0.0.1:$JAEGER_PORT/api/services" ;;
    prometheus) curl -fs -m 2 -o /dev/null "http://127.0.0.1:$PROMETHEUS_PORT/-/ready" ;;
    *) local port="${1^^}_PORT"; curl -fs -m 2 -o /dev/null "http://127.0.0.1:${!port}/" ;;
    esac
}

# Words for a status of `wait`: "exit status 3" or "signal KILL".
exit_reason() {
    if [ "$1" -gt 128 ] && [ "$1" -lt 160 ]; then
        echo "signal $(kill -l $(($1 - 128)) 2>/dev/null || echo $(($1 - 128)))"
    else
        echo "exit status $1"
    fi
}

# Rewrites status.json from every keeper's $RUN_DIR/<name>.json, atomically
# (a reader sees the old file or the new one), under a lock (keepers write at
# once). Can't fail the caller: a write that fails leaves the old file.
status_write() {
    {
        flock 9
        {
            printf '{"supervisor":"scripts/run.sh","pid":%d,"run_dir":"%s","restart_backoff_ms":{"first":%d,"max":%d,"reset_after_up":%d},' \
                $$ "$RUN_DIR" $RESTART_FIRST_MS $RESTART_MAX_MS $RESTART_RESET_MS
            printf '"watchdog":{"process":"ferretdb","every_s":%d,"timeout_s":%d,"misses":%d},"processes":{' \
                $WATCHDOG_EVERY_S $WATCHDOG_TIMEOUT_S $WATCHDOG_MISSES
            local n sep=""
            for n in $SUPERVISED; do
                [ -f "$RUN_DIR/$n.json" ] || continue
                printf '%s"%s":%s' "$sep" "$n" "$(cat "$RUN_DIR/$n.json")"
                sep=,
            done
            printf '}}\n'
        } > "$STATUS_FILE.$BASHPID" && mv -f "$STATUS_FILE.$BASHPID" "$STATUS_FILE"
    } 9> "$RUN_DIR/status.lock" 2>/dev/null || true
}

# Starts "$@" in the background with its output prefixed by [name]; $! is its
# pid. The services write the prefix themselves (LOG_PREFIX) straight to this
# terminal; anything else goes through awk, which ignores Ctrl-C so that the
# last lines of a stopping process still show, and reads what the pipe holds
# in one go (sed -u would read it a byte at a time). mawk (Debian's awk) waits
# for a full buffer of a pipe, or its end, before its first line, unless told
# -W interactive: a process's few lines at start showed only when it stopped.
AWK_LINES=(awk)
if awk -W version 2>/dev/null | grep -q '^mawk'; then AWK_LINES=(awk -W interactive); fi
launch() {
    local name=$1; shift
    case " $SERVICES " in
    *" $name "*) LOG_PREFIX="[$name] " "$@" 2>&1 & ;;
    *) "$@" > >(trap '' INT; exec "${AWK_LINES[@]}" -v p="[$name] " '{ print p $0; fflush() }') 2>&1 & ;;
    esac
}

# The keeper of one process (run in the background): starts "$@" as name,
# restarts it whenever it exits (the back-off above), and keeps its pid file,
# its ready file and its part of status.json. SIGTERM stops it: it sends
# stop_signal to the process, waits for it and exits. The keeper ignores
# SIGINT and SIGHUP: the main script decides (a Ctrl-C reaches every process
# of the terminal; a process that stops on it is not restarted, as the main
# script has written $RUN_DIR/stopping before the first back-off ends).
keep() {
    local name=$1 stop_signal=$2; shift 2
    local child=0 stopping="" status again restarts=0 watchdog_kills=0 delay=$RESTART_FIRST_MS
    local started_ms now exited_ms up_ms reason="" exited_at="" started_at waited shown
    set +e                       # a keeper never gives up on a failed command
    exec 2> /dev/null            # nor reports its jobs' deaths itself ("line 173: 123 Killed")
    trap 'stopping=1; [ "$child" -eq 0 ] || kill -"$stop_signal" "$child" 2>/dev/null || true' TERM
    trap '' INT HUP
    while :; do
        launch "$name" "$@"
        child=$!
        echo "$child" > "$RUN_DIR/$name.pid"
        rm -f "$RUN_DIR/$name.ready"
        now_ms started_ms; iso_now started_at
        keeper_status running
        [ "$restarts" -eq 0 ] || say "$name restarted (pid $child, restart #$restarts)"
        waited=0
        while [ -z "$stopping" ] && kill -0 "$child" 2>/dev/null && [ $waited -lt $((READY_LIMIT_S * 10)) ]; do
            if is_ready "$name"; then
                echo "$child" > "$RUN_DIR/$name.ready"
                if [ "$restarts" -gt 0 ]; then
                    now_ms now; ms_as_s shown $((now - exited_ms))
                    say "$name is back: answering ${shown} s after it exited"
                fi
                break
            fi
            sleep 0.1; waited=$((waited + 1))
        done
        while :; do
            wait "$child" && status=0 || status=$?
            if [ "$status" -gt 128 ] && kill -0 "$child" 2>/dev/null; then continue; fi   # a trap ran
            if [ "$status" -gt 128 ]; then wait "$child" 2>/dev/null && status=0 || { again=$?; [ $again -eq 127 ] || status=$again; }; fi
            break
        done
        child=0
        rm -f "$RUN_DIR/$name.pid" "$RUN_DIR/$name.ready"
        now_ms exited_ms; iso_now exited_at
        reason=$(exit_reason "$status")
        if [ -f "$RUN_DIR/$name.watchdog" ]; then
            reason="$reason (killed by the watchdog: $(cat "$RUN_DIR/$name.watchdog"))"
            rm -f "$RUN_DIR/$name.watchdog"
            watchdog_kills=$((watchdog_kills + 1))
        fi
        if [ -n "$stopping" ] || [ -e "$RUN_DIR/stopping" ]; then
            keeper_status stopped; exit 0
        fi
        up_ms=$((exited_ms - started_ms))
        [ $up_ms -lt $RESTART_RESET_MS ] || delay=$RESTART_FIRST_MS
        ms_as_s shown "$up_ms"; local up_s=$shown; ms_as_s shown "$delay"
        say "$name exited: $reason, after $up_s s up; restarting in $shown s"
        echo "$reason" > "$RUN_DIR/$name.last-exit"
        keeper_status restarting
        sleep "$shown" & wait $! || true
        if [ -n "$stopping" ] || [ -e "$RUN_DIR/stopping" ]; then
            keeper_status stopped; exit 0
        fi
        delay=$((delay * 2)); [ $delay -le $RESTART_MAX_MS ] || delay=$RESTART_MAX_MS
        restarts=$((restarts + 1))
    done
}

# Writes this keeper's part of status.json (state: running, restarting, stopped) and the file.
keeper_status() {
    local pid=$child; [ "$1" = running ] || pid=null
    local last=null at=null
    [ -z "$reason" ] || last="\"$reason\""
    [ -z "$exited_at" ] || at="\"$exited_at\""
    printf '{"pid":%s,"state":"%s","started_at":"%s","restarts":%d,"watchdog_kills":%d,"last_exit":%s,"last_exit_at":%s}' \
        "$pid" "$1" "$started_at" "$restarts" "$watchdog_kills" "$last" "$at" > "$RUN_DIR/$name.json.$BASHPID"
    mv -f "$RUN_DIR/$name.json.$BASHPID" "$RUN_DIR/$name.json"
    status_write
}

# The database watchdog (run in the background): pings FerretDB every
# WATCHDOG_EVERY_S; after WATCHDOG_MISSES missed pings in a row (none answered
# within WATCHDOG_TIMEOUT_S) while its process is alive, says why, leaves the
# reason in $RUN_DIR/ferretdb.watchdog for the keeper and kills it (SIGKILL);
# the keeper restarts it. Misses of a process that has not answered yet count
# only after READY_LIMIT_S. SIGTERM stops it.
watch_database() {
    local pid watched="" misses=0 answered="" since_ms now
    set +e
    trap 'exit 0' TERM
    trap '' INT HUP
    while :; do
        pid=$(cat "$RUN_DIR/ferretdb.pid" 2>/dev/null || true)
        if [ "$pid" != "$watched" ]; then watched=$pid; misses=0; answered=""; now_ms since_ms; fi
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            if timeout -s KILL "$WATCHDOG_TIMEOUT_S" "$DBTOOL" ping "$MONGO_URL" > /dev/null 2>&1; then
                misses=0; answered=1
            else
                now_ms now
                if [ -n "$answered" ] || [ $((now - since_ms)) -ge $((READY_LIMIT_S * 1000)) ]; then
                    misses=$((misses + 1))
                    say "watchdog: ferretdb (pid $pid) did not answer a ping within ${WATCHDOG_TIMEOUT_S} s ($misses of $WATCHDOG_MISSES)"
                fi
            fi
            if [ $misses -ge $WATCHDOG_MISSES ]; then
                echo "no answer to $WATCHDOG_MISSES pings in a row, ${WATCHDOG_EVERY_S} s apart, ${WATCHDOG_TIMEOUT_S} s each" \
                    > "$RUN_DIR/ferretdb.watchdog"
                say "watchdog: ferretdb (pid $pid) is alive but not answering: killing it (SIGKILL) to restart it"
                kill -KILL "$pid" 2>/dev/null || true
                misses=0
            fi
        fi
        sleep "$WATCHDOG_EVERY_S" & wait $! || true
    done
}

# Starts a keeper for name ("$@": stop signal, command) and waits until the
# process answers (READY_LIMIT_S at most). Fails when it exits during start-up.
start() {
    local name=$1 i reason
    keep "$@" &
    KEEPERS+=("$name:$!")
    for i in $(seq 1 $((READY_LIMIT_S * 10))); do
        if [ -f "$RUN_DIR/$name.last-exit" ]; then
            reason=$(cat "$RUN_DIR/$name.last-exit")
            say "$name exited during start-up ($reason)"; return 1
        fi
        [ -f "$RUN_DIR/$name.ready" ] && return 0
        sleep 0.1
    done
    say "$name did not become ready within $READY_LIMIT_S s"; return 1
}

# Stops one keeper (SIGTERM: it stops its process and waits for it); after
# 20 s the process is killed (SIGKILL) through its pid file. Can't fail.
stop_keeper() {
    local name=${1%%:*} pid=${1#*:} i child
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 1 200); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "$name did not stop within 20 s: killing it (SIGKILL)"
        child=$(cat "$RUN_DIR/$name.pid" 2>/dev/null || true)
        [ "${child:-0}" -le 1 ] || kill -KILL "$child" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

# Stops every keeper, last started first, then exits with $1 (0 after Ctrl-C,
# SIGTERM or SIGHUP, the script's status otherwise).
stop_all() {
    local code=$1 i
    trap - INT TERM HUP EXIT
    trap '' INT TERM HUP         # a second Ctrl-C does not cut the stop short
    [ ${#KEEPERS[@]} -gt 0 ] || exit "$code"
    : > "$RUN_DIR/stopping"
    say "stopping"
    for ((i=${#KEEPERS[@]}-1; i>=0; i--)); do stop_keeper "${KEEPERS[$i]}"; done
    rm -f "$RUN_DIR/supervisor.pid"
    say "stopped"
    exit "$code"
}
trap 'stop_all 0' INT TERM HUP
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
    say "profile $PROFILE ($PROFILE_FILE): INJECT_ERR=$INJECT_ERR CB_VOLUME_THRESHOLD=$CB_VOLUME_THRESHOLD CB_RESET_TIMEOUT_MS=$CB_RESET_TIMEOUT_MS LOG_LEVEL=$LOG_LEVEL TRACES=${TRACES:-off} METRICS=${METRICS:-off}"
fi
# TRACES and METRICS: on, or off (the default).
for switch in TRACES METRICS; do
    case "${!switch:-off}" in
    on|off) printf -v "$switch" '%s' "${!switch:-off}" ;;
    *) say "$switch: expected on or off, got \"${!switch}\""; exit 1 ;;
    esac
done
# The port of the first service, which serves the dashboard (/dashboard).
DASHBOARD_PORT="${SERVICES%% *}"; DASHBOARD_PORT="${DASHBOARD_PORT^^}_PORT"; DASHBOARD_PORT="${!DASHBOARD_PORT}"
# ADMIN_ALLOWED_ORIGIN=from-ports (the classroom profile's): the origin of the page the first
# service serves (/dashboard), at the port it runs on here, so that its controls may call the
# other services' admin routes whichever ports they were moved to.
if [ "${ADMIN_ALLOWED_ORIGIN:-}" = from-ports ]; then
    ADMIN_ALLOWED_ORIGIN="http://localhost:$DASHBOARD_PORT,http://127.0.0.1:$DASHBOARD_PORT"
    export ADMIN_ALLOWED_ORIGIN
    say "admin routes open to the dashboard at $ADMIN_ALLOWED_ORIGIN"
fi

for b in $SERVICES; do
    [ -x "$BIN/$b" ] || { say "$BIN/$b is missing: run make"; exit 1; }
done
# the watchdog's ping (tests/tools/dbtool.c); a sanitizer build (BUILD=build/asan) has none of its own
DBTOOL="$BIN/dbtool"; [ -x "$DBTOOL" ] || DBTOOL=build/bin/dbtool
[ -n "${MONGO_URL:-}" ] || [ -x "$DBTOOL" ] || { say "$DBTOOL is missing: run make"; exit 1; }
for svc in $SERVICES; do var="${svc^^}_PORT"; need_free_port "${!var}" "$svc" "$var"; done
if [ "$TRACES" = on ]; then
    need_free_port "$JAEGER_PORT" "Jaeger's query API" JAEGER_PORT
    need_free_port "$JAEGER_OTLP_PORT" "Jaeger's OTLP receiver" JAEGER_OTLP_PORT
    JAEGER="$(scripts/jaeger.sh build)"
fi
if [ "$METRICS" = on ]; then
    need_free_port "$PROMETHEUS_PORT" prometheus PROMETHEUS_PORT
    command -v prometheus >/dev/null || { say "METRICS=on: prometheus is not installed (scripts/setup.sh installs Debian's package)"; exit 1; }
fi
if [ -f "$RUN_DIR/supervisor.pid" ] && kill -0 "$(cat "$RUN_DIR/supervisor.pid")" 2>/dev/null; then
    say "another run.sh (pid $(cat "$RUN_DIR/supervisor.pid")) uses DATA_DIR=$DATA_DIR: stop it, or set DATA_DIR"
    exit 1
fi
rm -rf "$RUN_DIR"
mkdir -p "$RUN_DIR"
echo $$ > "$RUN_DIR/supervisor.pid"

if [ -z "${MONGO_URL:-}" ]; then
    need_free_port "$FERRETDB_PORT" ferretdb FERRETDB_PORT
    FERRETDB="$(scripts/ferretdb.sh build)"
    case "${FERRETDB_BACKEND:-postgresql}" in
    postgresql)
        say "starting PostgreSQL (data in $DATA_DIR/postgres)"
        # a cluster left running by an older run.sh (pg_ctl) would hold the data folder
        scripts/postgres.sh stop "$DATA_DIR/postgres"
        start postgres INT scripts/postgres.sh run "$DATA_DIR/postgres"
        PG_URL="$(scripts/postgres.sh ready "$DATA_DIR/postgres")"
        BACKEND_ARG="--postgresql-url=$PG_URL"; DATA="$DATA_DIR/postgres" ;;
    sqlite)
        mkdir -p "$DATA_DIR/ferretdb"
        BACKEND_ARG="--sqlite-url=file:$DATA_DIR/ferretdb/"; DATA="$DATA_DIR/ferretdb" ;;
    *)  say "FERRETDB_BACKEND: expected postgresql or sqlite, got \"$FERRETDB_BACKEND\""; exit 1 ;;
    esac
    export MONGO_URL="mongodb://127.0.0.1:$FERRETDB_PORT"
    start ferretdb TERM "$FERRETDB" --listen-addr="127.0.0.1:$FERRETDB_PORT" "$BACKEND_ARG" \
        --log-level="${FERRETDB_LOG_LEVEL:-error}"
    watch_database &
    KEEPERS+=("watchdog:$!")
    say "FerretDB on $MONGO_URL (${FERRETDB_BACKEND:-postgresql} backend, data in $DATA); watchdog: a ping every ${WATCHDOG_EVERY_S} s, killed after $WATCHDOG_MISSES misses"
fi
export JUMPS="${JUMPS:-4}"
export RUN_STATUS_FILE="$STATUS_FILE"

# Jaeger before the services, so that their first spans have somewhere to go;
# the services' tracing settings (OTEL_SERVICE_NAME is added per service).
TRACE_ENV=()
if [ "$TRACES" = on ]; then
    start jaeger TERM env JAEGER_HOST=127.0.0.1 JAEGER_PORT="$JAEGER_PORT" JAEGER_OTLP_PORT="$JAEGER_OTLP_PORT" \
        DASHBOARD_PORT="$DASHBOARD_PORT" JAEGER_LOG_LEVEL="${JAEGER_LOG_LEVEL:-warn}" \
        "$JAEGER" --config="$ROOT/scripts/jaeger/config.yaml"
    TRACE_ENV=(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$JAEGER_OTLP_PORT"
               TRACES_QUERY_URL="http://127.0.0.1:$JAEGER_PORT")
fi

# the last of the chain first, each wired to the next (the last injects errors, INJECT_ERR)
for svc in $SERVICES_LAST_FIRST; do
    var="${svc^^}_PORT"; next="${NEXT[$svc]}"; next_port="${next^^}_PORT"
    svc_env=(ID="$svc" PORT="${!var}")
    [ "$TRACES" = off ] || svc_env+=("${TRACE_ENV[@]}" OTEL_SERVICE_NAME="$svc")
    if [ "$next" = - ]; then
        start "$svc" TERM env "${svc_env[@]}" INJECT_ERR="${INJECT_ERR:-1}" "$BIN/$svc"
    else
        start "$svc" TERM env "${svc_env[@]}" CHAIN_SVC="http://127.0.0.1:${!next_port}/create" "$BIN/$svc"
    fi
done

# Prometheus's configuration for this run (METRICS=on): every service of
# services.tsv at its port here, every 5 s, and the rules file when it is there.
prometheus_config() {
    local svc var
    echo "# prometheus.yml -- written by scripts/run.sh (METRICS=on) at each start: the services of this run."
    echo "global:"
    echo "  scrape_interval: 5s"
    echo "  evaluation_interval: 5s"
    if [ -f "$PROMETHEUS_RULES" ]; then
        echo "rule_files:"
        echo "  - \"$PROMETHEUS_RULES\""
    fi
    echo "scrape_configs:"
    echo "  - job_name: resilience"
    echo "    static_configs:"
    echo "      - targets:"
    for svc in $SERVICES; do var="${svc^^}_PORT"; echo "          - \"127.0.0.1:${!var}\""; done
}

if [ "$METRICS" = on ]; then
    if [ -f "$PROMETHEUS_RULES" ]; then
        say "prometheus: rules from ${PROMETHEUS_RULES#"$ROOT"/}"
    else
        say "prometheus: ${PROMETHEUS_RULES#"$ROOT"/} is missing: Prometheus runs with no alerting or recording rules"
    fi
    prometheus_config > "$RUN_DIR/prometheus.yml"
    mkdir -p "$DATA_DIR/prometheus"
    start prometheus TERM prometheus --config.file="$RUN_DIR/prometheus.yml" \
        --storage.tsdb.path="$DATA_DIR/prometheus" --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" \
        --log.level="${PROMETHEUS_LOG_LEVEL:-warn}"
fi

for svc in $SERVICES; do
    var="${svc^^}_PORT"; note=""
    [ "$svc" != "${SERVICES%% *}" ] || note="    (POST /create; dashboard at /dashboard)"
    [ "${NEXT[$svc]}" != - ] || note="  (INJECT_ERR=${INJECT_ERR:-1})"
    say "$(printf '%-9s' "$svc") http://127.0.0.1:${!var}/$note"
done
if [ "$TRACES" = on ]; then
    say "jaeger    http://127.0.0.1:$JAEGER_PORT/  (traces: /api/traces/<id>, /api/services; spans in: OTLP/HTTP on 127.0.0.1:$JAEGER_OTLP_PORT)"
    say "          a Jaeger built from its Go module serves a placeholder page at /, not Jaeger's UI; the dashboard draws traces itself"
fi
if [ "$METRICS" = on ]; then
    say "prometheus http://127.0.0.1:$PROMETHEUS_PORT/  (targets: /targets; scraping every 5 s; config $RUN_DIR/prometheus.yml)"
fi
say "every process is restarted when it exits; state in $RUN_DIR (status.json, <name>.pid)"
say "send order/tests.http (VS Code REST Client or JetBrains HTTP client); Ctrl-C stops everything"
# The keepers run until stop_all; wait returns on a signal (its trap runs) or,
# should every keeper end, here.
wait || true
say "every keeper ended"

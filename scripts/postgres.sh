#!/usr/bin/env bash
# postgres.sh -- a private PostgreSQL cluster in a folder, FerretDB's default backend for `make run` and the tests.
#
#   scripts/postgres.sh start DIR   create the cluster in DIR if it is not there, start it,
#                                   print the URL FerretDB connects with (--postgresql-url)
#   scripts/postgres.sh stop DIR    stop it (fast shutdown: committed data is kept)
#   scripts/postgres.sh url DIR     print the URL only
#   scripts/postgres.sh run DIR     create the cluster if it is not there and become its
#                                   server in the foreground (exec: the caller's child is
#                                   the postmaster, so a supervisor sees it exit); its log
#                                   goes to DIR/server.log. SIGINT stops it (fast shutdown).
#   scripts/postgres.sh ready DIR   wait (60 s at most) until the server of DIR accepts
#                                   connections, create the database and the _id index
#                                   trigger if missing, print the URL (after run)
#
# The server is Debian's PostgreSQL 15 (package postgresql-15, installed by
# scripts/setup.sh). It listens on a Unix socket inside DIR and on no TCP port,
# so clusters never collide and nothing outside this machine can reach them.
# FerretDB 1.24 finds a document by _id with `_jsonb->'_id' @> $1`, which its
# own B-tree index on `_jsonb->'_id'` cannot serve, so every update by _id
# would scan the whole collection. An event trigger gives every collection
# table FerretDB creates a GIN index on that expression, which serves `@>`;
# start also adds it to tables made before the trigger existed. The index is
# made without GIN's pending list (fastupdate = off): with it, every new row
# version (each insert, and each outcome update, which rewrites the row) is
# first appended to an unsorted list that every `@>` lookup reads in full
# until a vacuum merges it, so lookups slowed as the list grew (two clients'
# insert + update pairs fell from 399 to 284 a second within 48 s on a new
# database; without the list they held 550-650). And the
# database is set to plan_cache_mode = force_custom_plan: FerretDB sends the
# lookup as `_jsonb->$1 @> $2`, the key a parameter, so a generic plan (which
# PostgreSQL adopts for a prepared statement after five executions when the
# table is still small) cannot match the index expression and scans the
# table; the plan is kept as the table grows, and the writes of two clients
# fell from 392 to 170 a second within 48 s. Each execution is planned with
# its key instead, which costs far less than a scan.
# FerretDB takes at most pool_max_conns (here 150, its default 50)
# connections of the cluster's max_connections (200). An update in FerretDB
# 1.24 holds one pooled connection (the rows of its lookup) while it takes a
# second (the transaction that rewrites the row): once as many updates run at
# once as the pool has connections, each holds one and waits for a second
# for ever, and FerretDB never cancels them (docs/database.md). The services
# bound their operations in flight (DB_MAX_CONNECTIONS, 16 each, plus one
# for their database watch, plus the quorum's 2 and the roster's 1 with
# CB_SHARED=on: 60 for make run's three), so even if every one of them is
# an update holding two connections, 120 < 150 and none waits for one.
# Durability is PostgreSQL's default: fsync on, synchronous_commit on, so a
# transaction that FerretDB reports committed is on disk. PostgreSQL refuses
# to run as root: as root the cluster belongs to the "postgres" user that the
# package creates.
set -euo pipefail

usage() { echo "usage: $0 start|stop|url DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
cmd=$1
DIR=$(mkdir -p "$2" && cd "$2" && pwd)
PGBIN=""
for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && PGBIN=$d; done
[ -n "$PGBIN" ] || { echo "postgres.sh: PostgreSQL is not installed (scripts/setup.sh installs postgresql-15)" >&2; exit 1; }

# Runs "$@" as the cluster's owner: the caller, or postgres when the caller is root.
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# The event trigger, its function and the indexes of existing tables. Idempotent.
ID_INDEX_SQL=$(cat <<'SQL'
CREATE OR REPLACE FUNCTION public.ferretdb_id_index(tbl regclass) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE idx regclass;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = tbl AND attname = '_jsonb')
       OR (SELECT relname FROM pg_class WHERE oid = tbl) LIKE '\_ferretdb\_%' THEN
        RETURN;
    END IF;
    SELECT i.indexrelid INTO idx FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        JOIN pg_am a ON a.oid = c.relam WHERE i.indrelid = tbl AND a.amname = 'gin' LIMIT 1;
    IF idx IS NULL THEN
        EXECUTE format('CREATE INDEX ON %s USING gin ((_jsonb->''_id'') jsonb_path_ops) '
                       'WITH (fastupdate = off)', tbl);
    ELSIF NOT coalesce((SELECT 'fastupdate=off' = ANY(reloptions) FROM pg_class WHERE oid = idx), false) THEN
        EXECUTE format('ALTER INDEX %s SET (fastupdate = off)', idx);
        PERFORM gin_clean_pending_list(idx);
    END IF;
END $$;
CREATE OR REPLACE FUNCTION public.ferretdb_id_index_trigger() RETURNS event_trigger
LANGUAGE plpgsql AS $$
DECLARE r record;
BEGIN
    FOR r IN SELECT objid FROM pg_event_trigger_ddl_commands()
             WHERE command_tag = 'CREATE TABLE' AND object_type = 'table' LOOP
        PERFORM public.ferretdb_id_index(r.objid::regclass);
    END LOOP;
END $$;
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = 'ferretdb_id_index') THEN
        CREATE EVENT TRIGGER ferretdb_id_index ON ddl_command_end WHEN TAG IN ('CREATE TABLE')
            EXECUTE FUNCTION public.ferretdb_id_index_trigger();
    END IF;
END $$;
ALTER DATABASE ferretdb SET plan_cache_mode = force_custom_plan;
SELECT count(public.ferretdb_id_index(c.oid::regclass)) FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'public');
SQL
)

url() { echo "postgres:///ferretdb?host=$DIR&user=postgres&pool_max_conns=150"; }

# The server's settings (start passes them through pg_ctl, run to postgres itself):
# no TCP port, the socket in DIR.
server_options() { echo "-c listen_addresses= -k $DIR -c max_connections=200 -c max_wal_size=1GB"; }

# Creates the cluster in DIR when it is not there; fails when DIR cannot hold its socket.
init() {
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres: "$DIR"
        runuser -u postgres -- test -x "$DIR" ||
            { echo "postgres.sh: user postgres cannot reach $DIR (a parent folder is not searchable)" >&2; exit 1; }
    fi
    chmod 700 "$DIR"
    if [ ! -f "$DIR/data/PG_VERSION" ]; then
        as_owner "$PGBIN/initdb" -D "$DIR/data" -U postgres -A trust -E UTF8 --no-locale \
            > "$DIR/initdb.log" 2>&1 || { cat "$DIR/initdb.log" >&2; exit 1; }
    fi
    # The socket's path is DIR/.s.PGSQL.5432; a Unix socket path has at most 107 bytes.
    [ ${#DIR} -le 90 ] || { echo "postgres.sh: $DIR is too long for a Unix socket path" >&2; exit 1; }
}

start() {
    init
    if ! as_owner "$PGBIN/pg_ctl" -D "$DIR/data" status > /dev/null 2>&1; then
        as_owner "$PGBIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 -o "$(server_options)" \
            start > /dev/null || { tail -20 "$DIR/server.log" >&2; exit 1; }
    fi
    prepare
}

# Becomes the server (exec), its output appended to DIR/server.log.
run() {
    init
    exec >> "$DIR/server.log" 2>&1
    # shellcheck disable=SC2046  # the options are words
    if [ "$(id -u)" -eq 0 ]; then
        exec setpriv --reuid=postgres --regid=postgres --init-groups -- "$PGBIN/postgres" -D "$DIR/data" $(server_options)
    fi
    exec "$PGBIN/postgres" -D "$DIR/data" $(server_options)
}

# Waits until the server accepts connections (60 s at most), then prepare.
ready() {
    local i
    for i in $(seq 1 600); do
        "$PGBIN/pg_isready" -q -h "$DIR" -U postgres -d postgres && { prepare; return; }
        sleep 0.1
    done
    echo "postgres.sh: the server of $DIR did not accept connections within 60 s" >&2
    tail -20 "$DIR/server.log" >&2
    exit 1
}

# Creates the database ferretdb and the _id index trigger when missing; prints the URL.
prepare() {
    if ! as_owner "$PGBIN/psql" -h "$DIR" -U postgres -d postgres -Atqc \
            "select 1 from pg_database where datname = 'ferretdb'" | grep -q 1; then
        as_owner "$PGBIN/createdb" -h "$DIR" -U postgres ferretdb
    fi
    as_owner "$PGBIN/psql" -h "$DIR" -U postgres -d ferretdb -qAt -v ON_ERROR_STOP=1 \
        -c "$ID_INDEX_SQL" > /dev/null || { echo "postgres.sh: cannot install the _id index trigger" >&2; exit 1; }
    url
}

stop() {
    [ -f "$DIR/data/PG_VERSION" ] || return 0
    as_owner "$PGBIN/pg_ctl" -D "$DIR/data" -m fast -w stop > /dev/null 2>&1 || true
}

case "$cmd" in
    start) start ;;
    run)   run ;;
    ready) ready ;;
    stop)  stop ;;
    url)   url ;;
    *)     usage ;;
esac

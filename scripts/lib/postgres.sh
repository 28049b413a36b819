#!/usr/bin/env bash
# postgres.sh — a private PostgreSQL server in a local directory, for tests and scripts.
#
#   scripts/lib/postgres.sh start [--tuned] DIR [WATCH_PID]
#                                                    prints "port=P socket=DIR user=vigil password_file=DIR/password"
#   scripts/lib/postgres.sh stop DIR                 stops it (fast) and removes DIR
#   scripts/lib/postgres.sh pause DIR | resume DIR   pg_ctl stop -m fast / start again, same port (outage tests)
#   scripts/lib/postgres.sh restart DIR              pg_ctl restart -m fast (scripts/soak.sh --cluster)
#
# Debian's `postgresql` server (initdb, pg_ctl from /usr/lib/postgresql/*/bin). PostgreSQL
# refuses to run as root, so the cluster belongs to a system user, `vigiltest` (created with
# `useradd --system` when missing), and runs as it through runuser. The data directory is
# DIR/data, the Unix socket is in DIR, and TCP listens on 127.0.0.1 only, on a free port.
# fsync and synchronous_commit are on, as in production: what a test measures is durable.
# The superuser `vigil` logs in without a password over the socket and with the password in
# DIR/password (scram-sha-256) over TCP, so both connection forms get exercised.
# The default server is small (shared_buffers 64MB, PostgreSQL's WAL and checkpoint defaults), as
# the tests want: many of them start at once. `--tuned` sizes it for heavy ingest
# (scripts/load-postgresql.sh, scripts/cluster-density.sh), as docs/STORAGE.md, "Server settings
# for heavy ingest", advises an operator to: 2GB of shared buffers, 64MB of WAL buffers, WAL
# compressed with lz4, and checkpoints at most every 30 minutes or 16GB of WAL. Durability is
# untouched by it: fsync, synchronous_commit and full_page_writes stay on. VIGIL_PG_SETTINGS
# (lines of `name = value`) is appended after either set, to try other values.
# With WATCH_PID, a watchdog stops the server and removes DIR once that process is gone, so
# a killed test run leaves nothing running.
set -euo pipefail

PGUSER_OS=vigiltest
die() { echo "postgres.sh: $*" >&2; exit 1; }

pg_bin() {
    local d
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        [ -x "$d/initdb" ] && { echo "$d"; return 0; }
    done
    die "no initdb under /usr/lib/postgresql/*/bin (install Debian's postgresql)"
}

as_pg() { runuser -u "$PGUSER_OS" -- "$@"; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# What --tuned adds (docs/STORAGE.md, "Server settings for heavy ingest", says why each).
TUNED_SETTINGS="shared_buffers = 2GB
wal_buffers = 64MB
wal_compression = lz4
max_wal_size = 16GB
min_wal_size = 2GB
checkpoint_timeout = 30min
checkpoint_completion_target = 0.9"

start() {
    local tuned=0
    [ "${1:-}" = --tuned ] && { tuned=1; shift; }
    local dir=${1:-} watch=${2:-} bin port
    [ -n "$dir" ] || die "start needs a directory"
    bin=$(pg_bin)
    if ! id -u "$PGUSER_OS" >/dev/null 2>&1; then
        useradd --system --no-create-home --shell /usr/sbin/nologin "$PGUSER_OS" 2>/dev/null || id -u "$PGUSER_OS" >/dev/null
    fi
    mkdir -p "$dir"
    chmod 0755 "$dir"
    as_pg test -x "$dir" || die "$PGUSER_OS cannot reach $dir (make its parent directories searchable, e.g. chmod 0711)"
    head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$dir/password"
    chown "$PGUSER_OS" "$dir"
    chmod 0644 "$dir/password"
    as_pg "$bin/initdb" -D "$dir/data" -U vigil --pwfile="$dir/password" --auth-local=trust \
        --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
    chmod 0600 "$dir/password"
    port=$(free_port)
    cat >>"$dir/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
fsync = on
synchronous_commit = on
max_connections = 200
full_page_writes = on
shared_buffers = 64MB
logging_collector = off
log_checkpoints = on
EOF
    if [ "$tuned" = 1 ]; then printf '%s\n' "$TUNED_SETTINGS" >>"$dir/data/postgresql.conf"; fi
    if [ -n "${VIGIL_PG_SETTINGS:-}" ]; then printf '%s\n' "$VIGIL_PG_SETTINGS" >>"$dir/data/postgresql.conf"; fi
    echo "$port" > "$dir/port"
    as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null \
        || { cat "$dir/server.log" >&2; die "pg_ctl start failed"; }
    if [ -n "$watch" ]; then
        # Detached from the caller's pipes, so the caller's reads end when this script does.
        setsid bash -c "while kill -0 $watch 2>/dev/null && [ -d '$dir/data' ]; do sleep 1; done
                        [ -d '$dir/data' ] && { runuser -u $PGUSER_OS -- '$bin/pg_ctl' -D '$dir/data' -m immediate stop; rm -rf '$dir'; }" \
            </dev/null >/dev/null 2>&1 &
    fi
    echo "port=$port socket=$dir user=vigil password_file=$dir/password"
}

stop() {
    local dir=$1 bin
    bin=$(pg_bin)
    [ -d "$dir/data" ] && as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
}

pause() {
    as_pg "$(pg_bin)/pg_ctl" -D "$1/data" -m fast -w stop >/dev/null
}

resume() {
    as_pg "$(pg_bin)/pg_ctl" -D "$1/data" -l "$1/server.log" -w -t 60 start >/dev/null
}

restart() {
    as_pg "$(pg_bin)/pg_ctl" -D "$1/data" -l "$1/server.log" -m fast -w -t 60 restart >/dev/null
}

case "${1:-}" in
    start) shift; start "$@" ;;
    stop) stop "${2:?stop needs a directory}" ;;
    pause) pause "${2:?pause needs a directory}" ;;
    resume) resume "${2:?resume needs a directory}" ;;
    restart) restart "${2:?restart needs a directory}" ;;
    *) echo "usage: postgres.sh start [--tuned] DIR [WATCH_PID] | stop DIR | pause DIR | resume DIR | restart DIR" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# cluster.sh — a cluster on this machine: three collectors on one private PostgreSQL, and agents
# spread over them (docs/OPERATIONS.md, "Cluster").
#
#   scripts/cluster.sh start    install what is missing, build (release), start everything, print
#                               the console and API URLs, the admin token and how to stop
#   scripts/cluster.sh stop     stop the agents, the collectors and PostgreSQL; no process is left
#   scripts/cluster.sh status   each process (pid, running or not, RSS) and each collector's /healthz
#
# Everything lives in one directory, VIGIL_CLUSTER_DIR (./cluster):
#   pg/          the database cluster (scripts/lib/postgres.sh: Debian's server run as the
#                unprivileged user `vigiltest`, Unix socket in pg/, TCP on 127.0.0.1 only)
#   c1/ c2/ c3/  each collector's data_dir, holding the same collector_key (agents pin it)
#   cN.conf      each collector's configuration: store = postgresql, the shared admin token
#   agent-N/     each agent's state_dir (its key, rules and spool); agent-N.conf its configuration
#   access.key   the project's access key, made once with `vigil-collector keys create`
#   admin_token  the one bearer token of every collector's API and console
#   pids         what `stop` stops; *.log the programs' logs
# A second `start` reuses them (the database, keys and agent identities survive `stop`);
# `rm -rf` the directory (after `stop`) starts afresh. `start` refuses while the cluster runs.
#
# Collector N (1-3) takes agent sessions on 127.0.0.N:PORT (agents have one `server_port` for
# all their collectors, so the collectors differ by address) and serves its API, console and
# /metrics on 127.0.0.1:HTTP_PORT+N-1. Agent i lists all three collectors, starting at collector
# (i mod 3)+1 (rotated), so the agents spread over them and each fails over to the others; it
# takes IPA datagrams on udp 127.0.0.1:IPA_PORT+i.
#
# Environment: VIGIL_CLUSTER_DIR (./cluster), VIGIL_CLUSTER_AGENTS (6), VIGIL_CLUSTER_PORT (6600),
# VIGIL_CLUSTER_HTTP_PORT (6680), VIGIL_CLUSTER_IPA_PORT (51712), VIGIL_BIN (a directory holding
# vigil-collector and vigil-agent already built: no build), VIGIL_CLUSTER_PROJECT (demo).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

DIR=${VIGIL_CLUSTER_DIR:-./cluster}
AGENTS=${VIGIL_CLUSTER_AGENTS:-6}
PORT=${VIGIL_CLUSTER_PORT:-6600}
HTTP_PORT=${VIGIL_CLUSTER_HTTP_PORT:-6680}
IPA_PORT=${VIGIL_CLUSTER_IPA_PORT:-51712}
PROJECT=${VIGIL_CLUSTER_PROJECT:-demo}
COLLECTORS=3
case "$AGENTS$PORT$HTTP_PORT$IPA_PORT" in
    *[!0-9]*) echo "cluster.sh: VIGIL_CLUSTER_AGENTS and the ports must be whole numbers" >&2; exit 2 ;;
esac
case "$DIR" in /*) ;; *) DIR=$ROOT/${DIR#./} ;; esac

die() { echo "cluster.sh: $*" >&2; exit 1; }
http_of() { echo $((HTTP_PORT + $1 - 1)); }

# Pids recorded by `start` ("name pid" lines) that are still one of ours (a recycled pid is not).
live_pids() {
    [ -f "$DIR/pids" ] || return 0
    local name pid
    while read -r name pid; do
        [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q "$DIR" \
            && echo "$name $pid"
    done < "$DIR/pids"
    return 0
}

pg_running() { [ -f "$DIR/pg/data/postmaster.pid" ] && kill -0 "$(head -1 "$DIR/pg/data/postmaster.pid")" 2>/dev/null; }

start() {
    local running
    running=$(live_pids)
    if [ -n "$running" ] || pg_running; then
        die "already running in $DIR ($(echo "$running" | awk '{printf "%s %s, ", $1, $2}')PostgreSQL $(pg_running && echo running || echo stopped)); scripts/cluster.sh stop first"
    fi
    source scripts/lib/deps.sh
    vigil_ensure_deps
    local bin=${VIGIL_BIN:-}
    if [ -z "$bin" ]; then
        echo "== building (release) =="
        swift build -c release --product vigil-collector
        swift build -c release --product vigil-agent
        bin=$(swift build -c release --show-bin-path)
    fi
    for b in vigil-collector vigil-agent; do [ -x "$bin/$b" ] || die "$bin/$b missing"; done
    mkdir -p "$DIR"
    chmod 0711 "$DIR"   # the server's user must reach $DIR/pg
    : > "$DIR/pids"
    # From here on a failure (die, or a failed command under set -e) stops what was started.
    STARTING=1
    trap 'if [ "$STARTING" = 1 ]; then echo "cluster.sh: start failed; stopping what was started" >&2; stop >/dev/null 2>&1 || true; fi' EXIT

    echo "== PostgreSQL ($DIR/pg) =="
    if [ -d "$DIR/pg/data" ]; then
        bash scripts/lib/postgres.sh resume "$DIR/pg" || die "cannot start PostgreSQL again (log: $DIR/pg/server.log)"
    else
        bash scripts/lib/postgres.sh start "$DIR/pg" >/dev/null || die "cannot create the database cluster in $DIR/pg"
        psql -X -q -h "$DIR/pg" -p "$(cat "$DIR/pg/port")" -U vigil -d postgres -c "CREATE DATABASE vigil" \
            || die "cannot create the database"
    fi
    local pgport url i
    pgport=$(cat "$DIR/pg/port")
    url="host=$DIR/pg port=$pgport user=vigil dbname=vigil"

    [ -s "$DIR/admin_token" ] || (umask 077; head -c 24 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=' > "$DIR/admin_token")
    for i in $(seq $COLLECTORS); do
        (umask 077; cat > "$DIR/c$i.conf" <<EOF
# collector $i of the cluster in $DIR (written by scripts/cluster.sh)
listen = 127.0.0.$i:$PORT
http_listen = 127.0.0.1:$(http_of "$i")
data_dir = $DIR/c$i
store = postgresql
postgresql_url = $url
admin_token = $(cat "$DIR/admin_token")
log_level = info
EOF
        )
    done
    if [ ! -s "$DIR/access.key" ]; then
        # One key on the shared store, made through collector 1; its collector_key goes to the others.
        (umask 077; "$bin/vigil-collector" keys create --project "$PROJECT" --create-project --config "$DIR/c1.conf" \
            > "$DIR/access.key.new" 2> "$DIR/keys.log") || die "keys create failed: $(cat "$DIR/keys.log")"
        mv "$DIR/access.key.new" "$DIR/access.key"
    fi
    for i in $(seq 2 $COLLECTORS); do
        mkdir -p "$DIR/c$i"; chmod 0700 "$DIR/c$i"
        cp -p "$DIR/c1/collector_key" "$DIR/c$i/collector_key"
    done

    echo "== collectors =="
    for i in $(seq $COLLECTORS); do
        setsid "$bin/vigil-collector" run --config "$DIR/c$i.conf" </dev/null >/dev/null 2>> "$DIR/c$i.log" &
        echo "collector-$i $!" >> "$DIR/pids"
    done
    for i in $(seq $COLLECTORS); do
        local ok=0
        for _ in $(seq 300); do
            curl -sf -m 2 "http://127.0.0.1:$(http_of "$i")/healthz" >/dev/null 2>&1 && { ok=1; break; }
            sleep 0.1
        done
        [ $ok = 1 ] || { tail -5 "$DIR/c$i.log" >&2; die "collector $i is not healthy (log: $DIR/c$i.log)"; }
    done

    echo "== agents =="
    local hosts=() order j
    for i in $(seq $COLLECTORS); do hosts+=("127.0.0.$i"); done
    for i in $(seq 0 $((AGENTS - 1))); do
        order=""
        for j in $(seq 0 $((COLLECTORS - 1))); do order+="${order:+,}${hosts[$(( (i + j) % COLLECTORS ))]}"; done
        (umask 077; cat > "$DIR/agent-$i.conf" <<EOF
# agent $i of the cluster in $DIR (written by scripts/cluster.sh)
server_host = $order
server_port = $PORT
access_key = $(cat "$DIR/access.key")
agent_name = cluster-agent-$i
state_dir = $DIR/agent-$i
ipa_port = $((IPA_PORT + i))
aggregation_interval_ms = 5000
status_interval_ms = 5000
reconnect_interval_min = 1000
reconnect_interval_max = 3000
log_level = info
EOF
        )
        setsid "$bin/vigil-agent" run --config "$DIR/agent-$i.conf" </dev/null >/dev/null 2>> "$DIR/agent-$i.log" &
        echo "agent-$i $!" >> "$DIR/pids"
    done
    STARTING=0

    local token
    token=$(cat "$DIR/admin_token")
    cat <<EOF

The cluster runs: PostgreSQL on $DIR/pg (port $pgport), $COLLECTORS collectors, $AGENTS agents.
EOF
    for i in $(seq $COLLECTORS); do
        echo "  collector $i: agents 127.0.0.$i:$PORT, console and API http://127.0.0.1:$(http_of "$i")/ (log $DIR/c$i.log)"
    done
    cat <<EOF
  agents: IPA datagrams to udp 127.0.0.1:$IPA_PORT-$((IPA_PORT + AGENTS - 1)); logs $DIR/agent-N.log

Admin token (every collector): $token
  curl -s -H "Authorization: Bearer $token" http://127.0.0.1:$HTTP_PORT/api/v1/agents
  printf '0\tGET\tapi.example.com\t/v1/products/7\t12.5\n' > /dev/udp/127.0.0.1/$IPA_PORT
Status: scripts/cluster.sh status      Stop: scripts/cluster.sh stop
EOF
}

stop() {
    local running pids=() name pid
    running=$(live_pids)
    # Agents first (they drain to the collectors), then the collectors, then the database.
    for kind in agent collector; do
        pids=()
        while read -r name pid; do
            [[ $name == $kind-* ]] && pids+=("$pid")
        done <<<"$running"
        [ ${#pids[@]} -gt 0 ] || continue
        for pid in "${pids[@]}"; do kill -CONT "$pid" 2>/dev/null || true; kill -TERM "$pid" 2>/dev/null || true; done
        # Not our children (start has returned): poll, then SIGKILL what is left after 10 s.
        for _ in $(seq 100); do
            local alive=0
            for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
            [ $alive = 0 ] && break
            sleep 0.1
        done
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && { echo "cluster.sh: $kind pid $pid did not exit; SIGKILL" >&2; kill -KILL "$pid" 2>/dev/null || true; }; done
    done
    if pg_running; then
        pid=$(head -1 "$DIR/pg/data/postmaster.pid")
        bash scripts/lib/postgres.sh pause "$DIR/pg" || die "pg_ctl stop failed (log: $DIR/pg/server.log)"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$DIR/pids"
    echo "stopped (data kept in $DIR; rm -rf it to start afresh)"
}

status() {
    local name pid state rss i code body
    if [ ! -f "$DIR/pids" ]; then
        echo "not running (no $DIR/pids)"
    else
        while read -r name pid; do
            if kill -0 "$pid" 2>/dev/null; then
                state=running
                [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = T ] && state=stopped
                rss=$(awk '/^VmRSS:/ {print $2 " KiB"}' "/proc/$pid/status" 2>/dev/null)
            else
                state=gone; rss=-
            fi
            printf '%-12s pid %-8s %-8s RSS %s\n' "$name" "$pid" "$state" "$rss"
        done < "$DIR/pids"
    fi
    printf '%-12s %s\n' postgresql "$(pg_running && echo "running (pid $(head -1 "$DIR/pg/data/postmaster.pid"), port $(cat "$DIR/pg/port"))" || echo "not running")"
    for i in $(seq $COLLECTORS); do
        body=$(curl -s -m 2 -w '\n%{http_code}' "http://127.0.0.1:$(http_of "$i")/healthz" 2>/dev/null || true)
        code=$(tail -1 <<<"$body"); body=$(sed '$d' <<<"$body" | tr -d '\n')
        printf 'collector-%s  GET http://127.0.0.1:%s/healthz → %s %s\n' "$i" "$(http_of "$i")" "${code:-000}" "$body"
    done
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' ;;
    *) echo "usage: scripts/cluster.sh start|stop|status (see --help)" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# soak-cluster.sh — `scripts/soak.sh --cluster`: three collectors on one private PostgreSQL, steady
# load, faults on a schedule, control requests throughout, and the proof that nothing acknowledged
# was lost or stored twice.
#
#   scripts/soak.sh --cluster [--seconds N] [--agents N] [--udp-rate N] [--keep]
#
# Builds in release mode, then on loopback, every file in a temporary directory:
#   - a private PostgreSQL (scripts/lib/postgres.sh: Debian's server as the unprivileged
#     `vigiltest` user, fsync and synchronous_commit on) and three collectors with
#     `store = postgresql` on it: collector N (`collector_id` soak-cN: the default, host name and
#     listen port, would be the same for all three) takes sessions on 127.0.0.N:PORT and serves
#     HTTP on 127.0.0.1:PORT+79+N; one collector_key, one admin token, one access key made once;
#   - three `vigil-load density` processes, AGENTS/3 simulated agents each (Status and a batch of
#     10 aggregates every 10 s), each with the collectors in a rotated order, each writing its
#     acknowledgement ledger;
#   - three real vigil-agents (disk spool on, the collectors in a rotated order), each fed
#     UDP_RATE single-record IPA datagrams/s.
# Faults, at fixed fractions of the run: kill -9 of the collector holding the most sessions (15%;
# restarted at 30%), a PostgreSQL restart (`pg_ctl restart -m fast`, 45%), and the collector
# then holding the most sessions stopped with SIGSTOP for 30 s (60%), then SIGCONT. Throughout,
# every 2 s, a control request — capture stop, capture start, or a configuration PUT, in turn —
# for a real agent is sent to a running collector that does not hold its session (so it is
# relayed to the holder through the database); each answer is classified against docs/API.md,
# per endpoint: 200 ok (its documented body), 202 staged (configuration only), 409 not connected
# (capture only), 422 rejected by the agent, 504 no answer in time (its timeout_ms, not before it
# passed) / disconnected, 500 store error, 503 store overloaded / shutting down. Any other answer,
# none within 20 s, or 409/202 for an agent whose session stayed on a running collector from a
# lease (10 s) before the request to its answer, is a violation; so is a `control_commands` row
# left without a result past its deadline.
# At the end: the senders stop, vigil-load and the agents drain and exit, the collectors stop,
# the measurements are copied from PostgreSQL into a SQLite file and every ledger is checked with
# `vigil-load verify --shared-db`: acknowledged records lost (must be 0), rows stored twice (must
# be 0; the store's de-duplication is shared, so a batch re-sent to another collector after a
# failover is stored once), and the real agents' records matched vs stored. Prints one line
# `soak-cluster: key=value …`, writes results/soak-cluster-<UTC time>.json, exits 1 on any
# violation. Stops everything it started, also on failure and Ctrl-C.
#
# Options (or environment): --seconds N (SOAK_SECONDS, 600; at least 120: the 30 s pause and the
# restarts need the room), --agents N (AGENTS, 1500 simulated), --udp-rate N (UDP_RATE, 500
# datagrams/s per real agent), --keep (keep the temporary directory). PORT (27900: sessions;
# +80..+82 HTTP; +100..+102 the agents' UDP), outside the ephemeral port range.
set -euo pipefail
cd "$(dirname "$0")/.."

SOAK_SECONDS=${SOAK_SECONDS:-600}
AGENTS=${AGENTS:-1500}
UDP_RATE=${UDP_RATE:-500}
PORT=${PORT:-27900}
KEEP=0
while [ $# -gt 0 ]; do
    case "$1" in
        --cluster) shift ;;
        --seconds) SOAK_SECONDS=$2; shift 2 ;;
        --agents) AGENTS=$2; shift 2 ;;
        --udp-rate) UDP_RATE=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "soak.sh --cluster: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done
case "$SOAK_SECONDS$AGENTS$UDP_RATE$PORT" in *[!0-9]*) echo "soak.sh --cluster: whole numbers expected" >&2; exit 2 ;; esac
[ "$SOAK_SECONDS" -ge 120 ] || { echo "soak.sh --cluster: --seconds must be at least 120 (the fault schedule needs the room)" >&2; exit 2; }
[ "$AGENTS" -ge 3 ] || { echo "soak.sh --cluster: --agents must be at least 3" >&2; exit 2; }
T=$SOAK_SECONDS
N=3
PER_LOAD=$((AGENTS / N))
STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
read -r EPH_LO EPH_HI < /proc/sys/net/ipv4/ip_local_port_range
if [ "$PORT" -le "$EPH_HI" ] && [ $((PORT + 102)) -ge "$EPH_LO" ]; then
    echo "soak.sh --cluster: PORT=$PORT overlaps net.ipv4.ip_local_port_range ($EPH_LO-$EPH_HI); choose a port outside it" >&2
    exit 2
fi

source scripts/lib/deps.sh
source scripts/lib/procs.sh
vigil_ensure_deps curl

DIR=$(mktemp -d /tmp/vigil-soak-cluster.XXXXXX)
chmod 0711 "$DIR"   # the server's user must reach $DIR/pg
PIDS=()
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    touch "$DIR/controls.stop" 2>/dev/null || true
    vigil_stop_pids "${PIDS[@]}"
    bash scripts/lib/postgres.sh stop "$DIR/pg" >/dev/null 2>&1 || true
    if [ "$KEEP" = 1 ]; then echo "kept $DIR" >&2; else rm -rf "$DIR"; fi
    exit "$status"
}
trap cleanup EXIT
trap 'echo "soak.sh --cluster: interrupted" >&2; exit 130' INT TERM

fail() { echo "soak.sh --cluster: $*" >&2; exit 1; }
T0=$(date +%s)
say() { printf '[%4ss] %s\n' "$(( $(date +%s) - T0 ))" "$*" >&2; }
VIOLATIONS=()
violation() { VIOLATIONS+=("$1"); say "VIOLATION: $1"; }

need=$((AGENTS + 400))
if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt "$need" ]; then
    fail "need $need descriptors for $AGENTS agents on one collector, but the hard limit is $(ulimit -Hn); use --agents $(( $(ulimit -Hn) - 400 )) or fewer"
fi
ulimit -Sn "$(ulimit -Hn)"

say "build (release)"
for product in vigil-collector vigil-agent vigil-load; do
    swift build -c release --product "$product" 2>&1 | grep -E "error|Build" >&2 || true
done
BIN=$(swift build -c release --show-bin-path)
for b in vigil-collector vigil-agent vigil-load; do [ -x "$BIN/$b" ] || fail "$b was not built"; done
mkdir -p "$DIR/bin"
gcc -O2 -Wall -o "$DIR/bin/udp_blast" scripts/bench/udp_blast.c

# --- helpers ---------------------------------------------------------------
start() {   # start OUT LOG CMD…: background, sets LAST
    local out=$1 log=$2; shift 2
    "$@" > "$out" 2>> "$log" &
    LAST=$!
    PIDS+=("$LAST")
}
forget() { local p keep=(); for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done; PIDS=("${keep[@]}"); }
reap() { local s=0; { wait "$1"; } 2>/dev/null || s=$?; forget "$1"; return $s; }
wait_line() {   # wait_line FILE PATTERN SECONDS PID
    for _ in $(seq $(($3 * 10))); do
        grep -q -- "$2" "$1" 2>/dev/null && return 0
        kill -0 "$4" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}
field() { tr ' ' '\n' <<<"$2" | sed -n "/^$1=/{s/^$1=//p;q}"; }
jnum() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" <<<"$2"; }
http_of() { echo $((PORT + 79 + $1)); }
metric() {   # metric N NAME LABELS
    curl -sf -m 2 "http://127.0.0.1:$(http_of "$1")/metrics" | awk -v n="$2{$3}" '$1 == n && !done {print $2; done = 1}'
}
established() { local v; v=$(metric "$1" vigil_sessions 'phase="established"' || true); echo "${v:-0}"; }
# State of collector N for the control sender: up, dead or paused (files, so a subshell reads them).
mark() { echo "$2" > "$DIR/state.$1"; }
is_up() { [ "$(cat "$DIR/state.$1" 2>/dev/null)" = up ]; }
most_sessions() {   # the running collector holding the most established sessions
    local i best=0 n max=-1
    for i in $(seq $N); do
        is_up "$i" || continue
        n=$(established "$i")
        [ "$n" -gt "$max" ] && { max=$n; best=$i; }
    done
    echo "$best"
}
healthy_all() { local i; for i in $(seq $N); do curl -sf -m 2 "http://127.0.0.1:$(http_of "$i")/healthz" >/dev/null || return 1; done; }
total_established() { local i s=0; for i in $(seq $N); do is_up "$i" && s=$((s + $(established "$i"))); done; echo $s; }
api() {   # api N PATH: GET with the admin token
    curl -sf -m 5 -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$(http_of "$1")/api/v1/$2"
}

declare -A CPID
start_collector() {   # start_collector N
    local before n
    before=$(grep -c ' ready ' "$DIR/c$1.log" 2>/dev/null || true)
    start /dev/null "$DIR/c$1.log" "$BIN/vigil-collector" run --config "$DIR/c$1.conf"
    CPID[$1]=$LAST
    for _ in $(seq 300); do
        n=$(grep -c ' ready ' "$DIR/c$1.log" 2>/dev/null || true)
        if [ "${n:-0}" -gt "${before:-0}" ]; then mark "$1" up; return 0; fi
        kill -0 "${CPID[$1]}" 2>/dev/null || break
        sleep 0.1
    done
    tail -5 "$DIR/c$1.log" >&2
    fail "collector $1 did not start"
}
rotated() {   # rotated K: the collectors' addresses starting at collector (K mod 3)+1
    local j out=""
    for j in $(seq 0 $((N - 1))); do out+="${out:+,}127.0.0.$(( (K_ + j) % N + 1 ))"; done
    echo "$out"
}

# --- set up ------------------------------------------------------------------
say "PostgreSQL"
bash scripts/lib/postgres.sh start "$DIR/pg" $$ >/dev/null || fail "cannot start PostgreSQL"
PGPORT=$(cat "$DIR/pg/port")
psql_() { psql -X -q -h "$DIR/pg" -p "$PGPORT" -U vigil "$@"; }
psql_ -d postgres -c "CREATE DATABASE vigil"
(umask 077; head -c 24 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=' > "$DIR/admin_token")
TOKEN=$(cat "$DIR/admin_token")
for i in $(seq $N); do
    (umask 077; cat > "$DIR/c$i.conf" <<EOF
listen = 127.0.0.$i:$PORT
http_listen = 127.0.0.1:$(http_of "$i")
collector_id = soak-c$i
data_dir = $DIR/c$i
store = postgresql
postgresql_url = host=$DIR/pg port=$PGPORT user=vigil dbname=vigil
admin_token = $TOKEN
max_clients = $((AGENTS + 1000))
max_handshakes_per_address = $((AGENTS + 1000))
log_level = info
EOF
    )
done
"$BIN/vigil-collector" keys create --project soak --create-project --config "$DIR/c1.conf" > "$DIR/key" 2> "$DIR/keys.log" \
    || fail "keys create failed: $(cat "$DIR/keys.log")"
for i in $(seq 2 $N); do mkdir -p "$DIR/c$i"; chmod 700 "$DIR/c$i"; cp -p "$DIR/c1/collector_key" "$DIR/c$i/"; done
start_collector 1
# The filter rules go into the shared store before the other collectors start.
curl -sf -m 5 -H "Authorization: Bearer $TOKEN" -X PUT "http://127.0.0.1:$(http_of 1)/api/v1/projects/soak/patterns" \
    -d '{"patterns":[{"method":"GET","host":"api.example.com","path":"/v1/users/*","monitor":"api","check":"get-user"}]}' >/dev/null \
    || fail "cannot set the filter rules"
for i in $(seq 2 $N); do start_collector "$i"; done
say "collectors: $(for i in $(seq $N); do printf '%s pid %s on 127.0.0.%s:%s; ' "$i" "${CPID[$i]}" "$i" "$PORT"; done)"

declare -A AGENT_PID AGENT_ID
for k in $(seq 0 $((N - 1))); do
    K_=$k
    cat > "$DIR/agent-$k.conf" <<EOF
server_host = $(rotated)
server_port = $PORT
access_key = $(cat "$DIR/key")
agent_name = soak-agent-$k
state_dir = $DIR/agent-$k
ipa_port = $((PORT + 100 + k))
aggregation_interval_ms = 2000
status_interval_ms = 5000
tcp_so_timeout = 4000
tcp_connection_timeout = 3000
reconnect_interval_min = 500
reconnect_interval_max = 1000
log_level = info
EOF
    chmod 600 "$DIR/agent-$k.conf"
    start /dev/null "$DIR/agent-$k.log" "$BIN/vigil-agent" run --config "$DIR/agent-$k.conf"
    AGENT_PID[$k]=$LAST
done
for k in $(seq 0 $((N - 1))); do
    wait_line "$DIR/agent-$k.log" "filter rules installed" 30 "${AGENT_PID[$k]}" || { tail -5 "$DIR/agent-$k.log" >&2; fail "agent $k did not connect"; }
    AGENT_ID[$k]=$(api 1 "agents?search=soak-agent-$k" | grep -o '"id":"[^"]*"' | head -1 | cut -d'"' -f4)
    [ -n "${AGENT_ID[$k]}" ] || fail "agent soak-agent-$k is not listed by collector 1"
done

declare -A LOAD_PID
for k in $(seq 0 $((N - 1))); do
    K_=$k
    collectors=$(rotated | sed "s/,/:$PORT,/g; s/\$/:$PORT/")
    start "$DIR/load-$k.out" "$DIR/load-$k.log" "$BIN/vigil-load" density --key-file "$DIR/key" \
        --collector "$collectors" --agents "$PER_LOAD" --rate 1000 --duration $((T + 3600)) \
        --silence 4 --connect-timeout 3 --drain 15 --ledger "$DIR/ledger-$k" --json "$DIR/load-$k.json" --prefix "cl$k" --report-interval 10
    LOAD_PID[$k]=$LAST
done
for k in $(seq 0 $((N - 1))); do
    wait_line "$DIR/load-$k.log" " ramp complete " 120 "${LOAD_PID[$k]}" || { tail -5 "$DIR/load-$k.log" >&2; fail "vigil-load $k did not ramp up"; }
done
say "sessions: $(for i in $(seq $N); do printf 'collector %s %s; ' "$i" "$(established "$i")"; done)"

SEND_S=$((T - 15))
declare -A BLAST_PID
for k in $(seq 0 $((N - 1))); do
    start "$DIR/blast-$k.out" "$DIR/blast-$k.log" "$DIR/bin/udp_blast" ipa $((PORT + 100 + k)) "$SEND_S" "$UDP_RATE" 8 1
    BLAST_PID[$k]=$LAST
done
T0=$(date +%s)   # the schedule counts from here
say "steady load: $AGENTS simulated agents, $N real agents at $UDP_RATE datagrams/s each for ${SEND_S}s; faults follow"

# --- control requests, every 2 s, to a collector that does not hold the agent --------------
# One line per request: t (its start) action agent holder sent_to http_code error seconds class
# held; holder is the collector of the agent's latest "uplink established" line, "X>Y" when that
# changed while the request ran; held is "yes" when the agent's session stayed on that running
# collector from at least a lease (10 s) before the request until its answer — the agent was
# connected to the cluster throughout, so "not connected" (409) or "staged" (202) would be wrong.
link_of() {   # link_of K: "H MS" — H the collector of agent K's latest uplink event (0: lost), MS its time
    local l h ts
    l=$(grep -E ' (uplink established|uplink: session lost|uplink: collector unreachable|uplink: no collector reachable)' \
        "$DIR/agent-$1.log" | tail -1 || true)
    [ -n "$l" ] || { echo "0 0"; return; }
    ts=$(date -d "${l%% *}" +%s%3N 2>/dev/null || echo 0)
    case "$l" in
        *" uplink established "*) h=$(sed -n 's/.*collector=127\.0\.0\.\([0-9]\):.*/\1/p' <<<"$l") ;;
        *) h=0 ;;
    esac
    echo "${h:-0} $ts"
}
controls() {
    local n=0 k action holder after to code err secs cls body url method data h t tmo before link held start_ms
    while [ ! -f "$DIR/controls.stop" ]; do
        k=$((n % N)); action=$(( (n / N) % 3 ))
        n=$((n + 1))
        before=$(link_of "$k")
        holder=$(grep ' uplink established ' "$DIR/agent-$k.log" | tail -1 | sed -n 's/.*collector=127\.0\.0\.\([0-9]\):.*/\1/p')
        to=""
        for h in $(seq 0 $((N - 1))); do
            h=$(( (n + h) % N + 1 ))
            [ "$h" != "${holder:-0}" ] && is_up "$h" && { to=$h; break; }
        done
        if [ -z "$to" ]; then sleep 2; continue; fi
        case $action in
            0) method=POST; url="agents/${AGENT_ID[$k]}/capture?timeout_ms=5000"; data='{"action":"stop"}'; action=capture_stop; tmo=5000 ;;
            1) method=POST; url="agents/${AGENT_ID[$k]}/capture?timeout_ms=5000"; data='{"action":"start"}'; action=capture_start; tmo=5000 ;;
            *) method=PUT; url="agents/${AGENT_ID[$k]}/config"; data="{\"status_interval_ms\":\"$(( 4 + n % 2 ))s\"}"; action=config_put; tmo=10000 ;;
        esac
        t=$(( $(date +%s) - T0 ))
        start_ms=$(date +%s%3N)
        held=no
        if [ "${before%% *}" != 0 ] && is_up "${before%% *}" && [ $(( start_ms - ${before#* } )) -ge 10000 ]; then held=yes; fi
        : > "$DIR/control.body"
        body=$(curl -s -m 20 -o "$DIR/control.body" -w '%{http_code} %{time_total}' -X "$method" \
            -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$(http_of "$to")/api/v1/$url" -d "$data" 2>/dev/null) || true
        code=${body%% *}; secs=${body#* }
        err=$(sed -n 's/.*"error":"\([^"]*\)".*/\1/p' "$DIR/control.body" 2>/dev/null | head -1)
        link=$(link_of "$k")
        { [ "$link" = "$before" ] && is_up "${before%% *}"; } || held=no
        after=$(grep ' uplink established ' "$DIR/agent-$k.log" | tail -1 | sed -n 's/.*collector=127\.0\.0\.\([0-9]\):.*/\1/p')
        [ "${after:-0}" = "${holder:-0}" ] || holder="${holder:-none}>${after:-none}"
        # docs/API.md, per endpoint: capture answers 200/409/422/504/500/503, a configuration PUT
        # 200/202/422/504/500/503 (an agent connected nowhere is staged, never 409); each success
        # body as documented, a 504 "did not answer" only once its timeout_ms has passed.
        case "$action:$code:$err" in
            capture_*:200:*)
                grep -q '"result":"ok"' "$DIR/control.body" && grep -q "\"action\":\"${action#capture_}\"" "$DIR/control.body" \
                    && cls=ok || cls=undocumented ;;
            config_put:200:*)
                grep -q '"result":"ok"' "$DIR/control.body" && grep -q '"applied":\["status_interval_ms"\]' "$DIR/control.body" \
                    && cls=ok || cls=undocumented ;;
            config_put:202:*)
                grep -q '"result":"staged"' "$DIR/control.body" && grep -q '"staged":\["status_interval_ms"\]' "$DIR/control.body" \
                    && cls=staged || cls=undocumented ;;
            capture_*:409:"agent not connected") cls=not_connected ;;
            *:422:"rejected by the agent") cls=rejected ;;
            *:504:"agent did not answer")
                if grep -q "\"timeout_ms\":$tmo[,}]" "$DIR/control.body" && awk -v s="$secs" -v m="$tmo" 'BEGIN {exit !(s * 1000 >= m - 50)}'; then
                    cls=timeout
                else
                    cls=undocumented
                fi ;;
            *:504:"agent disconnected before answering") cls=disconnected ;;
            *:500:"store error"|config_put:500:"applied by the agent but not saved") cls=store_error ;;
            *:503:"store overloaded"|*:503:"shutting down") cls=unavailable ;;
            *:000:*) cls=no_answer ;;
            *) cls=undocumented ;;
        esac
        # Answered as connected nowhere while its session stayed on a running collector.
        if [ "$held" = yes ] && { [ "$cls" = not_connected ] || [ "$cls" = staged ]; }; then cls="${cls}_while_held"; fi
        # A collector killed or paused while it was answering is the fault, not the API.
        if [ "$cls" = no_answer ] && ! is_up "$to"; then cls=cut_by_fault; fi
        err=${err// /_}
        printf '%s %s %s %s %s %s %s %s %s %s\n' "$t" "$action" "soak-agent-$k" "${holder:-none}" "$to" \
            "$code" "${err:--}" "$secs" "$cls" "$held" >> "$DIR/controls.txt"
        sleep 2
    done
}
: > "$DIR/controls.txt"
controls &
CONTROLS_PID=$!
PIDS+=("$CONTROLS_PID")

# --- faults ------------------------------------------------------------------
FAULTS=()
failover_wait() {   # seconds until the running collectors hold every session again
    local t0 want=$(( PER_LOAD * N + N ))
    t0=$(date +%s.%N)
    for _ in $(seq 900); do
        if [ "$(total_established)" -ge "$want" ]; then awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}'; return 0; fi
        sleep 0.1
    done
    echo timeout
}
KILLED=""
kill_most() {
    local x t
    x=$(most_sessions)
    mark "$x" dead
    kill -KILL "${CPID[$x]}"
    reap "${CPID[$x]}" || true
    KILLED=$x
    say "kill -9 collector $x (it held the most sessions)"
    t=$(failover_wait)
    FAULTS+=("failover_kill_s=$t")
    [ "$t" = timeout ] && violation "after kill -9 of collector $x the others did not hold every session within 90 s"
    say "every session held by the other collectors after ${t}s"
}
restart_killed() {
    [ -n "$KILLED" ] || return 0
    start_collector "$KILLED"
    say "collector $KILLED restarted (pid ${CPID[$KILLED]})"
    KILLED=""
}
pg_restart() {
    local t0 t
    t0=$(date +%s.%N)
    bash scripts/lib/postgres.sh restart "$DIR/pg" || violation "pg_ctl restart failed"
    say "PostgreSQL restarted (pg_ctl restart -m fast)"
    for _ in $(seq 600); do healthy_all && break; sleep 0.1; done
    t=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
    healthy_all || { t=timeout; violation "a collector's /healthz was not 200 within 60 s of the PostgreSQL restart"; }
    FAULTS+=("pg_restart_healthy_s=$t")
    say "every collector healthy again after ${t}s"
}
pause_most() {
    local y t0 t
    y=$(most_sessions)
    t0=$(date +%s)
    mark "$y" paused
    kill -STOP "${CPID[$y]}"
    say "SIGSTOP collector $y (it held the most sessions)"
    t=$(failover_wait)
    FAULTS+=("failover_pause_s=$t")
    [ "$t" = timeout ] && violation "with collector $y stopped the others did not hold every session within 90 s"
    say "every session held by the other collectors after ${t}s"
    while [ $(( $(date +%s) - t0 )) -lt 30 ]; do sleep 0.5; done
    kill -CONT "${CPID[$y]}"
    mark "$y" up
    say "SIGCONT collector $y after 30 s"
}
check_alive() {
    local i k
    for i in $(seq $N); do
        if is_up "$i" && ! kill -0 "${CPID[$i]}" 2>/dev/null; then
            violation "collector $i exited on its own: $(tail -2 "$DIR/c$i.log" | tr '\n' ' ')"; mark "$i" dead
        fi
    done
    for k in $(seq 0 $((N - 1))); do
        kill -0 "${AGENT_PID[$k]}" 2>/dev/null || fail "agent $k exited on its own: $(tail -2 "$DIR/agent-$k.log" | tr '\n' ' ')"
        kill -0 "${LOAD_PID[$k]}" 2>/dev/null || fail "vigil-load $k exited on its own: $(tail -2 "$DIR/load-$k.log" | tr '\n' ' ')"
    done
}
at() { echo $(( T * $1 / 100 )); }
SCHEDULE=("$(at 15) kill" "$(at 30) restart" "$(at 45) pg" "$(at 60) pause")
next=0
while :; do
    now=$(( $(date +%s) - T0 ))
    [ "$now" -ge "$T" ] && break
    if [ $next -lt ${#SCHEDULE[@]} ]; then
        read -r when what <<<"${SCHEDULE[$next]}"
        if [ "$now" -ge "$when" ]; then
            next=$((next + 1))
            check_alive
            case $what in
                kill) kill_most ;;
                restart) restart_killed ;;
                pg) pg_restart ;;
                pause) pause_most ;;
            esac
        fi
    fi
    sleep 1
done
restart_killed
check_alive

# --- the end -------------------------------------------------------------------
say "end of the schedule: stopping the senders and the control requests, then draining"
touch "$DIR/controls.stop"
reap "$CONTROLS_PID" || true
sent=0
for k in $(seq 0 $((N - 1))); do
    reap "${BLAST_PID[$k]}" || true
    sent=$((sent + $(sed -n 's/.* sent=\([0-9]*\).*/\1/p' "$DIR/blast-$k.out")))
done
sleep 12   # two status intervals: the agents' last counters reach the store
matched=0 item_drops=0
for k in $(seq 0 $((N - 1))); do
    best=""
    for i in $(seq $N); do
        j=$(api "$i" "agents/${AGENT_ID[$k]}" || true)
        grep -q '"records_matched"' <<<"$j" || continue
        if [ -z "$best" ] || [ "$(jnum records_matched "$j")" -gt "$(jnum records_matched "$best")" ]; then best=$j; fi
    done
    [ -n "$best" ] || { violation "no collector reports soak-agent-$k's counters"; continue; }
    matched=$((matched + $(jnum records_matched "$best")))
    for c in drops_queue1 drops_inflight_evicted drops_unencodable; do v=$(jnum "$c" "$best"); item_drops=$((item_drops + ${v:-0})); done
done
load_lost=0 bogus=0
for k in $(seq 0 $((N - 1))); do
    kill -TERM "${LOAD_PID[$k]}"
    reap "${LOAD_PID[$k]}" || violation "vigil-load $k exited non-zero: $(tail -2 "$DIR/load-$k.log" | tr '\n' ' ')"
    s=$(sed -n 's/^load-run: //p' "$DIR/load-$k.out")
    bogus=$((bogus + $(field bogus_acks "$s" | grep . || echo 1)))
    load_lost=$((load_lost + $(field sessions_lost "$s" | grep . || echo 0)))
done
[ "$bogus" = 0 ] || violation "acknowledgements for batches never sent: $bogus"
drained=0
for k in $(seq 0 $((N - 1))); do
    kill -TERM "${AGENT_PID[$k]}"
    reap "${AGENT_PID[$k]}" || violation "agent $k exited non-zero"
    grep -q "drained; exiting" "$DIR/agent-$k.log" && drained=$((drained + 1))
done
for i in $(seq $N); do
    kill -TERM "${CPID[$i]}" 2>/dev/null || true
    reap "${CPID[$i]}" || violation "collector $i exited non-zero on SIGTERM"
done

# The measurements, copied into a SQLite file of the same columns for `vigil-load verify --shared-db`.
psql_ -d vigil -c "\\copy (SELECT id, project_id, agent_id, monitor, check_name, source FROM series) TO '$DIR/series.tsv'"
psql_ -d vigil -c "\\copy (SELECT series_id, ts_ms, count FROM measurements) TO '$DIR/measurements.tsv'"
python3 - "$DIR" <<'EOF'
import sqlite3, sys
d = sys.argv[1]
db = sqlite3.connect(f"{d}/shared.db")
db.executescript("""
CREATE TABLE series (id INTEGER PRIMARY KEY, project_id INTEGER, agent_id TEXT, monitor TEXT, check_name TEXT, source TEXT);
CREATE TABLE measurements (series_id INTEGER, ts_ms INTEGER, count INTEGER);
""")
with open(f"{d}/series.tsv") as f:
    db.executemany("INSERT INTO series VALUES (?,?,?,?,?,?)", (l.rstrip("\n").split("\t") for l in f))
with open(f"{d}/measurements.tsv") as f:
    db.executemany("INSERT INTO measurements VALUES (?,?,?)", (l.rstrip("\n").split("\t") for l in f))
db.execute("CREATE INDEX m_ts ON measurements(ts_ms)")
db.commit()
EOF
acked=0 lost=0 dups=0 dups_all=0
for k in $(seq 0 $((N - 1))); do
    v=$("$BIN/vigil-load" verify --ledger "$DIR/ledger-$k" --shared-db "$DIR/shared.db" 2> "$DIR/verify-$k.log") || true
    [ -n "$v" ] || { violation "verify of ledger $k failed: $(tail -2 "$DIR/verify-$k.log")"; continue; }
    say "ledger $k: $v"
    acked=$((acked + $(field acked_records "$v"))); lost=$((lost + $(field lost_records "$v")))
    dups=$((dups + $(field duplicate_rows "$v"))); dups_all=$(field duplicate_rows_all "$v")
done
[ "$lost" = 0 ] || violation "acknowledged records lost: $lost"
[ "$dups" = 0 ] && [ "${dups_all:-1}" = 0 ] || violation "rows stored twice: $dups of the simulated agents, ${dups_all:-?} in all"
ids=$(for k in $(seq 0 $((N - 1))); do printf "'%s'," "${AGENT_ID[$k]}"; done | sed 's/,$//')
stored=$(psql_ -d vigil -At -c "SELECT COALESCE(SUM(m.count), 0) FROM measurements m JOIN series s ON s.id = m.series_id WHERE s.agent_id IN ($ids)")
missing=n/a
if [ "$item_drops" = 0 ] && [ "$drained" = "$N" ]; then
    missing=$((matched - stored))
    [ "$missing" = 0 ] || violation "the real agents' records: $matched matched, $stored stored (difference $missing)"
else
    say "real agents' records not compared exactly (item drops $item_drops, $drained of $N drained)"
fi

# Control requests by class; anything undocumented or unanswered, or "not connected"/"staged" for
# an agent whose session stayed on a running collector, is a violation.
classes=$(awk '{c[$9]++} END {for (k in c) printf "%s=%d ", k, c[k]}' "$DIR/controls.txt")
bad=$(awk '$9 == "undocumented" || $9 == "no_answer" || $9 ~ /_while_held$/' "$DIR/controls.txt")
[ -z "$bad" ] || violation "control requests answered outside docs/API.md: $(head -3 <<<"$bad" | tr '\n' ';')"
controls_n=$(wc -l < "$DIR/controls.txt")
slowest=$(awk 'BEGIN {m = 0} $8 + 0 > m {m = $8 + 0} END {printf "%.1f", m}' "$DIR/controls.txt")
say "control requests: $controls_n ($classes); slowest answer ${slowest}s"
say "control answers by action: $(awk '{c[$2 "/" $6 "/" $9]++} END {for (k in c) printf "%s=%d ", k, c[k]}' "$DIR/controls.txt")"
say "control timeouts (t action holder sent_to seconds): $(awk '$9 == "timeout" || $9 == "disconnected" {printf "%s %s %s %s %s; ", $1, $2, $4, $5, $8}' "$DIR/controls.txt")"

# The relayed commands as the database holds them, the collectors stopped: every row past its
# deadline carries an outcome (the owner's, or the asker's `timeout`); none is left open.
relayed=$(psql_ -d vigil -At -F= -c "SELECT COALESCE(result, 'open'), count(*) FROM control_commands GROUP BY 1 ORDER BY 1" | tr '\n' ' ') \
    || violation "cannot read control_commands"
open_rows=$(psql_ -d vigil -At -F' ' -c "SELECT id, agent_id, kind, owner, asker, deadline_ms - created_ms, taken_ms IS NOT NULL
    FROM control_commands WHERE result IS NULL AND deadline_ms < (extract(epoch FROM clock_timestamp()) * 1000)::bigint ORDER BY id") \
    || violation "cannot read control_commands"
relayed_open=$(grep -c . <<<"$open_rows" || true)
say "relayed commands in control_commands: ${relayed:-none}"
[ "$relayed_open" = 0 ] || violation "control_commands rows with no result past their deadline: $relayed_open (id agent kind owner asker timeout_ms taken: $(head -3 <<<"$open_rows" | tr '\n' ';'))"

summary="seconds=$T agents=$AGENTS real_agents=$N acked_records=$acked lost_records=$lost duplicate_rows=$dups duplicate_rows_all=${dups_all:-?}"
summary+=" real_datagrams_sent=$sent real_records_matched=$matched real_records_stored=${stored:-?} real_records_missing=$missing"
for f in "${FAULTS[@]}"; do summary+=" $f"; done
summary+=" sessions_lost=$load_lost control_requests=$controls_n"
for c in $classes; do summary+=" control_$c"; done
summary+=" control_slowest_s=$slowest"
for c in $relayed; do summary+=" relayed_$c"; done
summary+=" relayed_open_past_deadline=$relayed_open"
summary+=" load_average=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' '/') violations=${#VIOLATIONS[@]}"

mkdir -p results
OUT="results/soak-cluster-$(date -u +%Y%m%dT%H%M%SZ).json"
{
    printf '{\n  "script": "scripts/soak.sh --cluster", "started": "%s", "commit": "%s", "seconds": %s, "agents": %s, "udp_rate": %s,\n' \
        "$STARTED" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" "$T" "$AGENTS" "$UDP_RATE"
    printf '  "machine": {"cpus": %s, "kernel": "%s"},\n  "summary": "%s",\n  "violations": [' "$(nproc)" "$(uname -r)" "$summary"
    sep=""; for v in "${VIOLATIONS[@]}"; do printf '%s"%s"' "$sep" "${v//\"/\'}"; sep=", "; done
    printf '],\n  "controls": ['
    sep=""
    while read -r t action agent holder to code err secs cls held; do
        printf '%s\n    {"t": %s, "action": "%s", "agent": "%s", "holder": "%s", "sent_to": "%s", "status": %s, "error": "%s", "seconds": %s, "class": "%s", "held": "%s"}' \
            "$sep" "$t" "$action" "$agent" "$holder" "$to" "$((10#$code))" "$err" "$secs" "$cls" "$held"
        sep=","
    done < "$DIR/controls.txt"
    printf '\n  ]\n}\n'
} > "$OUT"
say "results: $OUT"
echo "soak-cluster: $summary"
if [ ${#VIOLATIONS[@]} -gt 0 ]; then
    printf 'soak.sh --cluster: %s\n' "${VIOLATIONS[@]}" >&2
    exit 1
fi

#!/usr/bin/env bash
# soak.sh — steady load with faults on a schedule, and the proof that nothing acknowledged was lost.
#
#   scripts/soak.sh [--minutes N] [--agents N] [--udp-rate N] [--keep]
#
# Builds in release mode, then on loopback, every file in a temporary directory:
#   - two collectors that share nothing but their place in the agents' list: A on 127.0.0.1:PORT,
#     B on 127.0.0.2:PORT, each with its own data directory (B's database starts as a copy of A's
#     freshly provisioned one, so the project's access key is valid on both, and B gets A's
#     collector_key, as every collector of one installation must: agents pin it);
#   - `vigil-load density` with AGENTS simulated agents (Status and a batch every 10 s each),
#     collectors A,B in that order, writing its acknowledgement ledger;
#   - a real vigil-agent (same collector list) fed UDP_RATE single-record IPA datagrams/s.
# Faults, at fixed fractions of the run: agent SIGHUP reloads (a changed key, later a broken file,
# then fixed), garbage TCP connections, silent connections and a wrong access key at the collector,
# malformed datagrams at the agent, kill -9 of the active collector A (restarted once the standby
# holds every session), kill -9 of B (now active; restarted likewise), and A stopped with SIGSTOP
# for 20 s while active (a collector that stops reading), then resumed.
# At the end: the UDP sender finishes, vigil-load and the agent drain and exit, the collectors
# stop, and `vigil-load verify` checks every acknowledged batch in the database of the collector
# that acknowledged it. Prints acknowledged records lost (must be 0), duplicates stored (must be
# 0), the real agent's records matched vs stored, failover times, memory growth and descriptor
# counts of every process (end vs start), one line `soak: key=value …`, writes
# results/soak-<UTC time>.json, and exits 1 on any violation. Stops everything it started,
# also on failure and Ctrl-C.
#
# Options (or environment): --minutes N (MINUTES, 10), --agents N (AGENTS, 1000),
# --udp-rate N (UDP_RATE, 2000 datagrams/s), --keep (keep the temporary directory).
# Environment: PORT (27900: both collectors; +80/+81 their HTTP; +100 agent UDP).
#
#   scripts/soak.sh --cluster [--seconds N] [--agents N] [--udp-rate N] [--keep]
# runs the cluster soak instead: three collectors on one PostgreSQL (scripts/soak-cluster.sh,
# where its options and figures are described; SOAK_SECONDS sets its length).
set -euo pipefail
cd "$(dirname "$0")/.."
for a in "$@"; do [ "$a" = --cluster ] && exec bash scripts/soak-cluster.sh "$@"; done

MINUTES=${MINUTES:-10}
AGENTS=${AGENTS:-1000}
UDP_RATE=${UDP_RATE:-2000}
PORT=${PORT:-27900}
KEEP=0
while [ $# -gt 0 ]; do
    case "$1" in
        --minutes) MINUTES=$2; shift 2 ;;
        --agents) AGENTS=$2; shift 2 ;;
        --udp-rate) UDP_RATE=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "soak.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done
case "$MINUTES$AGENTS$UDP_RATE" in *[!0-9]*) echo "soak.sh: whole numbers expected" >&2; exit 2 ;; esac
[ "$MINUTES" -ge 2 ] || { echo "soak.sh: --minutes must be at least 2 (the fault schedule needs the room)" >&2; exit 2; }
T=$((MINUTES * 60))
HTTP_A=$((PORT + 80)) HTTP_B=$((PORT + 81)) UDP=$((PORT + 100))
STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)

# Listeners must sit outside the ephemeral range: with 10^4 client connections on this host, a
# port in it is soon some connection's local port, and a collector restarted on it would fail to
# bind (EADDRINUSE).
read -r EPH_LO EPH_HI < /proc/sys/net/ipv4/ip_local_port_range
if [ "$PORT" -le "$EPH_HI" ] && [ $((PORT + 102)) -ge "$EPH_LO" ]; then
    echo "$(basename "$0"): PORT=$PORT overlaps net.ipv4.ip_local_port_range ($EPH_LO-$EPH_HI); choose a port outside it" >&2
    exit 2
fi

source scripts/lib/deps.sh
source scripts/lib/procs.sh
vigil_ensure_deps curl

DIR=$(mktemp -d /tmp/vigil-soak.XXXXXX)
PIDS=()
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    vigil_stop_pids "${PIDS[@]}"
    if [ "$KEEP" = 1 ]; then echo "kept $DIR" >&2; else rm -rf "$DIR"; fi
    exit "$status"
}
trap cleanup EXIT
trap 'echo "soak.sh: interrupted" >&2; exit 130' INT TERM

fail() { echo "soak.sh: $*" >&2; exit 1; }
T0=$(date +%s)
say() { printf '[%4ss] %s\n' "$(( $(date +%s) - T0 ))" "$*" >&2; }
VIOLATIONS=()
violation() { VIOLATIONS+=("$1"); say "VIOLATION: $1"; }

need=$((AGENTS + 400))   # one per session, ~300 of the collector's own
if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt "$need" ]; then
    ulimit -Hn "$need" 2>/dev/null \
        || fail "need $need descriptors for $AGENTS agents, but the hard limit is $(ulimit -Hn) and cannot be raised here; use --agents $(( $(ulimit -Hn) - 400 )) or fewer"
fi
ulimit -Sn "$need"

say "build (release)"
for product in vigil-collector vigil-agent vigil-load; do
    swift build -c release --product "$product" 2>&1 | grep -E "error|Compiling|Build" >&2 || true
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
reap() { local s=0; { wait "$1"; } 2>/dev/null || s=$?; forget "$1"; return $s; }   # quietly: killed jobs are expected
wait_line() {   # wait_line FILE PATTERN SECONDS PID
    for _ in $(seq $(($3 * 10))); do
        grep -q -- "$2" "$1" 2>/dev/null && return 0
        kill -0 "$4" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
fds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
jnum() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" <<<"$2"; }   # jnum KEY JSON: the last numeric "KEY":N
field() { tr ' ' '\n' <<<"$2" | sed -n "/^$1=/{s/^$1=//p;q}"; }
http_of() { [ "$1" = A ] && echo "$HTTP_A" || echo "$HTTP_B"; }
metric() {   # metric A|B NAME [LABELS]
    local n=$2
    [ -n "${3:-}" ] && n="$2{$3}"
    curl -sf -m 2 "http://127.0.0.1:$(http_of "$1")/metrics" | awk -v n="$n" '$1 == n && !done {print $2; done = 1}'
}
established() { local v; v=$(metric "$1" vigil_sessions 'phase="established"' || true); echo "${v:-0}"; }
all_sessions() { local v s=0 p; for p in handshake established closing; do v=$(metric "$1" vigil_sessions "phase=\"$p\"" || true); s=$((s + ${v:-0})); done; echo $s; }

declare -A CPID
collector_conf() {   # collector_conf A|B
    local ip=127.0.0.1 http=$HTTP_A
    [ "$1" = B ] && { ip=127.0.0.2; http=$HTTP_B; }
    cat > "$DIR/$1.conf" <<EOF
listen = $ip:$PORT
http_listen = 127.0.0.1:$http
data_dir = $DIR/$1
max_clients = $((AGENTS + 1000))
# every simulated agent connects from this one address
max_handshakes_per_address = $((AGENTS + 1000))
log_level = info
EOF
}
start_collector() {   # start_collector A|B
    local before
    before=$(grep -c ' ready ' "$DIR/$1.log" 2>/dev/null || true)
    start /dev/null "$DIR/$1.log" "$BIN/vigil-collector" run --config "$DIR/$1.conf"
    CPID[$1]=$LAST
    for _ in $(seq 300); do
        [ "$(grep -c ' ready ' "$DIR/$1.log" 2>/dev/null || true)" -gt "${before:-0}" ] && return 0
        kill -0 "${CPID[$1]}" 2>/dev/null || break
        sleep 0.1
    done
    tail -5 "$DIR/$1.log" >&2
    fail "collector $1 did not start"
}
set_patterns() {   # set_patterns A|B
    curl -sf -m 5 -H "Authorization: Bearer $(cat "$DIR/$1/admin_token")" -X PUT \
        "http://127.0.0.1:$(http_of "$1")/api/v1/projects/soak/patterns" \
        -d '{"patterns":[{"method":"GET","host":"api.example.com","path":"/v1/users/*","monitor":"api","check":"get-user"}]}' >/dev/null \
        || fail "cannot set the filter rules on collector $1"
}
# failover FROM TO: seconds until TO holds every session (all simulated agents and the real one).
failover() {
    local t0 t1 want=$((AGENTS + 1))
    t0=$(date +%s.%N)
    for _ in $(seq 600); do
        [ "$(established "$2")" -ge "$want" ] && { t1=$(date +%s.%N); awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}'; return 0; }
        sleep 0.1
    done
    echo "timeout"
}

# Memory and descriptors: a sample every 10 s of each process (the collectors by incarnation).
: > "$DIR/samples.txt"
sample() {
    local t name pid
    t=$(( $(date +%s) - T0 ))
    for name in load agent A B; do
        case $name in load) pid=$LOAD_PID ;; agent) pid=$AGENT_PID ;; *) pid=${CPID[$name]} ;; esac
        kill -0 "$pid" 2>/dev/null || continue
        kill -0 "$pid" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$pid/stat")" = T ] && continue   # stopped: skip
        local sess=0
        case $name in A|B) sess=$(all_sessions "$name") ;; load) sess=$(grep -o 'sessions=[0-9]*' "$DIR/load.log" | tail -1 | cut -d= -f2) ;; esac
        echo "$t $name $pid $(rss_kb "$pid") $(fds "$pid") ${sess:-0}" >> "$DIR/samples.txt"
    done
}
check_alive() {   # a process that died without being killed is a violation
    local name
    for name in A B; do
        if [ -n "${CPID[$name]:-}" ] && [ -z "${KILLED[$name]:-}" ] && ! kill -0 "${CPID[$name]}" 2>/dev/null; then
            violation "collector $name (pid ${CPID[$name]}) exited on its own: $(tail -2 "$DIR/$name.log" | tr '\n' ' ')"
            KILLED[$name]=dead
        fi
    done
    kill -0 "$AGENT_PID" 2>/dev/null || { violation "the agent exited on its own: $(tail -2 "$DIR/agent.log" | tr '\n' ' ')"; fail "cannot go on"; }
    kill -0 "$LOAD_PID" 2>/dev/null || { violation "vigil-load exited on its own: $(tail -2 "$DIR/load.log" | tr '\n' ' ')"; fail "cannot go on"; }
}
declare -A KILLED

# --- set up ------------------------------------------------------------------
collector_conf A; collector_conf B
"$BIN/vigil-collector" keys create --project soak --create-project --config "$DIR/A.conf" > "$DIR/key" 2>/dev/null || fail "keys create failed"
mkdir -p "$DIR/B"; chmod 700 "$DIR/B"
for f in vigil.db vigil.db-wal vigil.db-shm collector_key; do [ -f "$DIR/A/$f" ] && cp -p "$DIR/A/$f" "$DIR/B/$f"; done
start_collector A; start_collector B
set_patterns A; set_patterns B
say "collectors: A pid ${CPID[A]} on 127.0.0.1:$PORT, B pid ${CPID[B]} on 127.0.0.2:$PORT"

cat > "$DIR/agent.conf" <<EOF
server_host = 127.0.0.1,127.0.0.2
server_port = $PORT
access_key = $(cat "$DIR/key")
agent_name = soak-agent
state_dir = $DIR/agent-state
ipa_port = $UDP
aggregation_interval_ms = 2000
status_interval_ms = 5000
tcp_so_timeout = 4000
tcp_connection_timeout = 3000
reconnect_interval_min = 500
reconnect_interval_max = 1000
log_level = info
EOF
chmod 600 "$DIR/agent.conf"
start /dev/null "$DIR/agent.log" "$BIN/vigil-agent" run --config "$DIR/agent.conf"
AGENT_PID=$LAST
wait_line "$DIR/agent.log" "filter rules installed" 30 "$AGENT_PID" || { tail -5 "$DIR/agent.log" >&2; fail "the agent did not connect"; }

start "$DIR/load.out" "$DIR/load.log" "$BIN/vigil-load" density --key-file "$DIR/key" \
    --collector "127.0.0.1:$PORT,127.0.0.2:$PORT" --agents "$AGENTS" --rate 2000 --duration $((T + 3600)) \
    --silence 4 --connect-timeout 3 --drain 15 --ledger "$DIR/ledger" --json "$DIR/load.json" --prefix soak --report-interval 10
LOAD_PID=$LAST
wait_line "$DIR/load.log" " ramp complete " 120 "$LOAD_PID" || { tail -5 "$DIR/load.log" >&2; fail "vigil-load did not ramp up"; }
say "$(grep ' ramp complete ' "$DIR/load.log" | sed 's/.* ramp complete/ramp complete:/')"

SEND_S=$((T - 20))
start "$DIR/blast.out" "$DIR/blast.log" "$DIR/bin/udp_blast" ipa "$UDP" "$SEND_S" "$UDP_RATE" 8 1
BLAST_PID=$LAST
say "steady load: $AGENTS simulated agents on A, the agent on A with $UDP_RATE datagrams/s for ${SEND_S}s; faults follow"

# --- faults ------------------------------------------------------------------
hup_agent() {   # hup_agent SED-EXPRESSION NOTE
    sed -i "$1" "$DIR/agent.conf"
    kill -HUP "$AGENT_PID"
    say "agent SIGHUP: $2"
}
garbage() {
    local i pids=()
    for i in $(seq 20); do   # random bytes, then close
        timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT && head -c $((i * 97)) /dev/urandom >&3" 2>/dev/null || true
    done
    for i in $(seq 10); do   # connect and say nothing (the collector's handshake timeout ends them)
        timeout 8 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT && sleep 7" 2>/dev/null &
        pids+=($!)
    done
    for i in $(seq 200); do   # malformed and unmatched datagrams at the agent (counted drops, not records)
        printf 'garbage line %d\n9\tGET\tx\t/\t1\n0\tGET\tapi.example.com\t/v1/users/1\tnot-a-number\n0\tGET\tother.example.com\t/x\t5\n' "$i" \
            > "/dev/udp/127.0.0.1/$UDP" 2>/dev/null || true
    done
    # A wrong access key (same project and collector key, another secret): refused by every handshake.
    "$BIN/vigil-load" density --key "soak.$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=' | cut -c1-43).$(cut -d. -f3 "$DIR/key")" \
        --collector "127.0.0.1:$PORT" --agents 20 --duration 1 --ramp-timeout 3 --drain 0 --report-interval 0 --prefix badkey \
        > "$DIR/badkey.out" 2> "$DIR/badkey.log" || true
    wait "${pids[@]}" 2>/dev/null || true
    say "garbage: 20 random-byte and 10 silent connections, 800 bad or unmatched datagrams, 20 sessions with a wrong key ($(field handshakes "$(sed -n 's/^load-run: //p' "$DIR/badkey.out")") accepted)"
}
kill_collector() {   # kill_collector X Y: kill -9 X (active), measure the failover to Y, restart X
    local t
    kill -KILL "${CPID[$1]}"
    KILLED[$1]=1
    reap "${CPID[$1]}" || true
    say "kill -9 collector $1"
    t=$(failover "$1" "$2")
    FAILOVER+=("kill_$1=$t")
    [ "$t" = timeout ] && violation "after kill -9 of $1, collector $2 did not hold every session within 60 s"
    say "failover to $2: ${t}s"
    sleep 3
    unset "KILLED[$1]"
    start_collector "$1"
    say "collector $1 restarted (pid ${CPID[$1]})"
}
stop_collector() {   # stop_collector X Y SECONDS: SIGSTOP X (active) for SECONDS, measure failover to Y
    local t t0
    t0=$(date +%s)
    kill -STOP "${CPID[$1]}"
    say "SIGSTOP collector $1 (it stops reading)"
    t=$(failover "$1" "$2")
    FAILOVER+=("stop_$1=$t")
    [ "$t" = timeout ] && violation "with $1 stopped, collector $2 did not hold every session within 60 s"
    say "failover to $2: ${t}s"
    while [ $(( $(date +%s) - t0 )) -lt "$3" ]; do sleep 0.5; done
    kill -CONT "${CPID[$1]}"
    say "SIGCONT collector $1"
}
FAILOVER=()
at() { echo $(( T * $1 / 100 )); }
SCHEDULE=(
    "$(at 8)  sample0"
    "$(at 10) hup1"
    "$(at 15) garbage"
    "$(at 25) killA"
    "$(at 45) hup2"
    "$(at 50) killB"
    "$(at 65) stopA"
    "$(at 80) garbage"
    "$(at 88) hupbroken"
)
next=0 last_sample=-10
START_FDS=""
while :; do
    now=$(( $(date +%s) - T0 ))
    [ "$now" -ge "$T" ] && break
    if [ $next -lt ${#SCHEDULE[@]} ]; then
        read -r when what <<<"${SCHEDULE[$next]}"
        if [ "$now" -ge "$when" ]; then
            next=$((next + 1))
            check_alive
            case $what in
                sample0) sample; START_FDS=done; say "start sample: $(tail -4 "$DIR/samples.txt" | awk '{printf "%s rss=%sKiB fds=%s  ", $2, $4, $5}')" ;;
                hup1) hup_agent 's/^status_interval_ms = .*/status_interval_ms = 4000/' "status_interval_ms 5000 → 4000" ;;
                hup2) hup_agent 's/^reconnect_interval_max = .*/reconnect_interval_max = 1500/' "reconnect_interval_max 1000 → 1500" ;;
                hupbroken)
                    echo "no_such_key = 1" >> "$DIR/agent.conf"
                    kill -HUP "$AGENT_PID"; sleep 2
                    grep -q "no_such_key" "$DIR/agent.log" && say "agent SIGHUP with a broken file: refused, running configuration kept" \
                        || violation "the agent did not report the broken configuration file"
                    sed -i '/^no_such_key/d' "$DIR/agent.conf"
                    kill -HUP "$AGENT_PID"; say "agent SIGHUP: file fixed" ;;
                garbage) garbage ;;
                killA) kill_collector A B ;;
                killB) kill_collector B A ;;
                stopA) stop_collector A B 20 ;;
            esac
        fi
    fi
    if [ $((now - last_sample)) -ge 10 ] && [ -n "$START_FDS" ]; then sample; last_sample=$now; fi
    sleep 1
done

# --- the end -------------------------------------------------------------------
check_alive
say "end of the schedule: stopping the sender, then draining"
reap "$BLAST_PID" || true
sent=$(sed -n 's/.* sent=\([0-9]*\).*/\1/p' "$DIR/blast.out")
sleep 12   # two status intervals: the agent's last counters reach the collector
sample
cp "$DIR/samples.txt" "$DIR/samples.end"
agent_json=""
for c in B A; do
    j=$(curl -sf -m 5 -H "Authorization: Bearer $(cat "$DIR/$c/admin_token")" "http://127.0.0.1:$(http_of "$c")/api/v1/agents" || true)
    grep -q '"records_matched"' <<<"$j" || continue
    m=$(jnum records_matched "$j")
    if [ -z "$agent_json" ] || [ "$m" -gt "$(jnum records_matched "$agent_json")" ]; then agent_json=$j; fi
done
counter() { jnum "$1" "$agent_json"; }
matched=$(counter records_matched); agent_kernel_drops=$(counter drops_kernel)
q1=$(counter drops_queue1); ev=$(counter drops_inflight_evicted); un=$(counter drops_unencodable)
item_drops=$(( ${q1:-0} + ${ev:-0} + ${un:-0} ))

kill -TERM "$LOAD_PID"
reap "$LOAD_PID" || violation "vigil-load exited non-zero: $(tail -2 "$DIR/load.log" | tr '\n' ' ')"
load_summary=$(sed -n 's/^load-run: //p' "$DIR/load.out")
kill -TERM "$AGENT_PID"
reap "$AGENT_PID" || violation "the agent exited non-zero"
agent_drained=0
grep -q "drained; exiting" "$DIR/agent.log" && agent_drained=1
[ $agent_drained = 1 ] || say "agent: $(grep 'exiting with data not delivered' "$DIR/agent.log" | tail -1)"
for c in A B; do
    [ -z "${KILLED[$c]:-}" ] || continue
    kill -TERM "${CPID[$c]}" 2>/dev/null || true
    reap "${CPID[$c]}" || violation "collector $c exited non-zero on SIGTERM"
done

verify=$("$BIN/vigil-load" verify --ledger "$DIR/ledger" --db "$DIR/A/vigil.db" --db "$DIR/B/vigil.db" 2> "$DIR/verify.log") || true
say "$verify"
[ -n "$verify" ] || violation "verify failed: $(cat "$DIR/verify.log")"
lost=$(field lost_records "$verify"); dups=$(field duplicate_rows_all "$verify")
stored=$(field other_agent_records "$verify")
[ "${lost:-1}" = 0 ] || violation "acknowledged records lost: ${lost:-unknown}"
[ "${dups:-1}" = 0 ] || violation "duplicate rows stored: ${dups:-unknown}"
[ "$(field bogus_acks "$load_summary")" = 0 ] || violation "acks for batches never sent: $(field bogus_acks "$load_summary")"
missing=n/a
if [ -n "$matched" ] && [ "$item_drops" = 0 ] && [ $agent_drained = 1 ]; then
    missing=$((matched - stored))
    [ "$missing" = 0 ] || violation "the agent's records: $matched matched, $stored stored (difference $missing)"
else
    say "agent records not compared exactly (matched=${matched:-?}, item drops=$item_drops, drained=$agent_drained)"
fi

# Memory and descriptors, first sample after warm-up vs the last, per process incarnation.
growth=""
declare -A INCARNATION
while read -r name pid; do
    INCARNATION[$name]=$(( ${INCARNATION[$name]:-0} + 1 ))
    label=$name
    case $name in A|B) label="$name${INCARNATION[$name]}" ;; esac
    first=$(awk -v n="$name" -v p="$pid" '$2 == n && $3 == p {print; exit}' "$DIR/samples.end")
    last=$(awk -v n="$name" -v p="$pid" '$2 == n && $3 == p {l = $0} END {print l}' "$DIR/samples.end")
    read -r t1 _ _ r1 f1 s1 <<<"$first"; read -r t2 _ _ r2 f2 s2 <<<"$last"
    [ "$t1" = "$t2" ] && continue
    say "$name (pid $pid, ${t1}s→${t2}s): RSS ${r1}→${r2} KiB ($((r2 - r1)) KiB), descriptors ${f1}→${f2}, sessions ${s1}→${s2}"
    growth+=" ${label}_rss_kib=${r1}:${r2} ${label}_fds=${f1}:${f2}"
    # Descriptors beyond one per session must not grow (vigil-load and collectors hold one per session).
    extra=$(( (f2 - s2) - (f1 - s1) ))
    [ "$name" = agent ] && extra=$((f2 - f1))
    [ "$extra" -le 8 ] || violation "$name (pid $pid): $extra more descriptors (beyond its sessions) at the end than at the start"
    if [ "$name" = load ] || [ "$name" = agent ]; then
        [ $((r2 - r1)) -le $((r1 / 2 + 32768)) ] || violation "$name: RSS grew from $r1 to $r2 KiB"
    fi
done < <(awk '!seen[$2 " " $3]++ {print $2, $3}' "$DIR/samples.end")

summary="minutes=$MINUTES agents=$AGENTS acked_records=$(field acked_records "$verify") lost_records=${lost:-?} duplicate_rows=${dups:-?}"
summary+=" cross_collector_batches=$(field cross_collector_batches "$verify") agent_datagrams_sent=${sent:-?} agent_records_matched=${matched:-?}"
summary+=" agent_records_stored=${stored:-?} agent_records_missing=$missing agent_kernel_drops=${agent_kernel_drops:-?}"
for f in "${FAILOVER[@]}"; do summary+=" failover_${f%%=*}_s=${f#*=}"; done
summary+=" sessions_lost=$(field sessions_lost "$load_summary") reconnect_gap_max_ms=$(field reconnect_gap_max_ms "$load_summary")"
summary+="$growth violations=${#VIOLATIONS[@]}"
summary=$(tr -s ' ' <<<"$summary" | sed 's/^ //')

mkdir -p results
OUT="results/soak-$(date -u +%Y%m%dT%H%M%SZ).json"
{
    printf '{\n  "script": "scripts/soak.sh", "started": "%s", "commit": "%s", "minutes": %s, "agents": %s, "udp_rate": %s,\n' \
        "$STARTED" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" "$MINUTES" "$AGENTS" "$UDP_RATE"
    printf '  "machine": {"cpus": %s, "kernel": "%s"},\n' "$(nproc)" "$(uname -r)"
    printf '  "summary": "%s",\n  "verify": "%s",\n  "vigil_load": %s,\n' "$summary" "$verify" "$(cat "$DIR/load.json" 2>/dev/null || echo null)"
    printf '  "violations": ['
    sep=""; for v in "${VIOLATIONS[@]}"; do printf '%s"%s"' "$sep" "${v//\"/\'}"; sep=", "; done
    printf '],\n  "samples": ['
    sep=""
    while read -r t name pid rss nfd sess; do
        printf '%s\n    {"t": %s, "process": "%s", "pid": %s, "rss_kib": %s, "fds": %s, "sessions": %s}' "$sep" "$t" "$name" "$pid" "$rss" "$nfd" "$sess"
        sep=","
    done < "$DIR/samples.end"
    printf '\n  ]\n}\n'
} > "$OUT"
say "results: $OUT"
echo "soak: $summary"
if [ ${#VIOLATIONS[@]} -gt 0 ]; then
    printf 'soak.sh: %s\n' "${VIOLATIONS[@]}" >&2
    exit 1
fi

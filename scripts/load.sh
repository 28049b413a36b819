#!/usr/bin/env bash
# load.sh — Vigil's load figures in one bounded run (docs/PERFORMANCE.md, "Load and soak").
#
#   scripts/load.sh [--agents N] [--rate N] [--hold S] [--ingest-s S] [--quick] [--keep]
#   scripts/load.sh --store postgresql [--ingest-s S] [--ingest-agents N] [--quick] [--keep]
#
# With `--store postgresql`: only the ingest figures, into a private PostgreSQL beside a raw COPY
# of as many rows into the same schema (scripts/load-postgresql.sh does it).
#
# Builds in release mode, then, on loopback, with every file in a temporary directory:
#  1. Session density: a vigil-collector and `vigil-load density` ramping to N simulated agents
#     (default 10,000; above ~25,000 vigil-load binds several 127.0.0.x source addresses), each
#     handshaking and then sending a Status and a DataBatch of aggregates every 10 s, held for
#     HOLD s: sessions held, handshakes/s, collector RSS per session and CPU, loop lag.
#  2. Ingest: `vigil-load ingest` saturating the same collector; records/s acknowledged (the
#     collector acknowledges only after COMMIT), then `vigil-load verify` checks every
#     acknowledged record is in the database; beside it the raw SQLite insert rate of as many
#     rows over as many series on the same disk (`store-bench --baseline-only --series`,
#     synchronous=FULL as the collector).
#  3. Agent UDP ingest: a real vigil-agent fed single-record IPA datagrams at increasing rates by
#     a paced sendmmsg sender on the other core (scripts/bench/udp_blast.c); the highest rate with
#     no kernel drop (/proc/net/udp), agent CPU and RSS. The same steps against the C recvmmsg
#     receiver (scripts/bench/udp_recv.c) and against collectd's statsd plugin (Debian's
#     collectd-core, its own generated config) fed the equivalent StatsD timer lines
#     (scripts/bench/udp_blast.c statsd).
#  4. End-to-end latency: datagram sent → aggregate durable in the collector (`vigil-load e2e`),
#     with 1 s aggregation windows for this step.
# Ends with one line `load: key=value …` and writes everything to results/load-<UTC time>.json.
# Stops everything it started on exit, on failure and on Ctrl-C.
#
# Options (or environment): --agents N (AGENTS, 10000), --rate N (RATE, 5000 connects/s, at
# most 1,000 in progress), --hold S (HOLD, 30), --ingest-s S (INGEST_S, 20), --ingest-agents N
# (INGEST_AGENTS, 50), --quick (a short smoke run), --keep (keep the temporary directory).
# Environment: RATES (UDP steps of the agent and the C receiver, datagrams/s), COLLECTD_RATES
# (collectd's steps), STEP_S (3), PORT (27600: collector; +80 HTTP, +100 agent UDP, +101 C
# receiver, +102 collectd; below net.ipv4.ip_local_port_range).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

AGENTS=${AGENTS:-10000}
RATE=${RATE:-5000}
HOLD=${HOLD:-30}
INGEST_S=${INGEST_S:-20}
INGEST_AGENTS=${INGEST_AGENTS:-50}
RATES=${RATES:-"100000 200000 300000 400000 500000 600000 800000"}
COLLECTD_RATES=${COLLECTD_RATES:-"10000 25000 50000 100000 200000 300000 400000 500000 600000 800000"}
STEP_S=${STEP_S:-3}
PORT=${PORT:-27600}
GOAL_RATE=400000
KEEP=0
STORE=sqlite
while [ $# -gt 0 ]; do
    case "$1" in
        --store) STORE=$2; shift 2 ;;
        --agents) AGENTS=$2; shift 2 ;;
        --rate) RATE=$2; shift 2 ;;
        --hold) HOLD=$2; shift 2 ;;
        --ingest-s) INGEST_S=$2; shift 2 ;;
        --ingest-agents) INGEST_AGENTS=$2; shift 2 ;;
        --quick) AGENTS=500; HOLD=8; INGEST_S=5; RATES="100000 400000"; COLLECTD_RATES="10000 50000"; STEP_S=1; shift ;;
        --keep) KEEP=1; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "load.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done
case "$AGENTS$RATE$HOLD$INGEST_S$INGEST_AGENTS" in *[!0-9]*) echo "load.sh: numbers expected" >&2; exit 2 ;; esac
case "$STORE" in
    sqlite) ;;
    postgresql) exec bash scripts/load-postgresql.sh --ingest-s "$INGEST_S" --ingest-agents "$INGEST_AGENTS" $([ "$KEEP" = 1 ] && echo --keep) ;;
    *) echo "load.sh: --store is sqlite or postgresql, not '$STORE'" >&2; exit 2 ;;
esac

HTTP=$((PORT + 80)) UDP=$((PORT + 100)) UDP_C=$((PORT + 101)) UDP_COLLECTD=$((PORT + 102))
STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
T_START=$(date +%s)

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
vigil_ensure_deps collectd-core curl

DIR=$(mktemp -d /tmp/vigil-load.XXXXXX)
PIDS=()
RMEM_DEFAULT_SAVED=
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    [ -n "$RMEM_DEFAULT_SAVED" ] && echo "$RMEM_DEFAULT_SAVED" > /proc/sys/net/core/rmem_default 2>/dev/null || true
    vigil_stop_pids "${PIDS[@]}"
    if [ "$KEEP" = 1 ]; then echo "kept $DIR" >&2; else rm -rf "$DIR"; fi
    exit "$status"
}
trap cleanup EXIT
trap 'echo "load.sh: interrupted" >&2; exit 130' INT TERM

fail() { echo "load.sh: $*" >&2; exit 1; }
say() { echo "$*" >&2; }

# Descriptors: the collector and vigil-load each hold one per session.
need=$((AGENTS + 400))   # one per session, ~300 of the collector's own
if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt "$need" ]; then
    ulimit -Hn "$need" 2>/dev/null \
        || fail "need $need descriptors for $AGENTS agents, but the hard limit is $(ulimit -Hn) and cannot be raised here (CAP_SYS_RESOURCE); use --agents $(( $(ulimit -Hn) - 400 )) or fewer"
fi
ulimit -Sn "$need"

say "== build (release) =="
for product in vigil-collector vigil-agent vigil-load store-bench; do
    swift build -c release --product "$product" 2>&1 | grep -E "error|warning: unre|Compiling|Build" >&2 || true
done
BIN=$(swift build -c release --show-bin-path)
for b in vigil-collector vigil-agent vigil-load store-bench; do [ -x "$BIN/$b" ] || fail "$b was not built"; done
mkdir -p "$DIR/bin"
for c in udp_recv udp_blast; do gcc -O2 -Wall -o "$DIR/bin/$c" "scripts/bench/$c.c"; done

RX=() TX=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then RX=(taskset -c 1); TX=(taskset -c 0); fi
HZ=$(getconf CLK_TCK)

# --- helpers ---------------------------------------------------------------
start() {   # start OUT LOG CMD…: runs CMD in the background (stdout to OUT, stderr to LOG), sets LAST
    local out=$1 log=$2; shift 2
    "$@" > "$out" 2> "$log" &
    LAST=$!
    PIDS+=("$LAST")
}
reap() {   # reap PID: waits for it and forgets it (a finished PID may be reused by anyone)
    local status=0 p keep=()
    wait "$1" || status=$?
    for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    PIDS=("${keep[@]}")
    return $status
}
wait_line() {   # wait_line FILE PATTERN SECONDS PID
    local i
    for i in $(seq $(($3 * 10))); do
        grep -q -- "$2" "$1" 2>/dev/null && return 0
        kill -0 "$4" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
field() { tr ' ' '\n' <<<"$2" | sed -n "/^$1=/{s/^$1=//p;q}"; }
metric() {   # metric NAME [LABELS]: one value from the collector's /metrics
    local n=$1
    [ -n "${2:-}" ] && n="$1{$2}"
    curl -sf "http://127.0.0.1:$HTTP/metrics" | awk -v n="$n" '$1 == n && !done {print $2; done = 1}'
}
udp_drops() {   # kernel drops of the socket bound to 127.0.0.1:PORT (/proc/net/udp, last column)
    local hex; hex=$(printf '%04X' "$1")
    awk -v p=":$hex" 'NR > 1 && substr($2, length($2) - 4) == p {print $NF; exit}' /proc/net/udp
}
ms() { awk -v v="${1:-0}" 'BEGIN {printf "%.2f", v * 1000}'; }   # seconds → milliseconds
api() { curl -sf -H "Authorization: Bearer $TOKEN" "$@"; }

# --- the collector ---------------------------------------------------------
cat > "$DIR/collector.conf" <<EOF
listen = 127.0.0.1:$PORT
http_listen = 127.0.0.1:$HTTP
data_dir = $DIR/collector
max_clients = $((AGENTS + 1000))
# every simulated agent connects from this one address
max_handshakes_per_address = $((AGENTS + 1000))
log_level = info
EOF
"$BIN/vigil-collector" keys create --project load --create-project --config "$DIR/collector.conf" > "$DIR/key" 2>/dev/null \
    || fail "vigil-collector keys create failed"
start /dev/null "$DIR/collector.log" "${RX[@]}" "$BIN/vigil-collector" run --config "$DIR/collector.conf"
CPID=$LAST
wait_line "$DIR/collector.log" " ready " 30 "$CPID" || { cat "$DIR/collector.log" >&2; fail "the collector did not start"; }
TOKEN=$(cat "$DIR/collector/admin_token")

# --- 1. session density ----------------------------------------------------
say "== 1. session density: $AGENTS simulated agents at $RATE connects/s, held ${HOLD}s =="
rss0=$(rss_kb "$CPID")
start "$DIR/density.out" "$DIR/density.log" "${TX[@]}" "$BIN/vigil-load" density --key-file "$DIR/key" --collector "127.0.0.1:$PORT" \
    --agents "$AGENTS" --rate "$RATE" --duration "$HOLD" --ledger "$DIR/density.ledger" --json "$DIR/density.json" \
    --prefix density --report-interval 5
LPID=$LAST
wait_line "$DIR/density.log" " ramp complete " 400 "$LPID" || { tail -5 "$DIR/density.log" >&2; fail "vigil-load density stopped before the ramp completed"; }
grep " ramp complete " "$DIR/density.log" >&2
hold_t0=$(ticks "$CPID"); hold_s0=$(date +%s.%N)
wait_line "$DIR/density.log" "measurement window over" $((HOLD + 60)) "$LPID" || fail "vigil-load density did not finish its window"
hold_t1=$(ticks "$CPID"); hold_s1=$(date +%s.%N)
rss1=$(rss_kb "$CPID")
density_lag_p99=$(metric vigil_loop_lag_seconds 'quantile="0.99"')
density_lag_max=$(metric vigil_loop_lag_seconds 'quantile="1"')
reap "$LPID" || fail "vigil-load density failed: $(tail -3 "$DIR/density.log")"
dget() { sed -n "s/.*\"$1\":\"\{0,1\}\([^,\"}]*\).*/\1/p" "$DIR/$2.json"; }
sessions=$(dget sessions density)
handshakes_per_s=$(dget handshakes_per_s density)
rss_per_session_kb=$(awk -v a="$rss0" -v b="$rss1" -v n="$sessions" 'BEGIN {printf "%.2f", (n > 0 ? (b - a) / n : 0)}')
hold_cpu=$(awk -v t="$((hold_t1 - hold_t0))" -v hz="$HZ" -v a="$hold_s0" -v b="$hold_s1" 'BEGIN {printf "%.1f", 100 * t / hz / (b - a)}')
say "sessions $sessions of $AGENTS, $handshakes_per_s handshakes/s, collector RSS $rss0 → $rss1 KiB ($rss_per_session_kb KiB/session), CPU ${hold_cpu}% of a core while holding"
say "collector loop lag since start: p99 $(ms "$density_lag_p99") ms, max $(ms "$density_lag_max") ms"

# --- 2. ingest -------------------------------------------------------------
say "== 2. ingest: $INGEST_AGENTS sessions keeping their batch windows full for ${INGEST_S}s =="
rows0=$(metric vigil_rows_stored_total)
start "$DIR/ingest.out" "$DIR/ingest.log" "${TX[@]}" "$BIN/vigil-load" ingest --key-file "$DIR/key" --collector "127.0.0.1:$PORT" \
    --agents "$INGEST_AGENTS" --duration "$INGEST_S" --ledger "$DIR/ingest.ledger" --json "$DIR/ingest.json" \
    --prefix ingest --report-interval 5
IPID=$LAST
reap "$IPID" || fail "vigil-load ingest failed: $(tail -3 "$DIR/ingest.log")"
rows1=$(metric vigil_rows_stored_total)
durable_records_per_s=$(dget acked_records_per_s ingest)
ingest_verify=$("$BIN/vigil-load" verify --ledger "$DIR/ingest.ledger" --db "$DIR/collector/vigil.db" 2>>"$DIR/verify.log") \
    || say "warning: verify reported a problem: $ingest_verify"
density_verify=$("$BIN/vigil-load" verify --ledger "$DIR/density.ledger" --db "$DIR/collector/vigil.db" 2>>"$DIR/verify.log") \
    || say "warning: verify reported a problem: $density_verify"
# The same workload in raw SQLite: as many rows as the ingest stored, over as many series
# (agents × 100 checks), into a fresh database on the same disk, 5,000 rows per transaction.
# Both rates fall as the tables grow (index maintenance), so equal row counts matter.
ingest_rows=$(dget acked_records ingest)
baseline_rows=$(( ingest_rows < 200000 ? 200000 : (ingest_rows > 3000000 ? 3000000 : ingest_rows) ))
baseline=$("$BIN/store-bench" --baseline-only --rows "$baseline_rows" --series $((INGEST_AGENTS * 100)) --batch 50 --sync full \
    --repeat 1 --dir "$DIR/baseline")
sqlite_baseline=$(field baseline_rows_per_s "$baseline")
say "acknowledged (durable) $durable_records_per_s records/s over ${INGEST_S}s ($ingest_rows records); raw SQLite, same rows and series: $sqlite_baseline rows/s (ratio $(awk -v a="$durable_records_per_s" -v b="$sqlite_baseline" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}'))"
say "verify ingest:  ${ingest_verify#verify: }"
say "verify density: ${density_verify#verify: }"

# --- 3 and 4. a real agent -------------------------------------------------
say "== 3./4. a real vigil-agent: end-to-end latency, then UDP ingest steps (${STEP_S}s each) =="
api -X PUT "http://127.0.0.1:$HTTP/api/v1/projects/load/patterns" -d '{"patterns":[
  {"method":"GET","host":"api.example.com","path":"/v1/users/*","monitor":"api","check":"get-user"},
  {"method":"GET","host":"e2e.example.com","path":"/e2e/*","monitor":"e2e","check":"probe"}]}' >/dev/null \
    || fail "cannot set the filter rules through the API"
start /dev/null "$DIR/agent.log" "${RX[@]}" "$BIN/vigil-agent" run --set server_port="$PORT" --set access_key="$(cat "$DIR/key")" \
    --set ipa_port="$UDP" --set agent_name=load-agent --set aggregation_interval_ms=1000 --set log_level=info \
    --set state_dir="$DIR/agent-state"
APID=$LAST
wait_line "$DIR/agent.log" "filter rules installed" 30 "$APID" || { tail -5 "$DIR/agent.log" >&2; fail "the agent did not connect"; }

e2e=$("$BIN/vigil-load" e2e --udp "127.0.0.1:$UDP" --db "$DIR/collector/vigil.db" --rate 1000 --duration 10 --window-ms 1000) \
    || say "warning: e2e: $e2e"
say "$e2e"

# step KIND RATE: STEP_S seconds at RATE datagrams/s to one receiver; sets ACH (achieved send
# rate), DROPS (kernel drops), CPU (% of a core), RSS (KiB, mid-step).
step() {
    local kind=$1 rate=$2 port pid d0 d1 t0 t1 blaster=ipa line
    case $kind in
        agent) port=$UDP; pid=$APID ;;
        c) port=$UDP_C
           "${RX[@]}" "$DIR/bin/udp_recv" "$port" 64 65535 4194304 1500 $((STEP_S + 5)) > "$DIR/c.out" &
           pid=$!; PIDS+=("$pid")
           for _ in $(seq 100); do grep -q '^ready' "$DIR/c.out" && break; sleep 0.02; done ;;
        collectd) port=$UDP_COLLECTD; pid=$COLLECTD_PID; blaster=statsd ;;
    esac
    d0=$(udp_drops "$port"); t0=$(ticks "$pid")
    "${TX[@]}" "$DIR/bin/udp_blast" "$blaster" "$port" "$STEP_S" "$rate" 32 8 > "$DIR/blast.out" &
    local bpid=$!
    PIDS+=("$bpid")
    sleep "$(awk -v s="$STEP_S" 'BEGIN {print s / 2}')"; RSS=$(rss_kb "$pid")
    reap "$bpid" || true
    sleep 0.3
    d1=$(udp_drops "$port"); t1=$(ticks "$pid")
    ACH=$(sed -n 's/.* rate=\([0-9]*\).*/\1/p' "$DIR/blast.out")
    DROPS=$((d1 - d0))
    CPU=$(awk -v t="$((t1 - t0))" -v hz="$HZ" -v s="$STEP_S" 'BEGIN {printf "%.0f", 100 * t / hz / (s + 0.3)}')
    if [ "$kind" = c ]; then reap "$pid" || true; fi
}

# collectd with the statsd plugin only, on loopback, its own configuration. Its statsd socket
# has no receive-buffer option and gets net.core.rmem_default (usually 208 KiB): as root, the
# script raises rmem_default to the 4 MiB the agent and the C receiver use for the second
# collectd takes to open its socket, then puts it back, so all three get the same queue.
mkdir -p "$DIR/collectd"
cat > "$DIR/collectd.conf" <<EOF
Hostname "vigil-load"
FQDNLookup false
BaseDir "$DIR/collectd"
PIDFile "$DIR/collectd/collectd.pid"
Interval 10
LoadPlugin logfile
<Plugin logfile>
  LogLevel warning
  File "$DIR/collectd/collectd.log"
</Plugin>
LoadPlugin statsd
<Plugin statsd>
  Host "127.0.0.1"
  Port "$UDP_COLLECTD"
  TimerPercentile 50
  TimerPercentile 95
  TimerPercentile 99
  TimerCount true
</Plugin>
EOF
COLLECTD=$(command -v collectd || echo /usr/sbin/collectd)
collectd_rcvbuf=default
if [ -w /proc/sys/net/core/rmem_default ]; then
    RMEM_DEFAULT_SAVED=$(cat /proc/sys/net/core/rmem_default)
    echo 4194304 > /proc/sys/net/core/rmem_default
    collectd_rcvbuf=4194304
fi
start /dev/null "$DIR/collectd.stderr" "${RX[@]}" "$COLLECTD" -f -C "$DIR/collectd.conf"
COLLECTD_PID=$LAST
for _ in $(seq 50); do [ -n "$(udp_drops "$UDP_COLLECTD")" ] && break; sleep 0.1; done
if [ -n "$RMEM_DEFAULT_SAVED" ]; then echo "$RMEM_DEFAULT_SAVED" > /proc/sys/net/core/rmem_default; RMEM_DEFAULT_SAVED=; fi
say "collectd $(dpkg-query -W -f='${Version}' collectd-core 2>/dev/null) statsd plugin, receive buffer $collectd_rcvbuf"
[ -n "$(udp_drops "$UDP_COLLECTD")" ] || { cat "$DIR/collectd.stderr" "$DIR/collectd/collectd.log" >&2 2>/dev/null; fail "collectd's statsd socket did not appear"; }

: > "$DIR/steps.txt"
printf '%-9s %9s %10s %10s %6s %9s\n' receiver rate achieved drops cpu% rss_kib >&2
best_agent=0 best_c=0 best_collectd=0 agent_goal_drops=n/a agent_cpu_at_best=0 agent_rss_at_best=0
for kind in agent c collectd; do
    misses=0
    rates=$RATES
    [ "$kind" = collectd ] && rates=$COLLECTD_RATES
    for rate in $rates; do
        step "$kind" "$rate"
        printf '%-9s %9s %10s %10s %6s %9s\n' "$kind" "$rate" "$ACH" "$DROPS" "$CPU" "$RSS" >&2
        echo "$kind $rate $ACH $DROPS $CPU $RSS" >> "$DIR/steps.txt"
        [ "$kind" = agent ] && [ "$rate" = "$GOAL_RATE" ] && agent_goal_drops=$DROPS
        # A step passes when the sender kept the pace (within 2 %) and nothing was dropped.
        if [ "$DROPS" -eq 0 ] && [ "$ACH" -ge $((rate * 98 / 100)) ]; then
            misses=0
            case $kind in
                agent) best_agent=$rate; agent_cpu_at_best=$CPU; agent_rss_at_best=$RSS ;;
                c) best_c=$rate ;;
                collectd) best_collectd=$rate ;;
            esac
        else
            misses=$((misses + 1))
            [ $misses -ge 2 ] && break   # two failed steps in a row: higher rates will not pass
        fi
    done
done
agent_hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$APID/status")
agent_status=$(api "http://127.0.0.1:$HTTP/api/v1/agents" || true)
final_lag_p99=$(metric vigil_loop_lag_seconds 'quantile="0.99"')
final_lag_max=$(metric vigil_loop_lag_seconds 'quantile="1"')

# --- summary ---------------------------------------------------------------
T_END=$(date +%s)
e2e_p50=$(field e2e_p50_ms "$e2e"); e2e_p99=$(field e2e_p99_ms "$e2e")
summary="sessions=$sessions handshakes_per_s=$handshakes_per_s rss_per_session_kb=$rss_per_session_kb"
summary+=" durable_records_per_s=$durable_records_per_s sqlite_baseline_records_per_s=$sqlite_baseline"
summary+=" agent_datagrams_per_s=$best_agent agent_kernel_drops=$agent_goal_drops c_receiver_datagrams_per_s=$best_c"
summary+=" collectd_datagrams_per_s=$best_collectd e2e_p50_ms=$e2e_p50 e2e_p99_ms=$e2e_p99"
summary+=" loop_lag_p99_ms=$(ms "$final_lag_p99") loop_lag_max_ms=$(ms "$final_lag_max")"
summary+=" density_loop_lag_p99_ms=$(ms "$density_lag_p99") collector_cpu_pct_holding=$hold_cpu"
summary+=" ingest_records=$ingest_rows ping_rtt_p99_ms_holding=$(dget ping_rtt_p99_ms density)"
summary+=" ingest_lost_records=$(field lost_records "$ingest_verify") density_lost_records=$(field lost_records "$density_verify")"
summary+=" agent_cpu_pct_at_best=$agent_cpu_at_best agent_rss_kib_at_best=$agent_rss_at_best seconds=$((T_END - T_START))"

mkdir -p results
OUT="results/load-$(date -u +%Y%m%dT%H%M%SZ).json"
{
    printf '{\n  "script": "scripts/load.sh", "started": "%s", "commit": "%s",\n' "$STARTED" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    printf '  "machine": {"cpus": %s, "cpu": "%s", "kernel": "%s", "memory_kib": %s, "swift": "%s"},\n' \
        "$(nproc)" "$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)" "$(uname -r)" \
        "$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)" "$(swift --version 2>/dev/null | head -1 | sed 's/"/\\"/g')"
    printf '  "settings": {"agents": %s, "rate": %s, "hold_s": %s, "ingest_agents": %s, "ingest_s": %s, "udp_step_s": %s, "udp_rates": "%s", "collectd_rates": "%s"},\n' \
        "$AGENTS" "$RATE" "$HOLD" "$INGEST_AGENTS" "$INGEST_S" "$STEP_S" "$RATES" "$COLLECTD_RATES"
    printf '  "summary": {'
    sep=""
    for kv in $summary; do
        k=${kv%%=*}; v=${kv#*=}
        case $v in ''|*[!0-9.-]*) printf '%s"%s": "%s"' "$sep" "$k" "$v" ;; *) printf '%s"%s": %s' "$sep" "$k" "$v" ;; esac
        sep=", "
    done
    printf '},\n'
    printf '  "density": %s,\n' "$(cat "$DIR/density.json")"
    printf '  "density_collector": {"rss_before_kib": %s, "rss_after_kib": %s, "cpu_pct_holding": %s, "lag_p99_ms": %s, "lag_max_ms": %s},\n' \
        "$rss0" "$rss1" "$hold_cpu" "$(ms "$density_lag_p99")" "$(ms "$density_lag_max")"
    printf '  "ingest": %s,\n' "$(cat "$DIR/ingest.json")"
    printf '  "ingest_collector_rows_stored": %s,\n' "$(( ${rows1:-0} - ${rows0:-0} ))"
    printf '  "verify_ingest": "%s",\n  "verify_density": "%s",\n  "sqlite_baseline": "%s",\n' "$ingest_verify" "$density_verify" "$baseline"
    printf '  "e2e": "%s",\n' "$e2e"
    printf '  "udp_steps": ['
    sep=""
    while read -r kind rate ach drops cpu rss; do
        printf '%s\n    {"receiver": "%s", "rate": %s, "achieved": %s, "kernel_drops": %s, "cpu_pct": %s, "rss_kib": %s}' \
            "$sep" "$kind" "$rate" "${ach:-0}" "$drops" "$cpu" "${rss:-0}"
        sep=","
    done < "$DIR/steps.txt"
    printf '\n  ],\n  "agent_vmhwm_kib": %s\n}\n' "${agent_hwm:-0}"
} > "$OUT"
say "results: $OUT"
echo "load: $summary"

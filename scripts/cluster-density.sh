#!/usr/bin/env bash
# cluster-density.sh — many concurrent authenticated agent sessions over several collectors on one
# PostgreSQL (docs/PERFORMANCE.md, "Cluster density"). Prints figures; it is not a test.
#
#   scripts/cluster-density.sh [SESSIONS] [COLLECTORS] [HOLD_S]      (100000 5 60)
#
# Release binaries must be built (scripts/load.sh builds them; BIN=DIR runs others). On loopback,
# every file in a temporary directory:
#   - a private PostgreSQL (scripts/lib/postgres.sh start --tuned: sized for heavy ingest, durability
#     as in production) and COLLECTORS collectors with
#     `store = postgresql` on it; collector N takes sessions on 127.0.0.N:PORT, HTTP on
#     127.0.0.1:PORT+79+N; one collector_key and one access key made once;
#   - LOADS `vigil-load density` processes (2 per collector), process j aiming at collector
#     (j mod COLLECTORS)+1 with the others after it, from its own source address 127.0.1.(j+1)
#     (each address has its own ephemeral ports), ramping at RATE connects/s each; every
#     simulated agent sends a Status every STATUS_S and a batch of 10 aggregates every BATCH_S.
# The per-process descriptor limit is the hard limit (20,000 here): each process's soft limit is
# raised to it, and a collector is given at most that minus RESERVE (64) sessions; SESSIONS that
# do not fit in COLLECTORS × that are refused before anything starts, naming how many would.
# After the ramp and HOLD_S seconds, prints per collector: sessions established, RSS before and
# after and KiB per session, loop lag p50/p99/max since start, sessions pushed back (paused while the
# store is over its pending-rows bound) and the episodes so far, pending rows, sessions the
# collector closed, handshake-lane round trips per handshake, Status writes and the store writes
# that carried them (/metrics); then the handshakes per
# second over the ramp (all processes), whether every session was established, and the load
# average. Ports: PORT (28900) outside the ephemeral range. KEEP=1 keeps the directory.
# Environment: RATE (200 connects/s per process), MAX_PENDING (100 connects + handshakes in progress
# per process: each handshake waits for a key lookup and an identity check in PostgreSQL (on the
# store's handshake connection, not behind ingest), and more in flight only time
# out), RAMP_TIMEOUT (1800: the longest ramp; the hold then goes on with the sessions there are),
# STATUS_S (30), BATCH_S (30), RESERVE (64).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/procs.sh

SESSIONS=${1:-100000}
COLLECTORS=${2:-5}
HOLD_S=${3:-60}
RATE=${RATE:-200}
MAX_PENDING=${MAX_PENDING:-100}
RAMP_TIMEOUT=${RAMP_TIMEOUT:-1800}
STATUS_S=${STATUS_S:-30}
BATCH_S=${BATCH_S:-30}
RESERVE=${RESERVE:-64}
PORT=${PORT:-28900}
case "$SESSIONS$COLLECTORS$HOLD_S$RATE$MAX_PENDING$RAMP_TIMEOUT$STATUS_S$BATCH_S$RESERVE$PORT" in
    *[!0-9]*) echo "cluster-density.sh: whole numbers expected" >&2; exit 2 ;;
esac
BIN=${BIN:-$(swift build -c release --show-bin-path)}
for b in vigil-collector vigil-load; do
    [ -x "$BIN/$b" ] || { echo "cluster-density.sh: $BIN/$b missing; run: swift build -c release --product $b" >&2; exit 1; }
done
LIMIT=$(ulimit -Hn)
[ "$LIMIT" = unlimited ] && LIMIT=1048576
ulimit -Sn "$LIMIT"
PER_COLLECTOR=$(( (SESSIONS + COLLECTORS - 1) / COLLECTORS ))
if [ "$PER_COLLECTOR" -gt $((LIMIT - RESERVE)) ]; then
    echo "cluster-density.sh: $SESSIONS sessions over $COLLECTORS collectors is $PER_COLLECTOR per collector, but one process may hold $LIMIT descriptors (ulimit -Hn) and a collector needs $RESERVE of its own: at most $(( COLLECTORS * (LIMIT - RESERVE) )) sessions over $COLLECTORS collectors, or $(( (SESSIONS + LIMIT - RESERVE - 1) / (LIMIT - RESERVE) )) collectors for $SESSIONS" >&2
    exit 2
fi
LOADS=$((COLLECTORS * 2))
PER_LOAD=$(( (SESSIONS + LOADS - 1) / LOADS ))
read -r EPH_LO EPH_HI < /proc/sys/net/ipv4/ip_local_port_range
[ $((PER_LOAD + 100)) -lt $((EPH_HI - EPH_LO)) ] || { echo "cluster-density.sh: $PER_LOAD sessions per process exceed one source address's ephemeral ports" >&2; exit 2; }
if [ "$PORT" -le "$EPH_HI" ] && [ $((PORT + 80 + COLLECTORS)) -ge "$EPH_LO" ]; then
    echo "cluster-density.sh: PORT=$PORT overlaps the ephemeral port range ($EPH_LO-$EPH_HI)" >&2; exit 2
fi

vigil_workdir cluster-density.sh
http_of() { echo $((PORT + 79 + $1)); }
metric() { awk -v n="$2" '$1 == n {print $2; exit}' "$DIR/metrics-$1"; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

say "== PostgreSQL, $COLLECTORS collectors =="
bash scripts/lib/postgres.sh start --tuned "$DIR/pg" $$ >/dev/null
PGPORT=$(cat "$DIR/pg/port")
psql -X -q -h "$DIR/pg" -p "$PGPORT" -U vigil -d postgres -c "CREATE DATABASE vigil"
declare -A CPID RSS0
for i in $(seq "$COLLECTORS"); do
    cat > "$DIR/c$i.conf" <<EOF
listen = 127.0.0.$i:$PORT
http_listen = 127.0.0.1:$(http_of "$i")
data_dir = $DIR/c$i
store = postgresql
postgresql_url = host=$DIR/pg port=$PGPORT user=vigil dbname=vigil
admin_token = density
max_clients = $((LIMIT - RESERVE))
max_handshakes_per_address = $((LIMIT))
log_level = info
EOF
done
"$BIN/vigil-collector" keys create --project density --create-project --config "$DIR/c1.conf" > "$DIR/key" 2>/dev/null
for i in $(seq 2 "$COLLECTORS"); do mkdir -p "$DIR/c$i"; chmod 700 "$DIR/c$i"; cp -p "$DIR/c1/collector_key" "$DIR/c$i/"; done
for i in $(seq "$COLLECTORS"); do
    "$BIN/vigil-collector" run --config "$DIR/c$i.conf" 2> "$DIR/c$i.log" &
    CPID[$i]=$!
    PIDS+=("$!")
done
for i in $(seq "$COLLECTORS"); do
    for _ in $(seq 300); do curl -sf -m 2 "http://127.0.0.1:$(http_of "$i")/healthz" >/dev/null && break; sleep 0.1; done
    curl -sf -m 2 "http://127.0.0.1:$(http_of "$i")/healthz" >/dev/null || { tail -5 "$DIR/c$i.log" >&2; exit 1; }
    RSS0[$i]=$(rss_kb "${CPID[$i]}")
done

say "== $LOADS vigil-load processes, $PER_LOAD sessions each at $RATE connects/s, status every ${STATUS_S}s, data every ${BATCH_S}s =="
LOAD_PIDS=()
T_RAMP0=$(date +%s.%N)
for j in $(seq 0 $((LOADS - 1))); do
    list=""
    for k in $(seq 0 $((COLLECTORS - 1))); do list+="${list:+,}127.0.0.$(( (j + k) % COLLECTORS + 1 )):$PORT"; done
    "$BIN/vigil-load" density --key-file "$DIR/key" --collector "$list" --agents "$PER_LOAD" --rate "$RATE" \
        --max-pending "$MAX_PENDING" --sources "127.0.1.$((j + 1))" --duration $((HOLD_S + 3600)) --ramp-timeout "$RAMP_TIMEOUT" \
        --status-interval "$STATUS_S" --batch-interval "$BATCH_S" --drain 0 --report-interval 10 \
        --prefix "d$j" --json "$DIR/load-$j.json" > "$DIR/load-$j.out" 2> "$DIR/load-$j.log" &
    LOAD_PIDS+=("$!")
    PIDS+=("$!")
done
# The ramp ends when every process has logged its "ramp complete" line.
for _ in $(seq $(( (RAMP_TIMEOUT + 60) * 10 ))); do
    done_n=$(grep -l " ramp complete " "$DIR"/load-*.log 2>/dev/null | wc -l || true)
    [ "$done_n" -ge "$LOADS" ] && break
    sleep 0.1
done
T_RAMP1=$(date +%s.%N)
say "ramp: every process done after $(awk -v a="$T_RAMP0" -v b="$T_RAMP1" 'BEGIN {printf "%.1f", b - a}') s; holding ${HOLD_S}s"
sleep $((HOLD_S / 2))   # measure in the middle of the hold, with every session sending
LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)
total=0
for i in $(seq "$COLLECTORS"); do
    curl -sf -m 10 "http://127.0.0.1:$(http_of "$i")/metrics" > "$DIR/metrics-$i"
    est=$(metric "$i" 'vigil_sessions{phase="established"}')
    rss1=$(rss_kb "${CPID[$i]}")
    total=$((total + ${est:-0}))
    awk -v i="$i" -v e="${est:-0}" -v a="${RSS0[$i]}" -v b="$rss1" \
        -v p50="$(metric "$i" 'vigil_loop_lag_seconds{quantile="0.5"}')" -v p99="$(metric "$i" 'vigil_loop_lag_seconds{quantile="0.99"}')" \
        -v mx="$(metric "$i" 'vigil_loop_lag_seconds{quantile="1"}')" \
        'BEGIN {printf "collector %d: sessions %d, RSS %d -> %d KiB (%.2f KiB per session), loop lag p50 %.2f ms p99 %.2f ms max %.1f ms\n", i, e, a, b, (e > 0 ? (b - a) / e : 0), p50 * 1000, p99 * 1000, mx * 1000}'
    # The store side: push-back, the write queue, and what a session costs it.
    awk -v i="$i" -v pb="$(metric "$i" vigil_sessions_pushed_back)" -v pbt="$(metric "$i" vigil_store_pushbacks_total)" \
        -v rs="$(metric "$i" vigil_batches_resubmitted_total)" -v pr="$(metric "$i" vigil_store_pending_rows)" \
        -v cl="$(metric "$i" 'vigil_sessions_closed_total{reason="local"}')" -v hs="$(metric "$i" vigil_handshakes_total)" \
        -v hrt="$(metric "$i" vigil_store_handshake_round_trips_total)" -v hg="$(metric "$i" vigil_store_handshake_groups_total)" \
        -v sw="$(metric "$i" vigil_status_writes_total)" -v sg="$(metric "$i" vigil_status_group_writes_total)" \
        -v rows="$(metric "$i" vigil_rows_stored_total)" \
        'BEGIN {printf "collector %d: pushed back now %d (episodes %d, batches resubmitted %d), pending rows %d, closed by the collector %d, handshakes %d (%.1f handshake-lane round trips each, %d shared enrollment commits), statuses %d in %d writes, rows stored %d\n", i, pb, pbt, rs, pr, cl, hs, (hs > 0 ? hrt / hs : 0), hg, sw, sg, rows}'
done
sleep $((HOLD_S - HOLD_S / 2))
# SIGTERM ends a run early with its summary (vigil-load --help).
for p in "${LOAD_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
for p in "${LOAD_PIDS[@]}"; do wait "$p" || true; done
hs=0 hsum=0 lost=0 fails=0
for j in $(seq 0 $((LOADS - 1))); do
    s=$(sed -n 's/^load-run: //p' "$DIR/load-$j.out")
    f() { tr ' ' '\n' <<<"$s" | sed -n "s/^$1=//p"; }
    hs=$((hs + $(f handshakes))); hsum=$(awk -v a="$hsum" -v b="$(f handshakes_per_s)" 'BEGIN {print a + b}')
    lost=$((lost + $(f sessions_lost))); fails=$((fails + $(f attempt_failures)))
    echo "vigil-load $j: $(tr ' ' '\n' <<<"$s" | grep -E '^(sessions|sessions_min|ramp_s|handshakes_per_s|handshake_p99_ms|attempt_failures|sessions_lost|statuses|acked_records|loop_lag_p99_ms)=' | tr '\n' ' ')"
done
ramp_s=$(awk -v a="$T_RAMP0" -v b="$T_RAMP1" 'BEGIN {printf "%.1f", b - a}')
echo "cluster-density: sessions=$SESSIONS collectors=$COLLECTORS load_processes=$LOADS established=$total all_established=$([ "$total" -ge "$SESSIONS" ] && echo yes || echo no)" \
     "ramp_s=$ramp_s handshakes_per_s=$(awk -v n="$hs" -v t="$ramp_s" 'BEGIN {printf "%.0f", n / t}') sum_of_process_rates=$(printf '%.0f' "$hsum")" \
     "attempt_failures=$fails sessions_lost=$lost load_average=${LOADAVG// //}"

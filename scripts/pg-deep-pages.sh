#!/usr/bin/env bash
# pg-deep-pages.sh — how long the API's measurement pages take on PostgreSQL, first and deep
# (docs/PERFORMANCE.md, "Deep pages of measurements").
#
#   scripts/pg-deep-pages.sh [ROWS] [DAYS]
#
#  1. a private PostgreSQL (scripts/lib/postgres.sh start --tuned), the collector's schema
#     (`vigil-collector keys create --create-project`: project `bench`), the daily partitions of
#     the last 31 days (what retention_days = 30 keeps) and the next 3;
#  2. ROWS (2,000,000) measurement rows over 1,000 series of `bench`, spread evenly over the last
#     DAYS (10) days, 10 rows per timestamp (ids in time order), inserted by SQL; then
#     VACUUM ANALYZE of measurements and series — but not of `projects`: autovacuum analyzes a
#     table after 50 changed rows, which an installation with fewer projects never reaches, so
#     the planner's idea of `projects` is the one a real installation has;
#  3. the collector (`store = postgresql`) on it, and the server's auto_explain logging every
#     statement's plan with its execution time (`log_analyze`, `log_buffers`);
#  4. for pages 0, 100,000 and 1,000,000 rows deep (the cursor of the row before: ts.id), with
#     and without `project=bench`: GET /api/v1/measurements?limit=100[&project=bench][&cursor=…]
#     REPEAT (5) times; prints the HTTP status, the median time curl saw, and the median execution
#     time auto_explain logged for the measurements statement ("-" when the server cancelled it:
#     the collector's 250 ms read limit).
# Before/after: COLLECTOR_BIN=DIR (a directory holding vigil-collector, e.g. another tree's
# .build/release) runs that build instead of this tree's release build. Stops everything on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac
ROWS=${1:-2000000}
DAYS=${2:-10}
REPEAT=${REPEAT:-5}
PORT=${PORT:-46700}
HTTP=$((PORT + 80))
for v in "$ROWS" "$DAYS" "$REPEAT" "$PORT"; do
    case "$v" in ''|*[!0-9]*) echo "pg-deep-pages.sh: '$v' is not a whole number (ROWS, DAYS, REPEAT and PORT are; see --help)" >&2; exit 2 ;; esac
done

source scripts/lib/deps.sh
source scripts/lib/procs.sh
vigil_ensure_deps

vigil_workdir pg-deep-pages.sh

if [ -z "${COLLECTOR_BIN:-}" ]; then
    swift build -c release --product vigil-collector 2>&1 | grep -E "error|Build" >&2 || true
fi
CBIN=${COLLECTOR_BIN:-$(swift build -c release --show-bin-path)}
[ -x "$CBIN/vigil-collector" ] || fail "$CBIN/vigil-collector was not built"

bash scripts/lib/postgres.sh start --tuned "$DIR/pg" $$ >/dev/null || fail "cannot start PostgreSQL"
PGPORT=$(cat "$DIR/pg/port")
psql_() { psql -X -q -v ON_ERROR_STOP=1 -h "$DIR/pg" -p "$PGPORT" -U vigil -d postgres "$@"; }

cat > "$DIR/collector.conf" <<EOF
listen = 127.0.0.1:$PORT
http_listen = 127.0.0.1:$HTTP
data_dir = $DIR/collector
store = postgresql
postgresql_url = host=$DIR/pg port=$PGPORT user=vigil dbname=postgres
admin_token = deep-pages-bench-token-0123456789
EOF
"$CBIN/vigil-collector" keys create --project bench --create-project --config "$DIR/collector.conf" >/dev/null 2>"$DIR/keys.log" \
    || fail "vigil-collector keys create failed: $(cat "$DIR/keys.log")"

echo "loading $ROWS rows over $DAYS days …" >&2
psql_ -v rows="$ROWS" -v days="$DAYS" >/dev/null <<'EOF'
SET client_min_messages = warning;
SELECT (extract(epoch FROM now()) * 1000)::bigint / 86400000 AS today \gset
SELECT format('CREATE TABLE IF NOT EXISTS measurements_d%s PARTITION OF measurements FOR VALUES FROM (%s) TO (%s)',
              d, d * 86400000, (d + 1) * 86400000)
FROM generate_series(:today::bigint - 30, :today::bigint + 3) d \gexec
INSERT INTO series (project_id, agent_id, monitor, check_name, source)
SELECT p.id, 'agent-' || g, 'web', 'GET /', 'http' FROM projects p, generate_series(1, 1000) g WHERE p.name = 'bench';
SELECT min(id) AS s0 FROM series \gset
SELECT (:today::bigint - :days + 1) * 86400000 AS t0, (:days * 86400000::bigint) / (:rows / 10) AS step \gset
INSERT INTO measurements (series_id, ts_ms, window_ms, count, errors, sum_us, min_us, max_us, p50_us, p95_us, p99_us)
SELECT :s0 + (g % 1000), :t0 + (g / 10) * :step, 10000, 10, 0, 1000, 10, 200, 100, 150, 190
FROM generate_series(0, :rows - 1) g;
VACUUM ANALYZE measurements;
ANALYZE series;
LOAD 'auto_explain';
ALTER SYSTEM SET session_preload_libraries = 'auto_explain';
ALTER SYSTEM SET auto_explain.log_min_duration = 0;
ALTER SYSTEM SET auto_explain.log_analyze = on;
ALTER SYSTEM SET auto_explain.log_buffers = on;
SELECT pg_reload_conf();
EOF

"$CBIN/vigil-collector" run --config "$DIR/collector.conf" > /dev/null 2> "$DIR/collector.log" &
PIDS+=($!)
for _ in $(seq 300); do
    curl -sf "http://127.0.0.1:$HTTP/healthz" >/dev/null 2>&1 && break
    kill -0 "${PIDS[0]}" 2>/dev/null || { cat "$DIR/collector.log" >&2; fail "the collector did not start"; }
    sleep 0.1
done
LOG=$DIR/pg/server.log
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else print v[int((NR + 1) / 2)] }'; }

echo "collector $CBIN; $ROWS rows, $DAYS days, $(psql_ -At -c "SELECT count(*) FROM pg_inherits WHERE inhparent = 'measurements'::regclass") partitions; load average $(cut -d' ' -f1 /proc/loadavg)"
printf '%-10s %-8s %6s %10s %12s\n' depth project status curl_ms server_ms
for depth in 0 100000 1000000; do
    cursor=""
    if [ "$depth" -gt 0 ]; then
        cursor=$(psql_ -At -F. -c "SELECT ts_ms, id FROM measurements ORDER BY ts_ms DESC, id DESC OFFSET $((depth - 1)) LIMIT 1")
    fi
    for project in "" bench; do
        url="http://127.0.0.1:$HTTP/api/v1/measurements?limit=100${project:+&project=$project}${cursor:+&cursor=$cursor}"
        : > "$LOG"
        statuses="" times=""
        for _ in $(seq "$REPEAT"); do
            out=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' -H "Authorization: Bearer deep-pages-bench-token-0123456789" "$url")
            statuses+="${out%% *} "
            times+="$(awk -v t="${out#* }" 'BEGIN { printf "%.2f", t * 1000 }')"$'\n'
        done
        sleep 0.3
        server=$(awk '/duration: [0-9.]+ ms  plan:/ { d = $0; sub(/.*duration: /, "", d); sub(/ ms.*/, "", d); next }
                      /Query Text: SELECT m.ts_ms, p.name/ { print d }' "$LOG" | median)
        printf '%-10s %-8s %6s %10s %12s\n' "$depth" "${project:--}" "$(echo "$statuses" | tr ' ' '\n' | grep . | sort | uniq -c | awk '{ printf "%s%s×%s", (NR > 1 ? "," : ""), $2, $1 }')" \
            "$(printf '%s' "$times" | median)" "$server"
    done
done

# The cursor condition alone against the same with the time bound beside it, in psql: what
# planning and execution cost (EXPLAIN ANALYZE; medians of REPEAT custom plans, as the collector
# sends values with each statement), no project filter.
echo
printf '%-10s %-22s %12s %12s %10s\n' depth condition planning_ms execution_ms partitions
SELECT_M="SELECT m.ts_ms, p.name, s.agent_id, s.monitor, s.check_name, s.source, m.window_ms, m.count, m.errors,
    m.sum_us, m.min_us, m.max_us, m.p50_us, m.p95_us, m.p99_us, m.id, m.outcome_2xx, m.outcome_3xx, m.outcome_4xx,
    m.outcome_5xx, m.outcome_error, m.histogram
    FROM measurements m JOIN series s ON s.id = m.series_id JOIN projects p ON p.id = s.project_id"
for depth in 0 100000 1000000; do
    read -r ts id < <(psql_ -At -F' ' -c "SELECT ts_ms, id FROM measurements ORDER BY ts_ms DESC, id DESC OFFSET $((depth > 0 ? depth - 1 : 0)) LIMIT 1")
    [ "$depth" -eq 0 ] && id=$((id + 1))   # a cursor just above the newest row: the whole first page
    for cond in row row+ts; do
        where='(m.ts_ms, m.id) < ($1, $2)'
        [ "$cond" = row+ts ] && where='m.ts_ms <= $1 AND (m.ts_ms, m.id) < ($1, $2)'
        plans=$( { echo "PREPARE q(bigint, bigint) AS $SELECT_M WHERE $where ORDER BY m.ts_ms DESC, m.id DESC LIMIT 100;"
                   for _ in $(seq "$REPEAT"); do echo "EXPLAIN (ANALYZE, BUFFERS) EXECUTE q($ts, $id);"; done; } | psql_ -At)
        printf '%-10s %-22s %12s %12s %10s\n' "$depth" "$cond" \
            "$(echo "$plans" | sed -n 's/^Planning Time: \(.*\) ms/\1/p' | median)" \
            "$(echo "$plans" | sed -n 's/^Execution Time: \(.*\) ms/\1/p' | median)" \
            "$(echo "$plans" | awk '/EXPLAIN|^Limit/ { n++ } /Index Scan.*measurements_/ { c++ } END { print c / (n ? n : 1) }')"
    done
done

#!/usr/bin/env bash
# load-postgresql.sh — durable ingest into PostgreSQL beside a raw COPY (docs/PERFORMANCE.md,
# "PostgreSQL ingest"); `scripts/load.sh --store postgresql` runs it.
#
#   scripts/load-postgresql.sh [--ingest-s S] [--ingest-agents N] [--quick] [--untuned] [--keep]
#
# Builds in release mode, then, on loopback, with every file in a temporary directory:
#  1. a private PostgreSQL (scripts/lib/postgres.sh: Debian's server as the unprivileged
#     `vigiltest` user) and a vigil-collector with `store = postgresql` on it (Unix socket).
#     The server is the tuned one (`postgres.sh start --tuned`: 2GB shared buffers, 64MB WAL
#     buffers, lz4 WAL compression, checkpoints at most every 30 min or 16GB of WAL — docs/
#     STORAGE.md, "Server settings for heavy ingest"); durability is as in production: fsync,
#     synchronous_commit and full_page_writes stay on. --untuned starts the small server the
#     tests use (64MB shared buffers, PostgreSQL's WAL and checkpoint defaults) to compare;
#  2. `vigil-load ingest`: N sessions keeping their batch windows full for S seconds; records/s
#     acknowledged (the collector acknowledges after COMMIT), then a check that PostgreSQL holds
#     at least every acknowledged record;
#  3. the raw baseline: as many measurement rows over as many series (agents × 100), loaded with
#     psql `\copy … FROM` in COPY's text format into a second database with the same schema
#     (pg_dump --schema-only of the collector's), one COPY and transaction per 5,000 rows, on
#     the same server;
#  4. the raw binary baseline: the same rows, exported from that database in COPY's binary
#     format (the format the collector sends measurements in), loaded the same way into a third
#     database with the same schema; then again into a fourth by two psql processes at once
#     (half the COPYs each), as the collector's two ingest connections do.
# Ends with one line `load-postgresql: key=value …` (ratio = durable / raw text COPY,
# ratio_binary = durable / raw binary COPY, ratio_binary_2 = durable / the two streams'
# binary COPY; with the load average at the start and at the end,
# the collector's round trips per transaction from /metrics, and from the server, for the
# ingest step and for the one-stream binary COPY: WAL bytes per row (pg_current_wal_lsn()
# before and after), full-page images written (pg_stat_wal.wal_fpi) and checkpoints started
# (pg_stat_bgwriter, timed + requested), and for the ingest step the buffers the backends wrote
# out themselves (buffers_backend) and the writes forced by full WAL buffers (wal_buffers_full);
# checkpoints_run counts the whole run's). Stops everything it started on exit.
#
# Options (or environment): --ingest-s S (INGEST_S, 20), --ingest-agents N (INGEST_AGENTS, 50),
# --quick (5 s), --untuned (the tests' small server; TUNED=0, so also through scripts/load.sh),
# --keep (keep the temporary directory). PORT (27700: collector; +80 HTTP).
# COLLECTOR_BIN=DIR runs DIR/vigil-collector (another build, e.g. a baseline's, built with
# `swift build -c release` in its own tree) instead of this tree's; vigil-load is this tree's.
set -euo pipefail
cd "$(dirname "$0")/.."

INGEST_S=${INGEST_S:-20}
INGEST_AGENTS=${INGEST_AGENTS:-50}
PORT=${PORT:-27700}
KEEP=0
TUNED=${TUNED:-1}
while [ $# -gt 0 ]; do
    case "$1" in
        --ingest-s) INGEST_S=$2; shift 2 ;;
        --ingest-agents) INGEST_AGENTS=$2; shift 2 ;;
        --quick) INGEST_S=5; shift ;;
        --keep) KEEP=1; shift ;;
        --untuned) TUNED=0; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "load-postgresql.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done
case "$INGEST_S$INGEST_AGENTS$PORT" in *[!0-9]*) echo "load-postgresql.sh: numbers expected" >&2; exit 2 ;; esac
HTTP=$((PORT + 80))

source scripts/lib/deps.sh
source scripts/lib/procs.sh
vigil_ensure_deps

vigil_workdir load-postgresql.sh

say "== build (release) =="
for product in vigil-collector vigil-load; do
    swift build -c release --product "$product" 2>&1 | grep -E "error|Build" >&2 || true
done
BIN=$(swift build -c release --show-bin-path)
CBIN=${COLLECTOR_BIN:-$BIN}
[ -x "$CBIN/vigil-collector" ] || fail "$CBIN/vigil-collector was not built"
[ -x "$BIN/vigil-load" ] || fail "vigil-load was not built"
LOADAVG=$(cut -d' ' -f1 /proc/loadavg)
RX=() TX=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then RX=(taskset -c 1); TX=(taskset -c 0); fi

say "== PostgreSQL =="
TUNE=()
[ "$TUNED" = 1 ] && TUNE=(--tuned)
bash scripts/lib/postgres.sh start "${TUNE[@]}" "$DIR/pg" $$ >&2 || fail "cannot start PostgreSQL"
PGPORT=$(cat "$DIR/pg/port")
psql_() { psql -X -q -h "$DIR/pg" -p "$PGPORT" -U vigil "$@"; }
# The server's WAL position, full-page images, checkpoints, buffers a backend had to write out
# itself (no clean one free) and writes forced by full WAL buffers so far: "lsn fpi checkpoints
# backend_writes wal_buffers_full".
# pg_stat_wal is reported by each backend when it goes idle (at most ~1 s late), so snapshots
# are taken a little after a step ends.
pgstat() {
    psql_ -d postgres -At -F' ' -c "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn, w.wal_fpi,
        c.checkpoints_timed + c.checkpoints_req, c.buffers_backend, w.wal_buffers_full
        FROM pg_stat_wal w, pg_stat_bgwriter c"
}
# delta BEFORE AFTER ROWS: "wal_bytes_per_row fpi checkpoints backend_writes wal_buffers_full"
# between two pgstat snapshots.
delta() {
    awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { split(a, x, " "); split(b, y, " ");
        printf "%.0f %d %d %d %d", (n > 0 ? (y[1] - x[1]) / n : 0), y[2] - x[2], y[3] - x[3],
        y[4] - x[4], y[5] - x[5] }'
}
STAT0=$(pgstat)
psql_ -d postgres -c "CREATE DATABASE vigil" -c "CREATE DATABASE vigil_raw" -c "CREATE DATABASE vigil_rawbin" -c "CREATE DATABASE vigil_rawbin2"

cat > "$DIR/collector.conf" <<EOF
listen = 127.0.0.1:$PORT
http_listen = 127.0.0.1:$HTTP
data_dir = $DIR/collector
store = postgresql
postgresql_url = host=$DIR/pg port=$PGPORT user=vigil dbname=vigil
log_level = info
EOF
"$CBIN/vigil-collector" keys create --project load --create-project --config "$DIR/collector.conf" > "$DIR/key" 2>"$DIR/keys.log" \
    || fail "vigil-collector keys create failed: $(cat "$DIR/keys.log")"
"${RX[@]}" "$CBIN/vigil-collector" run --config "$DIR/collector.conf" > /dev/null 2> "$DIR/collector.log" &
CPID=$!
PIDS+=("$CPID")
for _ in $(seq 300); do
    curl -sf "http://127.0.0.1:$HTTP/healthz" >/dev/null 2>&1 && break
    kill -0 "$CPID" 2>/dev/null || { cat "$DIR/collector.log" >&2; fail "the collector did not start"; }
    sleep 0.1
done

say "== ingest: $INGEST_AGENTS sessions keeping their batch windows full for ${INGEST_S}s =="
STAT_I0=$(pgstat)
"${TX[@]}" "$BIN/vigil-load" ingest --key-file "$DIR/key" --collector "127.0.0.1:$PORT" \
    --agents "$INGEST_AGENTS" --duration "$INGEST_S" --ledger "$DIR/ingest.ledger" --json "$DIR/ingest.json" \
    --prefix ingest --report-interval 5 > "$DIR/ingest.out" 2> "$DIR/ingest.log" \
    || fail "vigil-load ingest failed: $(tail -3 "$DIR/ingest.log")"
metric() { curl -sf "http://127.0.0.1:$HTTP/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
tx=$(metric vigil_store_transactions_total)
trips=$(metric vigil_store_write_round_trips_total)
per_tx=$(awk -v a="${trips:-0}" -v b="${tx:-0}" 'BEGIN {printf "%.1f", (b > 0 ? a / b : 0)}')
dget() { sed -n "s/.*\"$1\":\"\{0,1\}\([^,\"}]*\).*/\1/p" "$DIR/$2.json"; }
durable=$(dget acked_records_per_s ingest)
acked=$(dget acked_records ingest)
sleep 1.5
STAT_I1=$(pgstat)
stored=$(psql_ -d vigil -At -c "SELECT count(*) FROM measurements")
read -r wal_row_ingest fpi_ingest ckpt_ingest bw_ingest wbf_ingest <<<"$(delta "$STAT_I0" "$STAT_I1" "$stored")"
verify=ok
[ "$stored" -ge "$acked" ] || verify="MISSING $((acked - stored))"
say "acknowledged (durable) $durable records/s over ${INGEST_S}s ($acked records); PostgreSQL holds $stored: $verify"
say "server during ingest: $wal_row_ingest WAL bytes per row, $fpi_ingest full-page images, $ckpt_ingest checkpoints, $bw_ingest buffers written by backends, WAL buffers full $wbf_ingest times"

say "== raw COPY: $acked rows over $((INGEST_AGENTS * 100)) series, 5,000 rows per COPY =="
pg_dump -h "$DIR/pg" -p "$PGPORT" -U vigil --schema-only vigil > "$DIR/schema.sql"
SERIES=$((INGEST_AGENTS * 100))
for db in vigil_raw vigil_rawbin vigil_rawbin2; do
    psql_ -d "$db" -f "$DIR/schema.sql" >/dev/null
    psql_ -d "$db" -c "INSERT INTO series(project_id, agent_id, monitor, check_name, source)
        SELECT 1, 'a' || (i / 100), 'm', 'c' || (i % 100), 'ipa' FROM generate_series(0, $SERIES - 1) i" >/dev/null
done
COLS="series_id, ts_ms, window_ms, count, errors, sum_us, min_us, max_us, p50_us, p95_us, p99_us, outcome_2xx, outcome_3xx, outcome_4xx, outcome_5xx, outcome_error"
rows=$(( acked < 100000 ? 100000 : acked ))
NOW_MS=$(($(date +%s) * 1000))
mkdir -p "$DIR/raw"
awk -v n="$rows" -v s="$SERIES" -v t0="$NOW_MS" -v dir="$DIR/raw" 'BEGIN {
    for (i = 0; i < n; i++) {
        f = sprintf("%s/%06d", dir, int(i / 5000))
        printf "%d\t%d\t10000\t10\t0\t1500000\t20000\t400000\t100000\t300000\t390000\t10\t0\t0\t0\t0\n", (i % s) + 1, t0 + int(i / s) * 10 > f
    }
}'
: > "$DIR/raw.sql"
for f in "$DIR"/raw/*; do
    echo "\\copy measurements ($COLS) FROM '$f'" >> "$DIR/raw.sql"
done
t0=$(date +%s.%N)
psql_ -d vigil_raw -v ON_ERROR_STOP=1 -f "$DIR/raw.sql" >/dev/null
t1=$(date +%s.%N)
raw=$(awk -v n="$rows" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", n / (b - a)}')
ratio=$(awk -v a="$durable" -v b="$raw" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}')
say "raw COPY (text) $raw rows/s ($rows rows); ratio $ratio"

say "== raw binary COPY: the same rows in COPY's binary format, 5,000 rows per COPY =="
# Exported from vigil_raw in the order the rows went in (not timed), then cut into files of
# 5,000 rows: without NULLs every row is 2 + 16 × 12 bytes, after a 19-byte header.
mkdir -p "$DIR/rawbin"
psql_ -d vigil_raw -v ON_ERROR_STOP=1 -c "\\copy (SELECT $COLS FROM measurements ORDER BY id) TO '$DIR/rawbin.all' (FORMAT binary)" >/dev/null
python3 - "$DIR/rawbin.all" "$DIR/rawbin" <<'PY' || fail "cannot cut the binary COPY file"
import sys
data = open(sys.argv[1], "rb").read()
head, row, per = 19, 2 + 16 * 12, 5000
n = (len(data) - head - 2) // row
assert len(data) == head + n * row + 2 and data[-2:] == b"\xff\xff", "rows are not of one size"
for k in range(0, (n + per - 1) // per):
    body = data[head + k * per * row: head + min(n, (k + 1) * per) * row]
    open("%s/%06d" % (sys.argv[2], k), "wb").write(data[:head] + body + b"\xff\xff")
PY
: > "$DIR/rawbin.sql" ; : > "$DIR/rawbin.0.sql" ; : > "$DIR/rawbin.1.sql"
k=0
for f in "$DIR"/rawbin/*; do
    echo "\\copy measurements ($COLS) FROM '$f' (FORMAT binary)" | tee -a "$DIR/rawbin.sql" >> "$DIR/rawbin.$((k % 2)).sql"
    k=$((k + 1))
done
STAT_B0=$(pgstat)
t0=$(date +%s.%N)
psql_ -d vigil_rawbin -v ON_ERROR_STOP=1 -f "$DIR/rawbin.sql" >/dev/null
t1=$(date +%s.%N)
sleep 1.5
STAT_B1=$(pgstat)
read -r wal_row_bin fpi_bin ckpt_bin _ _ <<<"$(delta "$STAT_B0" "$STAT_B1" "$rows")"
rawbin=$(awk -v n="$rows" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", n / (b - a)}')
binstored=$(psql_ -d vigil_rawbin -At -c "SELECT count(*) FROM measurements")
[ "$binstored" = "$rows" ] || fail "raw binary COPY stored $binstored of $rows rows"
ratio_bin=$(awk -v a="$durable" -v b="$rawbin" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}')
say "raw COPY (binary) $rawbin rows/s ($rows rows); ratio $ratio_bin; $wal_row_bin WAL bytes per row, $fpi_bin full-page images, $ckpt_bin checkpoints"
t0=$(date +%s.%N)
psql_ -d vigil_rawbin2 -v ON_ERROR_STOP=1 -f "$DIR/rawbin.0.sql" >/dev/null & P0=$!
psql_ -d vigil_rawbin2 -v ON_ERROR_STOP=1 -f "$DIR/rawbin.1.sql" >/dev/null & P1=$!
wait "$P0" && wait "$P1" || fail "raw binary COPY over two streams failed"
t1=$(date +%s.%N)
rawbin2=$(awk -v n="$rows" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", n / (b - a)}')
ratio_bin2=$(awk -v a="$durable" -v b="$rawbin2" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}')
LOADEND=$(cut -d' ' -f1 /proc/loadavg)
ckpt_run=$(delta "$STAT0" "$(pgstat)" 1 | cut -d' ' -f3)
say "raw COPY (binary, two streams) $rawbin2 rows/s; ratio $ratio_bin2"
echo "load-postgresql: durable_records_per_s=$durable acked_records=$acked stored=$stored verify=$verify raw_copy_rows_per_s=$raw ratio=$ratio raw_binary_copy_rows_per_s=$rawbin ratio_binary=$ratio_bin raw_binary_copy_2_rows_per_s=$rawbin2 ratio_binary_2=$ratio_bin2 transactions=${tx:-?} round_trips_per_transaction=$per_tx load_average=$LOADAVG load_average_end=$LOADEND ingest_s=$INGEST_S agents=$INGEST_AGENTS tuned=$TUNED wal_bytes_per_row=$wal_row_ingest full_page_images=$fpi_ingest checkpoints=$ckpt_ingest backend_buffer_writes=$bw_ingest wal_buffers_full=$wbf_ingest raw_binary_wal_bytes_per_row=$wal_row_bin raw_binary_full_page_images=$fpi_bin raw_binary_checkpoints=$ckpt_bin checkpoints_run=$ckpt_run"

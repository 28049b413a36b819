#!/usr/bin/env bash
# bench-monitors.sh — synthetic monitors figures on this machine. Prints:
#   1. Idle RSS of a static Swift binary running an empty libev loop,
#      without and with libcurl linked (scripts/bench/rss_probe.swift):
#      what linking libcurl would cost the agent.
#   2. Idle RSS of the monitors engine (monitors-bench idle-rss, static):
#      no monitor scheduled, and one HTTP monitor scheduled (libcurl
#      dlopened and initialised).
#   3. Load: one engine running MONITORS HTTP monitors at an INTERVAL-second
#      cadence against a local HTTP server (monitors-bench-server, the
#      collector's HTTPServer in its own process) for RUN_SECONDS: runs and
#      outcomes, loop lag p50/p99/max, CPU, RSS.
# Loopback only. Environment: MONITORS (1000), INTERVAL (10), RUN_SECONDS (60),
# PORT (0: any free port), ROUNDS (3, for the RSS figures), ONLY_AGENT=1 (step 4 only).
#   4. The same load through the real, static vigil-agent and a collector:
#      loop lag, CPU and RSS from the agent's own Status records.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/deps.sh
vigil_ensure_deps

MONITORS=${MONITORS:-1000}
INTERVAL=${INTERVAL:-10}
RUN_SECONDS=${RUN_SECONDS:-60}
PORT=${PORT:-0}
ROUNDS=${ROUNDS:-3}
OUT=.build/bench
mkdir -p "$OUT"

echo "== build (release) =="
# The engine as the agent ships: static Swift runtime, libev/libsodium from
# their .a archives (VIGIL_STATIC=1), in its own scratch path.
VIGIL_STATIC=1 swift build -c release --static-swift-stdlib --scratch-path .build-static --product monitors-bench 2>&1 \
  | grep -E "error|Build" || true
MB=.build-static/release/monitors-bench
swift build -c release --product monitors-bench-server 2>&1 | grep -E "error|Build" || true
SRV="$(swift build -c release --show-bin-path)/monitors-bench-server"
[ -x "$MB" ] && [ -x "$SRV" ] || { echo "build failed" >&2; exit 1; }
swiftc -O -static-stdlib -I scripts/bench/rss_probe scripts/bench/rss_probe.swift -o "$OUT/rss-probe-plain"
swiftc -O -static-stdlib -I scripts/bench/rss_probe -Xcc -DPROBE_LINK_CURL scripts/bench/rss_probe.swift -lcurl \
  -o "$OUT/rss-probe-curl"

# median of the numbers on stdin
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
rss_of() { "$@" | grep -o 'rss_kib=[0-9]*' | cut -d= -f2; }

SC=() EC=() SPID=
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then SC=(taskset -c 0); EC=(taskset -c 1); fi

if [ "${ONLY_AGENT:-0}" != 1 ]; then
echo
echo "== 1. idle RSS: empty libev loop, static Swift binary ($ROUNDS rounds, median KiB) =="
plain=$(for _ in $(seq "$ROUNDS"); do rss_of "$OUT/rss-probe-plain"; done | median)
curl=$(for _ in $(seq "$ROUNDS"); do rss_of "$OUT/rss-probe-curl"; done | median)
echo "without libcurl: $plain KiB"
echo "with libcurl linked ($("$OUT/rss-probe-curl" --version | head -1), $(ldd "$OUT/rss-probe-curl" | wc -l) shared objects): $curl KiB"
echo "cost of linking: $((curl - plain)) KiB"

echo
echo "== 2. idle RSS: monitors engine, static ($ROUNDS rounds, median KiB) =="
none=$(for _ in $(seq "$ROUNDS"); do rss_of "$MB" idle-rss; done | median)
loaded=$(for _ in $(seq "$ROUNDS"); do rss_of "$MB" idle-rss --load-curl; done | median)
echo "no HTTP monitor scheduled (libcurl not loaded): $none KiB"
echo "one HTTP monitor scheduled (libcurl dlopened + curl_global_init + multi handle): $loaded KiB"
echo "shared objects mapped by the engine binary at start: $(ldd "$MB" | wc -l)"

echo
echo "== 3. load: $MONITORS HTTP monitors every ${INTERVAL}s for ${RUN_SECONDS}s =="
SPID=
cleanup() { [ -n "$SPID" ] && kill "$SPID" 2>/dev/null || true; }
trap cleanup EXIT
"${SC[@]}" "$SRV" "$PORT" > "$OUT/server.out" 2>&1 &
SPID=$!
for _ in $(seq 400); do grep -q '^ready' "$OUT/server.out" && break; sleep 0.05; done
grep -q '^ready' "$OUT/server.out" || { echo "server did not start" >&2; cat "$OUT/server.out" >&2; exit 1; }
PORT=$(awk '/^ready/ {print $2}' "$OUT/server.out")
srv_cpu0=$(awk '{print $14 + $15}' "/proc/$SPID/stat")
"${EC[@]}" "$MB" run --url "http://127.0.0.1:$PORT/health" --monitors "$MONITORS" --interval "$INTERVAL" \
  --seconds "$RUN_SECONDS"
srv_cpu1=$(awk '{print $14 + $15}' "/proc/$SPID/stat")
kill "$SPID"; wait "$SPID" 2>/dev/null || true; SPID=
echo "server: $(grep requests "$OUT/server.out"), cpu_s=$(( (srv_cpu1 - srv_cpu0) / $(getconf CLK_TCK) ))"

fi

# ── 4. The same load through the real agent ────────────────────────────────
# A collector holds MONITORS HTTP definitions for one project; a static
# vigil-agent (as shipped) syncs them and runs them against the same local
# server for RUN_SECONDS. Its own Status records (every 10 s, stored by the
# collector) give loop lag, CPU and RSS as the agent measures them.
echo
echo "== 4. the real agent: $MONITORS HTTP monitors every ${INTERVAL}s for ${RUN_SECONDS}s =="
source scripts/lib/agent-build.sh
vigil_build_agent 2>&1 | grep -E "error" || true
swift build -c release --product vigil-collector 2>&1 | grep -E "error" || true
AG="$VIGIL_AGENT_SCRATCH/release/vigil-agent"
COL="$(swift build -c release --show-bin-path)/vigil-collector"
DIR=$(mktemp -d /tmp/vigil-bench-monitors.XXXXXX)
CPID= APID=
cleanup4() {
  [ -n "$APID" ] && kill "$APID" 2>/dev/null || true
  [ -n "$CPID" ] && kill "$CPID" 2>/dev/null || true
  [ -n "$SPID" ] && kill "$SPID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup4 EXIT
"${SC[@]}" "$SRV" 0 > "$DIR/server.out" 2>&1 &
SPID=$!
for _ in $(seq 400); do grep -q '^ready' "$DIR/server.out" && break; sleep 0.05; done
SPORT=$(awk '/^ready/ {print $2}' "$DIR/server.out")
SET=(--set "data_dir=$DIR/data" --set listen=127.0.0.1:0 --set http_listen=127.0.0.1:0)
KEY=$("$COL" keys create --project bench --create-project "${SET[@]}" 2>/dev/null)
"${SC[@]}" "$COL" run "${SET[@]}" 2> "$DIR/collector.log" &
CPID=$!
for _ in $(seq 400); do grep -q ' ready ' "$DIR/collector.log" && break; sleep 0.05; done
CPORT=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$DIR/collector.log" | head -1)
HPORT=$(sed -n 's/.*http on 127.0.0.1:\([0-9]*\).*/\1/p' "$DIR/collector.log" | head -1)
TOKEN=$(cat "$DIR/data/admin_token")
API="http://127.0.0.1:$HPORT/api/v1"
{
  printf '{"monitors":['
  for i in $(seq 1 "$MONITORS"); do
    [ "$i" -gt 1 ] && printf ','
    printf '{"id":"m%d","name":"m%d","kind":"http","interval_secs":%d,"timeout_secs":%d,"spec":{"method":"GET","url":"http://127.0.0.1:%d/health"}}' \
      "$i" "$i" "$INTERVAL" "$(( INTERVAL < 5 ? INTERVAL : 5 ))" "$SPORT"
  done
  printf ']}'
} > "$DIR/monitors.json"
code=$(curl -s -o "$DIR/put.out" -w '%{http_code}' -X PUT -H "Authorization: Bearer $TOKEN" \
  --data-binary "@$DIR/monitors.json" "$API/projects/bench/monitors")
[ "$code" = 200 ] || { echo "PUT monitors: HTTP $code: $(cat "$DIR/put.out")" >&2; exit 1; }
"${EC[@]}" "$AG" run --set "access_key=$KEY" --set "server_port=$CPORT" --set ipa_port=${IPA_PORT:-47399} \
  --set agent_name=bench-monitors --set status_interval_ms=10000 --set log_level=warn 2> "$DIR/agent.log" &
APID=$!
sleep "$RUN_SECONDS"
AGENT=$(curl -s -H "Authorization: Bearer $TOKEN" "$API/agents?project=bench" | grep -o '"id":"[0-9a-f]*"' | head -1 | cut -d'"' -f4 || true)
curl -s -H "Authorization: Bearer $TOKEN" "$API/agents/$AGENT/status?limit=1000" > "$DIR/status.json"
runs=$(curl -s -H "Authorization: Bearer $TOKEN" "$API/measurements?project=bench&source=synthetic&limit=10000" \
  | grep -o '"count":[0-9]*' | awk -F: '{s+=$2} END {print s+0}' || true)
# Each status covers the time since the previous one; the first interval
# includes start-up and the schedule's first (jittered) runs.
p99=$(grep -o '"loop_lag_p99_us":[0-9]*' "$DIR/status.json" | cut -d: -f2 | sort -n | tail -1 || true)
mx=$(grep -o '"loop_lag_max_us":[0-9]*' "$DIR/status.json" | cut -d: -f2 | sort -n | tail -1 || true)
cpu=$(grep -o '"cpu_permille":[0-9]*' "$DIR/status.json" | cut -d: -f2 | awk '{s+=$1; n++} END {if (n) printf "%.1f", s/n/10; else print 0}' || true)
rss=$(awk '/VmRSS/ {print $2}' "/proc/$APID/status")
overtime=$(grep -o '"monitors_overtime":[0-9]*' "$DIR/status.json" | cut -d: -f2 | sort -n | tail -1 || true)
completed=$(grep -o '"monitors_runs_completed":[0-9]*' "$DIR/status.json" | cut -d: -f2 | sort -n | tail -1 || true)
failed=$(grep -o '"monitors_runs_failed":[0-9]*' "$DIR/status.json" | cut -d: -f2 | sort -n | tail -1 || true)
echo "agent: runs_completed=${completed:-0} runs_failed=${failed:-0} synthetic_samples_stored=$runs statuses=$(grep -o '"agent_ts"' "$DIR/status.json" | wc -l)"
echo "agent: loop_lag_p99_us_worst_interval=${p99:-?} loop_lag_max_us=${mx:-?} cpu_percent_avg=$cpu rss_kib=$rss overtime=${overtime:-0}"

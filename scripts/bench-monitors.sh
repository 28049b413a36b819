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
#   5. Footprint: the real agent with 0, 1 and FP_MONITORS (100) HTTP monitors
#      scheduled (half http, half https against a self-signed local server),
#      every FP_INTERVAL (10) s, for FP_SECONDS (60); the 100 once in the
#      schedule at start, once scheduled FP_LATE (15) s after start (after
#      the agent's start-up trim): RSS (max after the first runs, and at the
#      end; goal <= 12 MB with 100) and the end's resident memory per
#      library group (/proc/PID/smaps). BASELINE_AGENT=
#      a second agent binary (e.g. built from an older commit) measured the
#      same way in the same run, for before/after. ONLY_FOOTPRINT=1 (step 5
#      only); FP_SCENARIOS (default "0 1 100 100-late") picks some; IPA_PORT
#      (47399) is the agents' UDP port.
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
swift build -c release --product monitors-bench-server 2>&1 | grep -E "error|Build" || true
SRV="$(swift build -c release --show-bin-path)/monitors-bench-server"
[ -x "$SRV" ] || { echo "build failed" >&2; exit 1; }
if [ "${ONLY_AGENT:-0}" != 1 ] && [ "${ONLY_FOOTPRINT:-0}" != 1 ]; then
  # The engine as the agent ships: static Swift runtime, libev/libsodium from
  # their .a archives (VIGIL_STATIC=1), in its own scratch path.
  VIGIL_STATIC=1 swift build -c release --static-swift-stdlib --scratch-path .build-static --product monitors-bench 2>&1 \
    | grep -E "error|Build" || true
  MB=.build-static/release/monitors-bench
  [ -x "$MB" ] || { echo "build failed" >&2; exit 1; }
  swiftc -O -static-stdlib -I scripts/bench/rss_probe scripts/bench/rss_probe.swift -o "$OUT/rss-probe-plain"
  swiftc -O -static-stdlib -I scripts/bench/rss_probe -Xcc -DPROBE_LINK_CURL scripts/bench/rss_probe.swift -lcurl \
    -o "$OUT/rss-probe-curl"
fi

# median of the numbers on stdin
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
rss_of() { "$@" | grep -o 'rss_kib=[0-9]*' | cut -d= -f2; }

SC=() EC=() SPID=
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then SC=(taskset -c 0); EC=(taskset -c 1); fi

if [ "${ONLY_AGENT:-0}" != 1 ] && [ "${ONLY_FOOTPRINT:-0}" != 1 ]; then
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
if [ "${ONLY_FOOTPRINT:-0}" != 1 ]; then
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
fi

# ── 5. Footprint: RSS with 0, 1 and FP_MONITORS HTTP monitors ───────────────
# One collector with a project per scenario; each agent binary (the one built
# here, and BASELINE_AGENT if given) runs each scenario in turn for
# FP_SECONDS while its RSS is sampled every second. Half the monitors are
# http (monitors-bench-server), half https (scripts/bench/https_server.py
# with a self-signed certificate, tls_verify off).
FP_MONITORS=${FP_MONITORS:-100}
FP_INTERVAL=${FP_INTERVAL:-10}
FP_SECONDS=${FP_SECONDS:-60}
FP_LATE=${FP_LATE:-15}
echo
echo "== 5. footprint: the real agent with 0, 1 and $FP_MONITORS HTTP monitors (every ${FP_INTERVAL}s, ${FP_SECONDS}s each; \"late\": scheduled ${FP_LATE}s after start) =="
if [ -z "${AG:-}" ]; then
  source scripts/lib/agent-build.sh
  vigil_build_agent 2>&1 | grep -E "error" || true
  swift build -c release --product vigil-collector 2>&1 | grep -E "error" || true
  AG="$VIGIL_AGENT_SCRATCH/release/vigil-agent"
  COL="$(swift build -c release --show-bin-path)/vigil-collector"
fi
FDIR=$(mktemp -d /tmp/vigil-bench-footprint.XXXXXX)
FSPID= FHPID= FCPID= FAPID=
cleanup5() {
  for p in $FAPID $FCPID $FHPID $FSPID; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$FDIR"
}
trap cleanup5 EXIT
"${SC[@]}" "$SRV" 0 > "$FDIR/server.out" 2>&1 &
FSPID=$!
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=127.0.0.1 \
  -keyout "$FDIR/key.pem" -out "$FDIR/cert.pem" 2>/dev/null
"${SC[@]}" python3 scripts/bench/https_server.py "$FDIR/cert.pem" "$FDIR/key.pem" > "$FDIR/https.out" 2>&1 &
FHPID=$!
for _ in $(seq 400); do grep -q '^ready' "$FDIR/server.out" && grep -q '^ready' "$FDIR/https.out" && break; sleep 0.05; done
HTTP_PORT=$(awk '/^ready/ {print $2}' "$FDIR/server.out")
HTTPS_PORT=$(awk '/^ready/ {print $2}' "$FDIR/https.out")
[ -n "$HTTP_PORT" ] && [ -n "$HTTPS_PORT" ] || { echo "servers did not start" >&2; cat "$FDIR"/*.out >&2; exit 1; }
FSET=(--set "data_dir=$FDIR/data" --set listen=127.0.0.1:0 --set http_listen=127.0.0.1:0)
# FP_SCENARIOS: a subset, e.g. "100-late" for a long run of that one.
read -r -a SCENARIOS <<< "${FP_SCENARIOS:-0 1 $FP_MONITORS $FP_MONITORS-late}"
declare -A FKEY
for sc in "${SCENARIOS[@]}"; do
  FKEY[$sc]=$("$COL" keys create --project "fp$sc" --create-project "${FSET[@]}" 2>/dev/null)
done
"${SC[@]}" "$COL" run "${FSET[@]}" 2> "$FDIR/collector.log" &
FCPID=$!
for _ in $(seq 400); do grep -q ' ready ' "$FDIR/collector.log" && break; sleep 0.05; done
FCPORT=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$FDIR/collector.log" | head -1)
FHPORT=$(sed -n 's/.*http on 127.0.0.1:\([0-9]*\).*/\1/p' "$FDIR/collector.log" | head -1)
FTOKEN=$(cat "$FDIR/data/admin_token")
# put_monitors PROJECT N: N monitors (odd: http, even: https) for PROJECT.
put_monitors() {
  local project=$1 n=$2 code url
  {
    printf '{"monitors":['
    for i in $(seq 1 "$n"); do
      [ "$i" -gt 1 ] && printf ','
      if [ $((i % 2)) -eq 1 ]; then url="http://127.0.0.1:$HTTP_PORT/health"; else url="https://127.0.0.1:$HTTPS_PORT/health"; fi
      printf '{"id":"m%d","name":"m%d","kind":"http","interval_secs":%d,"timeout_secs":5,"spec":{"method":"GET","url":"%s","tls_verify":false}}' \
        "$i" "$i" "$FP_INTERVAL" "$url"
    done
    printf ']}'
  } > "$FDIR/monitors.json"
  code=$(curl -s -o "$FDIR/put.out" -w '%{http_code}' -X PUT -H "Authorization: Bearer $FTOKEN" \
    --data-binary "@$FDIR/monitors.json" "http://127.0.0.1:$FHPORT/api/v1/projects/$project/monitors")
  [ "$code" = 200 ] || { echo "PUT monitors $project: HTTP $code: $(cat "$FDIR/put.out")" >&2; exit 1; }
}
for sc in "${SCENARIOS[@]}"; do case $sc in *-late) ;; *) put_monitors "fp$sc" "$sc" ;; esac; done

# footprint LABEL BINARY SCENARIO: runs the agent FP_SECONDS with SCENARIO's
# monitors (N, or N-late: none at start, N FP_LATE s later); prints one
# summary line and keeps the per-group table of the end's smaps.
footprint() {
  local label=$1 bin=$2 n=$3 peak=0 r t first=$((FP_INTERVAL + 5))
  case $n in *-late) put_monitors "fp$n" 0; first=$((FP_LATE + FP_INTERVAL + 5)) ;; esac
  "${EC[@]}" "$bin" run --set "state_dir=$FDIR/state-$label-$n" --set "access_key=${FKEY[$n]}" --set "server_port=$FCPORT" \
    --set "ipa_port=${IPA_PORT:-47399}" --set "agent_name=fp-$label-$n" --set log_level=info \
    --set schedule_sync_interval_ms=1000 2> "$FDIR/agent-$label-$n.log" &
  FAPID=$!
  for t in $(seq "$FP_SECONDS"); do
    sleep 1
    kill -0 "$FAPID" 2>/dev/null || { echo "agent exited:" >&2; cat "$FDIR/agent-$label-$n.log" >&2; exit 1; }
    case $n in *-late) [ "$t" -eq "$FP_LATE" ] && put_monitors "fp$n" "${n%-late}" ;; esac
    r=$(awk '/^VmRSS:/ {print $2}' "/proc/$FAPID/status")
    # After the first interval: the schedule applied, every monitor run once.
    [ "$t" -gt "$first" ] && [ "$r" -gt "$peak" ] && peak=$r
  done
  local end rollup
  end=$(awk '/^VmRSS:/ {print $2}' "/proc/$FAPID/status")
  rollup=$(awk '/^RssAnon:/ {a=$2} /^RssFile:/ {f=$2} END {printf "file %d KiB, anonymous %d KiB", f, a}' "/proc/$FAPID/status")
  awk -f scripts/bench/smaps_groups.awk "/proc/$FAPID/smaps" | sort -t$'\t' -k2,2nr > "$FDIR/groups-$label-$n.tsv"
  local loaded ok
  loaded=$(grep -o 'loaded libcurl[^ ]*' "$FDIR/agent-$label-$n.log" | head -1 || true)
  kill "$FAPID"; wait "$FAPID" 2>/dev/null || true; FAPID=
  printf '%-9s %9s monitors: RSS max %6d KiB after the first interval, %6d KiB at %ds (%s) %s\n' \
    "$label" "$n" "$peak" "$end" "$FP_SECONDS" "$rollup" "${loaded:+[$loaded]}"
  FP_END[$label-$n]=$end
  FP_PEAK[$label-$n]=$peak
}
declare -A FP_END FP_PEAK
LABELS=(this)
[ -n "${BASELINE_AGENT:-}" ] && LABELS=(baseline this)
for label in "${LABELS[@]}"; do
  bin=$AG; [ "$label" = baseline ] && bin=$BASELINE_AGENT
  for sc in "${SCENARIOS[@]}"; do footprint "$label" "$bin" "$sc"; done
done
echo
echo "resident KiB per library group at the end (rss / of which file pages / anonymous):"
for label in "${LABELS[@]}"; do
  for sc in "${SCENARIOS[@]}"; do
    [ "$sc" = 0 ] && continue
    echo "-- $label, $sc monitors"
    awk -F'\t' '{printf "  %-52s %6d %6d %6d\n", $1, $2, $3, $4}' "$FDIR/groups-$label-$sc.tsv"
  done
done
echo
for label in "${LABELS[@]}"; do
  line="footprint: $label"
  for sc in "${SCENARIOS[@]}"; do line+=" rss_kib_${sc/-/_}=${FP_END[$label-$sc]} max_kib_${sc/-/_}=${FP_PEAK[$label-$sc]}"; done
  echo "$line (goal with $FP_MONITORS: <= 12 MB, 11,718 KiB)"
done

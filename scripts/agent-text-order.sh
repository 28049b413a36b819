#!/usr/bin/env bash
# agent-text-order.sh — rewrites scripts/agent-text.order: the function
# sections the shipped vigil-agent links first and together, so the code an
# idle agent keeps running fills a few 64 KiB blocks of its text instead of
# being spread over all of it (the kernel maps code in 64 KiB blocks; see
# docs/PERFORMANCE.md, "Agent").
#
# Builds the agent as it ships (scripts/lib/agent-build.sh), starts a
# collector (one project, key and rule) and the agent with the settings of
# scripts/bench-agent.sh (status every second), waits for the mapped-page
# trim, then single-steps the idle agent for TRACE_S seconds
# (scripts/bench/steptrace.c) and names the function of every instruction it
# executed (the link map's input sections). Then it gives the same agent
# MONITORS HTTP monitors (half http, half https against local servers, as in
# scripts/bench-monitors.sh's footprint step), waits for the trim after the
# first https run, and traces it again for MONITOR_TRACE_S seconds: running
# monitors, shipping their results and statuses, and whatever else an agent
# with monitors runs. The file: a fixed head (the trim itself, whose last
# instructions run after its own madvise and so stay resident), the idle
# agent's sections, then the sections only the agent with monitors ran, each
# part in address order — an idle agent keeps only the first blocks resident,
# an agent with monitors the next few as well. Symbols without a section of
# their own (Swift runtime code in one .text, libev, libsodium) match nothing
# and cost nothing.
#
# Regenerate after changing code the agent runs: stale lines only stop
# matching (the agent keeps working; its RSS creeps back up).
# Needs ptrace over a sibling process: root, or kernel.yama.ptrace_scope=0.
# Loopback only. Environment: TRACE_S (90), MONITOR_TRACE_S (120),
# MONITORS (10), PORT (31250; below the ephemeral range).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/agent-build.sh
source scripts/lib/procs.sh

TRACE_S=${TRACE_S:-90}
MONITOR_TRACE_S=${MONITOR_TRACE_S:-120}
MONITORS=${MONITORS:-10}
PORT=${PORT:-31250}          # agent UDP; +2 collector sessions; +3 collector HTTP
OUT=.build/agent-text-order
ORDER=scripts/agent-text.order
mkdir -p "$OUT"

echo "== build (release) =="
vigil_build_agent -Xlinker -Map="$PWD/$OUT/vigil-agent.map" 2>&1 | grep -E "error|warning: |Build" || true
swift build -c release --product vigil-collector 2>&1 | grep -E "error|Build" || true
swift build -c release --product monitors-bench-server 2>&1 | grep -E "error|Build" || true
AGENT_BIN="$VIGIL_AGENT_SCRATCH/release/vigil-agent"
COLLECTOR_BIN="$(swift build -c release --show-bin-path)/vigil-collector"
SERVER_BIN="$(swift build -c release --show-bin-path)/monitors-bench-server"
[ -x "$AGENT_BIN" ] && [ -x "$COLLECTOR_BIN" ] && [ -x "$SERVER_BIN" ] || { echo "build failed" >&2; exit 1; }
gcc -O2 -Wall -o "$OUT/steptrace" scripts/bench/steptrace.c

DIR=$(mktemp -d /tmp/vigil-order.XXXXXX)
CPID= APID= SPID= HPID=
cleanup() { vigil_stop_pids $APID $CPID $SPID $HPID; rm -rf "$DIR"; }
trap cleanup EXIT
cat > "$DIR/collector.conf" <<EOC
listen = 127.0.0.1:$((PORT + 2))
http_listen = 127.0.0.1:$((PORT + 3))
data_dir = $DIR/data
log_level = warn
EOC
KEY=$("$COLLECTOR_BIN" keys create --project bench --create-project --config "$DIR/collector.conf" 2>/dev/null)
"$COLLECTOR_BIN" run --config "$DIR/collector.conf" 2> "$DIR/collector.log" &
CPID=$!
for _ in $(seq 100); do [ -s "$DIR/data/admin_token" ] && curl -sf "http://127.0.0.1:$((PORT + 3))/healthz" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$((PORT + 3))/healthz" >/dev/null || { echo "the collector did not start:" >&2; cat "$DIR/collector.log" >&2; exit 1; }
curl -sf -H "Authorization: Bearer $(cat "$DIR/data/admin_token")" -X PUT \
    "http://127.0.0.1:$((PORT + 3))/api/v1/projects/bench/patterns" \
    -d '{"patterns":[{"method":"GET","host":"api.example.com","path":"/v1/users/*","monitor":"api","check":"get-user"}]}' >/dev/null
"$AGENT_BIN" run --set server_port=$((PORT + 2)) --set access_key="$KEY" --set ipa_port=$PORT \
    --set agent_name=bench --set status_interval_ms=1000 --set log_level=info \
    --set schedule_sync_interval_ms=1000 --set state_dir="$DIR/state" 2> "$DIR/agent.log" &
APID=$!
for _ in $(seq 300); do grep -q "mapped pages trimmed" "$DIR/agent.log" && break; sleep 0.1; done
grep -q "mapped pages trimmed" "$DIR/agent.log" || { echo "the agent did not trim:" >&2; cat "$DIR/agent.log" >&2; exit 1; }
sleep 1

echo "== tracing the idle agent for ${TRACE_S}s =="
"$OUT/steptrace" "$APID" "$TRACE_S" > "$OUT/addresses"
kill -0 "$APID" || { echo "the agent died while traced:" >&2; cat "$DIR/agent.log" >&2; exit 1; }

echo "== $MONITORS HTTP monitors (half http, half https): tracing for ${MONITOR_TRACE_S}s =="
"$SERVER_BIN" 0 > "$DIR/server.out" 2>&1 &
SPID=$!
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=127.0.0.1 \
    -keyout "$DIR/key.pem" -out "$DIR/cert.pem" 2>/dev/null
python3 scripts/bench/https_server.py "$DIR/cert.pem" "$DIR/key.pem" > "$DIR/https.out" 2>&1 &
HPID=$!
for _ in $(seq 400); do grep -q '^ready' "$DIR/server.out" && grep -q '^ready' "$DIR/https.out" && break; sleep 0.05; done
HTTP_PORT=$(awk '/^ready/ {print $2}' "$DIR/server.out")
HTTPS_PORT=$(awk '/^ready/ {print $2}' "$DIR/https.out")
[ -n "$HTTP_PORT" ] && [ -n "$HTTPS_PORT" ] || { echo "servers did not start" >&2; cat "$DIR"/*.out >&2; exit 1; }
{
    printf '{"monitors":['
    for i in $(seq 1 "$MONITORS"); do
        [ "$i" -gt 1 ] && printf ','
        if [ $((i % 2)) -eq 1 ]; then url="http://127.0.0.1:$HTTP_PORT/health"; else url="https://127.0.0.1:$HTTPS_PORT/health"; fi
        printf '{"id":"m%d","name":"m%d","kind":"http","interval_secs":10,"timeout_secs":5,"spec":{"method":"GET","url":"%s","tls_verify":false}}' "$i" "$i" "$url"
    done
    printf ']}'
} > "$DIR/monitors.json"
curl -sf -H "Authorization: Bearer $(cat "$DIR/data/admin_token")" -X PUT --data-binary "@$DIR/monitors.json" \
    "http://127.0.0.1:$((PORT + 3))/api/v1/projects/bench/monitors" >/dev/null
for _ in $(seq 600); do grep -q "mapped pages trimmed.*first-https-run" "$DIR/agent.log" && break; sleep 0.1; done
grep -q "mapped pages trimmed.*first-https-run" "$DIR/agent.log" || { echo "the agent did not run an https monitor:" >&2; cat "$DIR/agent.log" >&2; exit 1; }
sleep 1
"$OUT/steptrace" "$APID" "$MONITOR_TRACE_S" > "$OUT/addresses-monitors"
kill -0 "$APID" || { echo "the agent died while traced:" >&2; cat "$DIR/agent.log" >&2; exit 1; }

# The input sections of .text from the link map (address, size, name, in
# address order; gold prints a long name on a line of its own), then the
# addresses (ascending) against them: the sections that contain one, except
# the plain `.text` of objects built without function sections.
awk 'function hex(s,   i, v) { v = 0; s = tolower(substr(s, 3)); for (i = 1; i <= length(s); i++) v = v * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1; return v }
     /^[^ ]/ { text = ($1 == ".text"); pending = ""; next }
     !text { next }
     /^ \./ { if (NF >= 4) print hex($2), hex($3), $1; else pending = $1; next }
     pending != "" && $1 ~ /^0x/ && NF >= 3 { print hex($1), hex($2), pending; pending = "" }' "$OUT/vigil-agent.map" > "$OUT/sections-all"
# sections ADDRESSES: the function sections that hold one of ADDRESSES.
sections() {
    awk 'NR == FNR { hit[++n] = $1 + 0; next }
         {
             start = $1 + 0; end = start + $2
             while (i < n && hit[i + 1] < start) i++
             if (i < n && hit[i + 1] < end && $3 ~ /^\.text\./) print $3
         }' "$1" "$OUT/sections-all" | awk '!seen[$0]++'
}
sections "$OUT/addresses" > "$OUT/sections"
sections "$OUT/addresses-monitors" | awk 'NR == FNR { idle[$0] = 1; next } !idle[$0]' "$OUT/sections" - > "$OUT/sections-monitors"

{
    echo "# The function sections vigil-agent runs, linked first and together (gold"
    echo "# --section-ordering-file; scripts/lib/agent-build.sh): an idle agent's, then"
    echo "# those only an agent running HTTP monitors adds. Written by scripts/agent-text-order.sh"
    echo "# on $(date -u +%Y-%m-%d) from ${TRACE_S}s of tracing idle and ${MONITOR_TRACE_S}s with $MONITORS monitors; do not edit."
    echo "# The trim (MappedPageTrim, the timer's closure, madvise):"
    echo '.text.$s5Agent14MappedPageTrimO*'
    echo '.text.$s5Agent0A11CommandLineO3run_6replay*'
    echo '.text.$s7Reactor8SyscallsO7madvise*'
    echo '.text.$s7Reactor8SyscallsO8blocking*'
    echo '.text.$s7Reactor8SyscallsO8retrying*'
    echo "# Traced, idle:"
    cat "$OUT/sections"
    echo "# Traced, running HTTP monitors:"
    cat "$OUT/sections-monitors"
} > "$ORDER"
echo "idle: $(wc -l < "$OUT/sections") sections, $(wc -l < "$OUT/addresses") distinct instruction addresses"
echo "with monitors: $(wc -l < "$OUT/sections-monitors") more sections, $(wc -l < "$OUT/addresses-monitors") distinct instruction addresses"
echo "wrote $ORDER"

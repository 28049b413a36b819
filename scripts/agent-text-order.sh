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
# an agent with monitors the next few as well. The file names functions (lld
# --symbol-ordering-file moves the section that defines a named symbol), so
# it holds only functions with a section of their own (.text.NAME): code in
# an object's one .text (the Swift runtime's Swift.o, libev, libsodium) is
# left where it is, and so is every name also defined in such a section.
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

# The executed file offsets as virtual addresses (the executable LOAD
# segments of the program headers: lld places the code segment's vaddr a
# page above its file offset).
to_vaddr() {
    readelf -lW "$AGENT_BIN" | awk 'function hex(s,   i, v) { v = 0; s = tolower(s); sub(/^0x/, "", s); for (i = 1; i <= length(s); i++) v = v * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1; return v }
        NR == FNR { if ($1 == "LOAD" && index($0, " E ") > 0) { n++; off[n] = hex($2); va[n] = hex($3); sz[n] = hex($5) } next }
        { for (i = 1; i <= n; i++) if ($1 >= off[i] && $1 < off[i] + sz[i]) { printf "%.0f\n", $1 - off[i] + va[i]; next } }' - "$1"
}
to_vaddr "$OUT/addresses" > "$OUT/vaddrs"
to_vaddr "$OUT/addresses-monitors" > "$OUT/vaddrs-monitors"
# The input sections of .text from lld's link map (address, size, name, in
# address order: columns VMA LMA Size Align, then the output section at the
# Out column or `file.o:(section)` at the In column), then the addresses
# (ascending) against them: the symbols of the sections that contain one
# (a section .text.NAME holds the function NAME), except the plain `.text`
# of objects built without function sections.
awk 'function hex(s,   i, v) { v = 0; s = tolower(s); sub(/^0x/, "", s); for (i = 1; i <= length(s); i++) v = v * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1; return v }
     NR == 1 { out = index($0, "Out"); next }
     index($0, $5) == out { text = ($5 == ".text"); next }
     !text || $5 !~ /:\(/ { next }
     { name = substr($5, index($5, ":(") + 2); sub(/\)$/, "", name); print hex($1), hex($3), name }' \
    "$OUT/vigil-agent.map" > "$OUT/sections-all"
# Names lld's --symbol-ordering-file must not get: a symbol defined (also)
# in a section other than its own .text.NAME — e.g. a merged specialisation
# (…Tm) local to an object of ours and to the Swift standard library's
# Swift.o, whose one .text (1.6 MB) the link would then move in between.
awk 'NR == 1 { out = index($0, "Out"); next }
     index($0, $5) == out { text = ($5 == ".text"); next }
     !text { next }
     $5 ~ /:\(/ { sec = substr($5, index($5, ":(") + 2); sub(/\)$/, "", sec); next }
     sec != ".text." $5 { print $5 }' "$OUT/vigil-agent.map" | sort -u > "$OUT/shared"
# sections ADDRESSES: the functions whose sections hold one of ADDRESSES.
sections() {
    awk 'NR == FNR { hit[++n] = $1 + 0; next }
         {
             start = $1 + 0; end = start + $2
             while (i < n && hit[i + 1] < start) i++
             if (i < n && hit[i + 1] < end && $3 ~ /^\.text\./) print substr($3, 7)
         }' "$1" "$OUT/sections-all" | awk '!seen[$0]++'
}
sections "$OUT/vaddrs" > "$OUT/sections"
sections "$OUT/vaddrs-monitors" | awk 'NR == FNR { idle[$0] = 1; next } !idle[$0]' "$OUT/sections" - > "$OUT/sections-monitors"

{
    echo "# The functions vigil-agent runs, linked first and together (lld"
    echo "# --symbol-ordering-file; scripts/lib/agent-build.sh): an idle agent's, then"
    echo "# those only an agent running HTTP monitors adds. Written by scripts/agent-text-order.sh"
    echo "# on $(date -u +%Y-%m-%d) from ${TRACE_S}s of tracing idle and ${MONITOR_TRACE_S}s with $MONITORS monitors; do not edit."
    echo "# The trim (MappedPageTrim, the timer's closure, madvise):"
    awk '$3 ~ /^\.text\.\$s(5Agent14MappedPageTrimO|5Agent0A11CommandLineO3run_6replay|7Reactor8SyscallsO7madvise|7Reactor8SyscallsO8blocking|7Reactor8SyscallsO8retrying)/ { print substr($3, 7) }' \
        "$OUT/sections-all"
    echo "# Traced, idle:"
    cat "$OUT/sections"
    echo "# Traced, running HTTP monitors:"
    cat "$OUT/sections-monitors"
} | awk 'NR == FNR { shared[$0] = 1; next } /^#/ || (!seen[$0]++ && !($0 in shared))' "$OUT/shared" - > "$ORDER"
echo "idle: $(wc -l < "$OUT/sections") sections, $(wc -l < "$OUT/addresses") distinct instruction addresses"
echo "with monitors: $(wc -l < "$OUT/sections-monitors") more sections, $(wc -l < "$OUT/addresses-monitors") distinct instruction addresses"
echo "wrote $ORDER"

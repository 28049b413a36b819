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
# PORT (0: any free port), ROUNDS (3, for the RSS figures).
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
SC=() EC=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then SC=(taskset -c 0); EC=(taskset -c 1); fi
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

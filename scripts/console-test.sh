#!/usr/bin/env bash
# The console in a real browser: headless Chromium (Debian's chromium,
# chromium-driver and python3-selenium) drives the console of a real
# collector with two real agents, through Tests/Console/console_test.py —
# one browser, one collector for every case. Screenshots of each page go to
# docs/console/*.png (VIGIL_SCREENSHOTS=DIR for elsewhere, empty for none;
# scripts/test.sh sends them to a scratch folder).
#   scripts/console-test.sh            (after `swift build`; test.sh runs it)
# Uses loopback only; stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/deps.sh
vigil_ensure_deps

BIN=$(swift build --show-bin-path)
for p in vigil-collector vigil-agent; do
  [ -x "$BIN/$p" ] || swift build --product "$p" >/dev/null
done
DIR=$(mktemp -d /tmp/vigil-console-test.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$DIR"
}
trap cleanup EXIT

# A free UDP port for an agent's IPA receiver.
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

SET=(--set "data_dir=$DIR/data" --set "listen=127.0.0.1:0" --set "http_listen=127.0.0.1:0" --set self_metrics_interval_ms=500 --set alert_eval_interval_ms=500)
mkdir -p "$DIR/data"
KEY=$("$BIN/vigil-collector" keys create --project shop --create-project "${SET[@]}")
"$BIN/vigil-collector" run "${SET[@]}" 2> "$DIR/collector.log" &
PIDS+=($!)
HTTP_PORT= SESSION_PORT=
for _ in $(seq 200); do
  HTTP_PORT=$(sed -nE 's/.*http on 127\.0\.0\.1:([0-9]+).*/\1/p' "$DIR/collector.log" | head -1)
  SESSION_PORT=$(sed -nE 's/.*listening on 127\.0\.0\.1:([0-9]+).*/\1/p' "$DIR/collector.log" | head -1)
  [ -n "$HTTP_PORT" ] && [ -n "$SESSION_PORT" ] && break
  sleep 0.05
done
[ -n "$HTTP_PORT" ] || { cat "$DIR/collector.log"; exit 1; }

# beta receives StatsD as well (the Agent page shows its counters).
for name in alpha beta; do
  EXTRA=()
  [ "$name" = beta ] && EXTRA=(--set "statsd_port=$(free_port)")
  "$BIN/vigil-agent" run --set "access_key=$KEY" --set "server_port=$SESSION_PORT" --set "ipa_port=$(free_port)" \
      --set "agent_name=$name" --set "state_dir=$DIR/state-$name" "${EXTRA[@]}" \
      --set status_interval_ms=1000 --set aggregation_interval_ms=1000 \
      --set reconnect_interval_min=200 --set reconnect_interval_max=1000 2> "$DIR/agent-$name.log" &
  PIDS+=($!)
done

set +e
VIGIL_URL="http://127.0.0.1:$HTTP_PORT" VIGIL_TOKEN=$(cat "$DIR/data/admin_token") \
  VIGIL_SCREENSHOTS=${VIGIL_SCREENSHOTS-docs/console} /usr/bin/python3 Tests/Console/console_test.py
rc=$?
set -e
if [ "$rc" -ne 0 ]; then
  echo "--- collector log (tail)"; tail -20 "$DIR/collector.log"
  for name in alpha beta; do echo "--- agent $name log (tail)"; tail -10 "$DIR/agent-$name.log"; done
fi
exit "$rc"

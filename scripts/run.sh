#!/usr/bin/env bash
# Quick start: the real system on this machine.
#   1. installs the Debian packages Vigil needs when any is missing;
#   2. builds vigil-collector and vigil-agent (release);
#   3. starts a collector on ./data (its embedded default; VIGIL_DATA=DIR for
#      another) with a demo project, an access key (kept in DIR/demo.key and
#      reused) and filter rules;
#   4. starts an agent for that key, and sends a little sample IPA traffic
#      to it over UDP (a burst every second);
#   5. prints the web console's URL, and curl lines for the agents,
#      measurements and events, with the admin token. Ctrl-C stops everything
#      (the agent drains first).
# Ports: agent sessions 127.0.0.1:6600, HTTP API 127.0.0.1:6680, IPA UDP
# 127.0.0.1:51712 (VIGIL_SESSION_PORT, VIGIL_HTTP_PORT, VIGIL_IPA_PORT).
#
#   scripts/run.sh --cluster   instead: three collectors on one private PostgreSQL and agents
#                              spread over them (scripts/cluster.sh start, in ./cluster), in the
#                              foreground; Ctrl-C runs scripts/cluster.sh stop.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = --cluster ]; then
    scripts/cluster.sh start
    trap 'trap - INT TERM; echo; scripts/cluster.sh stop; exit 0' INT TERM
    echo "Ctrl-C stops everything."
    while [ -f "${VIGIL_CLUSTER_DIR:-./cluster}/pids" ]; do sleep 1 & wait $!; done
    exit 0
elif [ $# -gt 0 ]; then
    echo "run.sh: unknown option '$1' (--cluster, or none)" >&2
    exit 2
fi
source scripts/lib/deps.sh
vigil_ensure_deps

DATA=${VIGIL_DATA:-./data}
SESSION_PORT=${VIGIL_SESSION_PORT:-6600}
HTTP_PORT=${VIGIL_HTTP_PORT:-6680}
IPA_PORT=${VIGIL_IPA_PORT:-51712}
PROJECT=demo

echo "== building (release) =="
swift build -c release --product vigil-collector
swift build -c release --product vigil-agent
BIN=$(swift build -c release --show-bin-path)
mkdir -p "$DATA"
COLLECTOR=("$BIN/vigil-collector")
SET=(--set "data_dir=$DATA" --set "listen=127.0.0.1:$SESSION_PORT" --set "http_listen=127.0.0.1:$HTTP_PORT")

CPID= APID= SPID=
stop() {
    trap - INT TERM EXIT
    echo
    echo "== stopping =="
    [ -n "$SPID" ] && kill "$SPID" 2>/dev/null || true
    [ -n "$APID" ] && kill -TERM "$APID" 2>/dev/null && wait "$APID" 2>/dev/null || true
    [ -n "$CPID" ] && kill -TERM "$CPID" 2>/dev/null && wait "$CPID" 2>/dev/null || true
    echo "stopped (data kept in $DATA; logs in $DATA/collector.log and $DATA/agent.log)"
}
trap stop INT TERM EXIT

# A key for the demo project, created once.
if [ ! -s "$DATA/demo.key" ]; then
    (umask 077; "${COLLECTOR[@]}" keys create --project "$PROJECT" --create-project "${SET[@]}" > "$DATA/demo.key")
fi
KEY=$(cat "$DATA/demo.key")

echo "== starting the collector (log: $DATA/collector.log) =="
# Own sessions (setsid): Ctrl-C reaches only this script, whose trap stops
# each program once (a second signal would skip the agent's drain).
setsid "${COLLECTOR[@]}" run "${SET[@]}" 2> "$DATA/collector.log" &
CPID=$!
for _ in $(seq 200); do
    curl -sf "http://127.0.0.1:$HTTP_PORT/healthz" >/dev/null 2>&1 && break
    kill -0 "$CPID" 2>/dev/null || { cat "$DATA/collector.log"; exit 1; }
    sleep 0.05
done
TOKEN=$(cat "$DATA/admin_token")
API="http://127.0.0.1:$HTTP_PORT/api/v1"
curl -sf -X PUT -H "Authorization: Bearer $TOKEN" "$API/projects/$PROJECT/patterns" -d '{"patterns":[
  {"method":"GET","host":"api.example.com","path":"/v1/products/*","monitor":"shop","check":"product"},
  {"method":"POST","host":"api.example.com","path":"/v1/cart","monitor":"shop","check":"add-to-cart"},
  {"method":"POST","host":"pay.example.net","path":"/charge","monitor":"payments","check":"charge"},
  {"method":"","host":"*.example.com","path":"*","monitor":"shop","check":"other"}
]}' >/dev/null

echo "== starting the agent (log: $DATA/agent.log) =="
setsid "$BIN/vigil-agent" run --set "state_dir=$DATA/agent-state" --set "access_key=$KEY" --set "server_port=$SESSION_PORT" --set "ipa_port=$IPA_PORT" \
    --set agent_name=demo-agent --set aggregation_interval_ms=5000 --set status_interval_ms=5000 \
    --set forward_raw_events=on 2> "$DATA/agent.log" &
APID=$!

# Sample traffic: a burst of records every second, in both formats, with a
# few that are malformed or match no rule (counted by the agent, not sent).
send() { printf '%b' "$1" > "/dev/udp/127.0.0.1/$IPA_PORT" 2>/dev/null || true; }
(
    i=0
    while true; do
        for _ in $(seq 20); do
            i=$((i + 1))
            send "0\tGET\tapi.example.com\t/v1/products/$((i % 50))?ref=mail\t$((RANDOM % 80 + 5)).$((RANDOM % 10))\n"
            [ $((i % 4)) -eq 0 ] && send "1\tPOST\thttps://api.example.com/v1/cart\t$((RANDOM % 150 + 20))\n"
            [ $((i % 7)) -eq 0 ] && send "0 POST pay.example.net /charge $((RANDOM % 400 + 100))\n"
            [ $((i % 11)) -eq 0 ] && send "0\tGET\tcdn.other.org\t/img.png\t3\n"
            [ $((i % 13)) -eq 0 ] && send "garbage line\n"
        done
        sleep 1
    done
) &
SPID=$!

sleep 2
AGENT_ID=$(curl -sf -H "Authorization: Bearer $TOKEN" "$API/agents?project=$PROJECT" | grep -o '"id":"[0-9a-f]*"' | head -1 | cut -d'"' -f4 || true)
cat <<EOF

Vigil is running: collector on 127.0.0.1:$SESSION_PORT (HTTP 127.0.0.1:$HTTP_PORT), agent receiving IPA on
udp 127.0.0.1:$IPA_PORT, sample traffic flowing. Aggregates arrive every 5 s.

Console:  http://127.0.0.1:$HTTP_PORT/   (sign in with the admin token: $TOKEN)

Try:

  curl -s -H "Authorization: Bearer $TOKEN" "$API/agents"
  curl -s -H "Authorization: Bearer $TOKEN" "$API/measurements?project=$PROJECT&limit=20"
  curl -s -H "Authorization: Bearer $TOKEN" "$API/events?project=$PROJECT&limit=20"
  curl -s -H "Authorization: Bearer $TOKEN" "$API/projects/$PROJECT/patterns"
  curl -s -H "Authorization: Bearer $TOKEN" -X POST "$API/agents/${AGENT_ID:-AGENT_ID}/capture" -d '{"action":"stop"}'
  curl -s -H "Authorization: Bearer $TOKEN" -X PUT "$API/agents/${AGENT_ID:-AGENT_ID}/config" -d '{"aggregation_interval_ms":"10s"}'
  curl -s http://127.0.0.1:$HTTP_PORT/metrics

Send your own records:  printf '0\tGET\tapi.example.com\t/v1/products/7\t12.5\n' > /dev/udp/127.0.0.1/$IPA_PORT

Ctrl-C stops the agent (it drains its queues first) and the collector.
EOF
wait "$APID"

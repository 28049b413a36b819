#!/usr/bin/env bash
# cluster-sync-latency.sh — how long a change made through one collector takes to reach an agent
# connected to another collector of the same PostgreSQL database (docs/PERFORMANCE.md, "Changes
# between collectors"; docs/COLLECTOR.md, "Changes between collectors").
#
#   scripts/cluster-sync-latency.sh [--changes N] [--debug] [--keep]
#
# Builds vigil-collector and vigil-agent (release; --debug: the debug build), then, on loopback,
# with every file in a temporary directory:
#  1. a private PostgreSQL (scripts/lib/postgres.sh) and two collectors A and B on one database,
#     sharing the installation's static key (B's data_dir gets A's collector_key);
#  2. a real vigil-agent connected to B;
#  3. N filter-rule changes (PUT /api/v1/projects/load/patterns) sent to A, each at a random
#     phase of B's 250 ms poll; for each, the time from just before the request to the agent's
#     "filter rules installed" log line of that version (the agent's own clock, same machine).
# Ends with one line `cluster-sync-latency: key=value …` (ms). Stops everything it started on exit.
#
# Options (or environment): --changes N (CHANGES, 40), --debug, --keep (keep the temporary
# directory). PORT (27800: A's sessions, +1 B's, +2 the agent's IPA port; HTTP +80 and +81).
set -euo pipefail
cd "$(dirname "$0")/.."

CHANGES=${CHANGES:-40}
PORT=${PORT:-27800}
CONFIG=release
KEEP=0
while [ $# -gt 0 ]; do
    case "$1" in
        --changes) CHANGES=$2; shift 2 ;;
        --debug) CONFIG=debug; shift ;;
        --keep) KEEP=1; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "cluster-sync-latency.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done
case "$CHANGES$PORT" in *[!0-9]*) echo "cluster-sync-latency.sh: numbers expected" >&2; exit 2 ;; esac

source scripts/lib/deps.sh
source scripts/lib/procs.sh
vigil_ensure_deps

vigil_workdir cluster-sync-latency.sh

say "== build ($CONFIG) =="
for product in vigil-collector vigil-agent; do
    swift build -c "$CONFIG" --product "$product" 2>&1 | grep -E "error|Build" >&2 || true
done
BIN=$(swift build -c "$CONFIG" --show-bin-path)
for b in vigil-collector vigil-agent; do [ -x "$BIN/$b" ] || fail "$b was not built"; done

say "== PostgreSQL =="
bash scripts/lib/postgres.sh start "$DIR/pg" $$ >&2 || fail "cannot start PostgreSQL"
PGPORT=$(cat "$DIR/pg/port")
psql -X -q -h "$DIR/pg" -p "$PGPORT" -U vigil -d postgres -c "CREATE DATABASE vigil"

for c in a b; do
    off=0; [ $c = b ] && off=1
    mkdir -m 0700 -p "$DIR/$c"
    cat > "$DIR/$c.conf" <<EOF
listen = 127.0.0.1:$((PORT + off))
http_listen = 127.0.0.1:$((PORT + 80 + off))
data_dir = $DIR/$c
store = postgresql
postgresql_url = host=$DIR/pg port=$PGPORT user=vigil dbname=vigil
EOF
done
"$BIN/vigil-collector" keys create --project load --create-project --config "$DIR/a.conf" > "$DIR/key" 2>"$DIR/keys.log" \
    || fail "vigil-collector keys create failed: $(cat "$DIR/keys.log")"
install -m 0600 "$DIR/a/collector_key" "$DIR/b/collector_key"
for c in a b; do
    off=0; [ $c = b ] && off=1
    "$BIN/vigil-collector" run --config "$DIR/$c.conf" > /dev/null 2> "$DIR/$c.log" &
    PIDS+=("$!")
    for _ in $(seq 300); do
        curl -sf "http://127.0.0.1:$((PORT + 80 + off))/healthz" >/dev/null 2>&1 && break
        kill -0 "${PIDS[-1]}" 2>/dev/null || { cat "$DIR/$c.log" >&2; fail "collector $c did not start"; }
        sleep 0.1
    done
done

say "== an agent on B =="
"$BIN/vigil-agent" run --set "state_dir=$DIR/agent" --set "access_key=$(cat "$DIR/key")" --set "server_port=$((PORT + 1))" \
    --set "ipa_port=$((PORT + 2))" --set agent_name=sync-probe 2> "$DIR/agent.log" &
PIDS+=("$!")
connected() {
    curl -sf -H "Authorization: Bearer $(cat "$DIR/b/admin_token")" "http://127.0.0.1:$((PORT + 81))/api/v1/agents?project=load" \
        | grep -q '"connected":true'
}
for _ in $(seq 300); do
    connected && break
    kill -0 "${PIDS[-1]}" 2>/dev/null || { cat "$DIR/agent.log" >&2; fail "the agent did not start"; }
    sleep 0.1
done
connected || fail "the agent did not connect to B: $(tail -5 "$DIR/agent.log")"

say "== $CHANGES filter-rule changes through A =="
python3 - "$DIR" "$((PORT + 80))" "$CHANGES" <<'PY'
import json, random, re, sys, time, urllib.request
from datetime import datetime, timezone
d, http, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
token = open(f"{d}/a/admin_token").read().strip()
def installed():
    out = {}
    for line in open(f"{d}/agent.log", errors="replace"):
        m = re.match(r"(\S+Z) info filter rules installed.* version=(\d+)", line)
        if m:
            out.setdefault(int(m.group(2)), datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%fZ")
                           .replace(tzinfo=timezone.utc).timestamp())
    return out
lat = []
for i in range(n):
    time.sleep(random.uniform(0.3, 0.6))   # a random phase of B's 250 ms poll
    body = json.dumps({"patterns": [{"host": "*", "path": f"/change-{i}/*", "monitor": "m", "check": "c"}]}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{http}/api/v1/projects/load/patterns", data=body, method="PUT",
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    t0 = time.time()
    version = json.load(urllib.request.urlopen(req, timeout=10))["version"]
    deadline = t0 + 10
    while time.time() < deadline and version not in installed():
        time.sleep(0.005)
    got = installed().get(version)
    if got is None:
        sys.exit(f"cluster-sync-latency.sh: version {version} never reached the agent")
    lat.append(max(0.0, (got - t0) * 1000))
lat.sort()
q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
print(f"cluster-sync-latency: changes={n} median_ms={q(0.5):.0f} p90_ms={q(0.9):.0f} max_ms={lat[-1]:.0f} min_ms={lat[0]:.0f}")
PY

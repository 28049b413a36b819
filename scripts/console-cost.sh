#!/usr/bin/env bash
# console-cost.sh [AGENTS] [CALLS] — what the console's polling costs the
# collector with AGENTS (10000) agent sessions open (docs/PERFORMANCE.md,
# "Console"). A fresh collector (release build) gets AGENTS sessions from
# `vigil-load density`; while they are held, each API call a console page
# repeats every 2 s is timed CALLS (100) times: the fleet page's first page,
# the same filtered by state and by a name search (a scan of every agent
# row), the fleet page's own call in name order with the counts per state (a
# grouped read of every agent row), an agent's page and its configuration. Prints, per call, the
# latency (p50, max, from curl) and the collector's CPU time per call (its
# process_cpu_seconds_total before and after, the idle loop's share
# subtracted), and what one open console costs per second at 2 s polling.
# Release binaries must be built: swift build -c release --product
# vigil-collector; --product vigil-load. Ports: PORT (27800) and PORT+80.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/procs.sh

agents=${1:-10000}
calls=${2:-100}
PORT=${PORT:-27800}
HTTP=$((PORT + 80))
BIN=$(swift build -c release --show-bin-path)
for b in vigil-collector vigil-load; do
    [ -x "$BIN/$b" ] || { echo "console-cost.sh: $BIN/$b missing; run: swift build -c release --product $b" >&2; exit 1; }
done
ulimit -Sn "$(ulimit -Hn)"
DIR=$(mktemp -d /tmp/vigil-console-cost.XXXXXX)
PIDS=()
trap 'vigil_stop_pids "${PIDS[@]}"; rm -rf "$DIR"' EXIT
trap 'exit 130' INT TERM

printf 'listen = 127.0.0.1:%s\nhttp_listen = 127.0.0.1:%s\ndata_dir = %s/collector\nmax_clients = %s\n' \
    "$PORT" "$HTTP" "$DIR" $((agents + 1000)) > "$DIR/c.conf"
"$BIN/vigil-collector" keys create --project load --create-project --config "$DIR/c.conf" > "$DIR/key" 2>/dev/null
"$BIN/vigil-collector" run --config "$DIR/c.conf" 2> "$DIR/c.log" &
PIDS+=($!)
for _ in $(seq 100); do grep -q " ready " "$DIR/c.log" && break; sleep 0.1; done
TOKEN=$(cat "$DIR/collector/admin_token")
API="http://127.0.0.1:$HTTP/api/v1"

hold=$(( 60 + agents / 1000 * 4 ))
"$BIN/vigil-load" density --key-file "$DIR/key" --collector "127.0.0.1:$PORT" --agents "$agents" --duration "$hold" \
    --rate 5000 --ledger "$DIR/ledger" --json "$DIR/out.json" --prefix console > "$DIR/load.out" 2> "$DIR/load.log" &
PIDS+=($!)
connected() { curl -sf -H "Authorization: Bearer $TOKEN" "$API/agents?limit=10000" | grep -o '"connected":true' | wc -l; }
for _ in $(seq 300); do [ "$(connected)" -ge "$agents" ] && break; sleep 0.5; done
echo "agents connected: $(connected) of $agents"
ONE=$(curl -sf -H "Authorization: Bearer $TOKEN" "$API/agents?limit=1" | sed -nE 's/.*"id":"([^"]+)".*/\1/p')

cpu() { curl -sf "http://127.0.0.1:$HTTP/metrics" | awk '/^process_cpu_seconds_total / {print $2}'; }
# The loop's own CPU with AGENTS idle sessions (pings), per second, to subtract.
c0=$(cpu); t0=$(date +%s.%N); sleep 5; c1=$(cpu); t1=$(date +%s.%N)
idle=$(awk -v a="$c0" -v b="$c1" -v s="$t0" -v e="$t1" 'BEGIN {print (b - a) / (e - s)}')
printf 'collector idle with %d sessions: %.1f ms CPU per second\n' "$agents" "$(awk -v i="$idle" 'BEGIN {print i * 1000}')"

total_per_poll=0
measure() {
    local label=$1 path=$2 times=() c0 c1 t0 t1
    c0=$(cpu); t0=$(date +%s.%N)
    for _ in $(seq "$calls"); do
        times+=("$(curl -s -o "$DIR/body" -w '%{time_total}' -H "Authorization: Bearer $TOKEN" "$API$path")")
    done
    t1=$(date +%s.%N); c1=$(cpu)
    local bytes; bytes=$(wc -c < "$DIR/body")
    printf '%s\n' "${times[@]}" | sort -n | awk -v l="$label" -v n="$calls" -v a="$c0" -v b="$c1" -v s="$t0" -v e="$t1" \
        -v idle="$idle" -v bytes="$bytes" '{v[NR]=$1} END {
            cpu = ((b - a) - idle * (e - s)) / n * 1000; if (cpu < 0) cpu = 0
            printf "%-28s p50 %6.2f ms  max %6.2f ms  collector CPU %5.2f ms/call  %7d bytes\n", l, v[int(n/2)]*1000, v[n]*1000, cpu, bytes }'
}
measure "fleet page (50)"             "/agents?limit=50"
measure "fleet, state filter"         "/agents?limit=50&state=stopped"
measure "fleet, name search"          "/agents?limit=50&search=zz-no-such"
measure "fleet by name, with counts"  "/agents?limit=50&sort=name&counts=state"
measure "agent page: agent"           "/agents/$ONE"
measure "agent page: state history"   "/agents/$ONE/states?limit=20"
measure "configuration page: view"    "/agents/$ONE/config"

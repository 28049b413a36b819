#!/usr/bin/env bash
# bench-statsd.sh — the agent's StatsD ingest on this machine, beside the C
# recvmmsg receiver (a few minutes after the release builds). Prints, and
# keeps in .build/bench-statsd/summary.txt:
#   1. ingest: single-line StatsD timer datagrams (`api.get-user:DD.5|ms`,
#      21 bytes, scripts/bench/udp_blast.c statsd) at stepped rates (RATES,
#      STEP_S each, ROUNDS times) from a paced sendmmsg sender on the other
#      core; kernel drops read from /proc/net/udp for the receiving socket;
#      the highest rate whose median round kept the pace (within 2 %) and
#      dropped nothing is the result (goal: >= 400,000 metric lines/s). The
#      same steps against the C recvmmsg receiver (scripts/bench/udp_recv.c,
#      same batch and receive buffer), as a ratio.
#   2. saturation: the sender at full speed for STEP_S against each:
#      lines/s processed and lines per CPU-second; the agent's own
#      statsd_lines counter checked against what was sent.
#   3. batched: datagrams of BATCH_LINES (10) such lines, as batching
#      clients send (statsd pipelines, DogStatsD buffering), at stepped
#      datagram rates (BATCH_RATES), both receivers: lines/s = K x datagrams/s.
#   4. the pipeline alone (statsd-bench: parse, filter, aggregate, no
#      sockets) on a mix of five types over 1,000 series, one and ten lines
#      per datagram: the CPU cost per line the socket adds to.
# The agent (release build) runs with its defaults plus statsd_port, against
# a collector with no rules (every metric kept). Loopback only.
# Environment: STEP_S (3), ROUNDS (3), RATES, BATCH_LINES (10), BATCH_RATES,
# PORT (47300).
set -euo pipefail
cd "$(dirname "$0")/.."

STEP_S=${STEP_S:-3}
ROUNDS=${ROUNDS:-3}
RATES=${RATES:-"200000 300000 400000 500000 600000 800000"}
BATCH_LINES=${BATCH_LINES:-10}
BATCH_RATES=${BATCH_RATES:-"40000 60000 80000 100000"}
KIND=statsd
PORT=${PORT:-47300}          # agent StatsD; +1 C receiver; +2 collector sessions; +3 collector HTTP; +4 agent IPA
OUT=.build/bench-statsd
mkdir -p "$OUT"
: > "$OUT/summary.txt"
say() { echo "$*" | tee -a "$OUT/summary.txt"; }

echo "== build (release) =="
swift build -c release --product vigil-agent 2>&1 | grep -E "error|Build" || true
swift build -c release --product vigil-collector 2>&1 | grep -E "error|Build" || true
swift build -c release --product statsd-bench 2>&1 | grep -E "error|Build" || true
BIN="$(swift build -c release --show-bin-path)"
[ -x "$BIN/vigil-agent" ] && [ -x "$BIN/vigil-collector" ] || { echo "build failed" >&2; exit 1; }
gcc -O2 -Wall -o "$OUT/udp_recv" scripts/bench/udp_recv.c
gcc -O2 -Wall -o "$OUT/udp_blast" scripts/bench/udp_blast.c

RX=() TX=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then RX=(taskset -c 1); TX=(taskset -c 0); fi
say "== vigil-agent StatsD ingest, $(nproc) CPUs, $(uname -r), $(date -u +%Y-%m-%dT%H:%MZ) =="

DIR=$(mktemp -d /tmp/vigil-bench-statsd.XXXXXX)
CPID= APID= RPID=
cleanup() {
    for p in $RPID $APID $CPID; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$DIR"
}
trap cleanup EXIT
cat > "$DIR/collector.conf" <<EOF
listen = 127.0.0.1:$((PORT + 2))
http_listen = 127.0.0.1:$((PORT + 3))
data_dir = $DIR/data
log_level = warn
EOF
KEY=$("$BIN/vigil-collector" keys create --project bench --create-project --config "$DIR/collector.conf" 2>/dev/null)
"$BIN/vigil-collector" run --config "$DIR/collector.conf" 2> "$DIR/collector.log" &
CPID=$!
for _ in $(seq 100); do [ -s "$DIR/data/admin_token" ] && curl -sf "http://127.0.0.1:$((PORT + 3))/healthz" >/dev/null && break; sleep 0.1; done
TOKEN=$(cat "$DIR/data/admin_token")
api() { curl -sf -H "Authorization: Bearer $TOKEN" "$@"; }
counter() { grep -o "\"$1\":[0-9]*" <<<"$(api "http://127.0.0.1:$((PORT + 3))/api/v1/agents")" | head -1 | cut -d: -f2; }

"${RX[@]}" "$BIN/vigil-agent" run --set server_port=$((PORT + 2)) --set access_key="$KEY" --set ipa_port=$((PORT + 4)) \
    --set statsd_port=$PORT --set agent_name=bench --set status_interval_ms=500 --set log_level=warn \
    --set state_dir="$DIR/agent-state" 2> "$DIR/agent.log" &
APID=$!
sleep 3
kill -0 "$APID" || { cat "$DIR/agent.log"; exit 1; }

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
udp_drops() {
    local hex; hex=$(printf '%04X' "$1")
    awk -v p=":$hex" 'NR > 1 && substr($2, length($2) - 4) == p {print $NF; exit}' /proc/net/udp
}

# step agent|c RATE: sends STEP_S seconds at RATE; sets SENT, ACHIEVED, DROPS (and LINE for c).
step() {
    local kind=$1 rate=$2 port d0 d1
    if [ "$kind" = agent ]; then port=$PORT; else port=$((PORT + 1)); fi
    if [ "$kind" = c ]; then
        "${RX[@]}" "$OUT/udp_recv" "$port" 64 65535 4194304 1500 $((STEP_S + 5)) > "$DIR/c.out" &
        RPID=$!
        for _ in $(seq 100); do grep -q '^ready' "$DIR/c.out" && break; sleep 0.02; done
    fi
    d0=$(udp_drops "$port")
    "${TX[@]}" "$OUT/udp_blast" "$KIND" "$port" "$STEP_S" "$rate" 32 8 > "$DIR/blast.out"
    sleep 0.3
    d1=$(udp_drops "$port")
    SENT=$(sed -n 's/.*sent=\([0-9]*\).*/\1/p' "$DIR/blast.out")
    ACHIEVED=$(sed -n 's/.* rate=\([0-9]*\).*/\1/p' "$DIR/blast.out")
    DROPS=$((d1 - d0))
    if [ "$kind" = c ]; then wait "$RPID"; RPID=; LINE=$(grep '^receiver=' "$DIR/c.out"); fi
}

echo
echo "== ingest: ${STEP_S}s per step, $ROUNDS rounds, one 21-byte StatsD line per datagram, kernel drops per round =="
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{v[NR]=$1} END {print v[int((NR + 1) / 2)]}'; }
agent_max=0 c_max=0
printf '%10s | %-26s %-26s | %-26s %-26s\n' rate "agent achieved" "agent drops" "C achieved" "C drops" | tee -a "$OUT/summary.txt"
for rate in $RATES; do
    a_ach="" a_drops="" c_ach="" c_drops=""
    for _ in $(seq "$ROUNDS"); do
        step agent "$rate"; a_ach+="$ACHIEVED "; a_drops+="$DROPS "
        step c "$rate"; c_ach+="$ACHIEVED "; c_drops+="$DROPS "
    done
    printf '%10s | %-26s %-26s | %-26s %-26s\n' "$rate" "$a_ach" "$a_drops" "$c_ach" "$c_drops" | tee -a "$OUT/summary.txt"
    if [ "$(median <<<"$a_drops")" -eq 0 ] && [ "$(median <<<"$a_ach")" -ge $((rate * 98 / 100)) ]; then agent_max=$rate; fi
    if [ "$(median <<<"$c_drops")" -eq 0 ] && [ "$(median <<<"$c_ach")" -ge $((rate * 98 / 100)) ]; then c_max=$rate; fi
done
say "ingest: highest rate whose median round had no kernel drop: agent $agent_max lines/s, C recvmmsg $c_max/s, ratio $(awk -v a="$agent_max" -v c="$c_max" 'BEGIN {printf "%.2f", (c > 0 ? a / c : 0)}') (goal >= 400000 lines/s)"

echo
echo "== saturation: the sender at full speed for ${STEP_S}s =="
lines0=$(counter statsd_lines)
c0=$(ticks "$APID")
step agent 0
c1=$(ticks "$APID")
a_proc=$((SENT - DROPS))
a_rate=$(awk -v n="$a_proc" -v s="$STEP_S" 'BEGIN {printf "%.0f", n / s}')
a_cpu=$(awk -v n="$a_proc" -v t="$((c1 - c0))" -v hz="$HZ" 'BEGIN {printf "%.0f", (t > 0 ? n / (t / hz) : 0)}')
sleep 1.2
lines1=$(counter statsd_lines)
step c 0
c_d=$(sed -n 's/.*datagrams=\([0-9]*\).*/\1/p' <<<"$LINE"); c_s=$(sed -n 's/.* seconds=\([0-9.]*\).*/\1/p' <<<"$LINE")
c_c=$(sed -n 's/.* cpu_s=\([0-9.]*\).*/\1/p' <<<"$LINE")
c_rate=$(awk -v n="$c_d" -v s="$c_s" 'BEGIN {printf "%.0f", (s > 0 ? n / s : 0)}')
c_cpu=$(awk -v n="$c_d" -v c="$c_c" 'BEGIN {printf "%.0f", (c > 0 ? n / c : 0)}')
say "saturation: agent $a_rate lines/s ($a_cpu per CPU-second, parse+aggregate); C recvmmsg $c_rate/s ($c_cpu per CPU-second, reads 8 bytes); ratio $(awk -v a="$a_cpu" -v c="$c_cpu" 'BEGIN {printf "%.2f", (c > 0 ? a / c : 0)}') per CPU-second"
say "        agent statsd_lines in that step: $((lines1 - lines0)) of $SENT sent, $DROPS kernel drops; statsd_drops_parse $(counter statsd_drops_parse)"

echo
echo "== batched: $BATCH_LINES lines per datagram, ${STEP_S}s per step, $ROUNDS rounds =="
KIND="statsd:$BATCH_LINES"
agent_max=0 c_max=0
printf '%10s | %-26s %-26s | %-26s %-26s\n' "dgrams/s" "agent achieved" "agent drops" "C achieved" "C drops" | tee -a "$OUT/summary.txt"
for rate in $BATCH_RATES; do
    a_ach="" a_drops="" c_ach="" c_drops=""
    for _ in $(seq "$ROUNDS"); do
        step agent "$rate"; a_ach+="$ACHIEVED "; a_drops+="$DROPS "
        step c "$rate"; c_ach+="$ACHIEVED "; c_drops+="$DROPS "
    done
    printf '%10s | %-26s %-26s | %-26s %-26s\n' "$rate" "$a_ach" "$a_drops" "$c_ach" "$c_drops" | tee -a "$OUT/summary.txt"
    if [ "$(median <<<"$a_drops")" -eq 0 ] && [ "$(median <<<"$a_ach")" -ge $((rate * 98 / 100)) ]; then agent_max=$rate; fi
    if [ "$(median <<<"$c_drops")" -eq 0 ] && [ "$(median <<<"$c_ach")" -ge $((rate * 98 / 100)) ]; then c_max=$rate; fi
done
say "batched: highest clean step: agent $agent_max datagrams/s = $((agent_max * BATCH_LINES)) lines/s, C recvmmsg $c_max datagrams/s (goal >= 400000 lines/s)"

echo
echo "== the pipeline alone, no sockets (statsd-bench, ${STEP_S}s each) =="
kill "$APID" 2>/dev/null || true; wait "$APID" 2>/dev/null || true; APID=
for lines in 1 10; do say "pipeline: $("${RX[@]}" "$BIN/statsd-bench" "$STEP_S" "$lines" 1000)"; done
echo
echo "summary in $OUT/summary.txt"

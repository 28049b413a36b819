#!/usr/bin/env bash
# bench-agent.sh — vigil-agent's footprint and ingest figures on this machine
# (a few minutes after the release builds). Prints, and keeps in
# .build/bench-agent/summary.txt:
#   1. stripped size of the static binary as it ships (scripts/lib/agent-build.sh:
#      --static-swift-stdlib, libev.a, libsodium.a, the idle-code ordering)
#      and what it still links dynamically;
#   2. idle RSS and idle CPU: connected to a collector, capturing, no
#      traffic, over IDLE_S seconds (/proc/PID/stat ticks);
#   3. ingest: single-record IPA datagrams at stepped rates (RATES, STEP_S
#      each, ROUNDS times) from a paced sendmmsg sender on the other core;
#      kernel drops read from /proc/net/udp for the receiving socket; the
#      highest rate whose median round dropped nothing is the result (the
#      machine is shared: one round can lose to a neighbour's burst). RSS is
#      sampled mid-step (and VmHWM at the end).
#      The same steps against the C recvmmsg receiver (scripts/bench/udp_recv.c,
#      same batch, slot size and receive buffer), as a ratio.
#   4. saturation: the sender at full speed for STEP_S against each
#      receiver: datagrams/s processed and datagrams per CPU-second.
# Loopback only. Environment: IDLE_S (30), STEP_S (3), ROUNDS (3), RATES,
# PORT (47200).
set -euo pipefail
cd "$(dirname "$0")/.."

IDLE_S=${IDLE_S:-30}
STEP_S=${STEP_S:-3}
ROUNDS=${ROUNDS:-3}
RATES=${RATES:-"100000 200000 300000 400000 500000 600000 700000 800000 1000000"}
PORT=${PORT:-47200}          # agent UDP; +1 C receiver; +2 collector sessions; +3 collector HTTP
OUT=.build/bench-agent
mkdir -p "$OUT"
: > "$OUT/summary.txt"
say() { echo "$*" | tee -a "$OUT/summary.txt"; }

echo "== build (release) =="
source scripts/lib/agent-build.sh
vigil_build_agent 2>&1 | grep -E "error|warning: |Compiling|Build" || true
swift build -c release --product vigil-collector 2>&1 | grep -E "error|Build" || true
AGENT_BIN="$VIGIL_AGENT_SCRATCH/release/vigil-agent"
COLLECTOR_BIN="$(swift build -c release --show-bin-path)/vigil-collector"
[ -x "$AGENT_BIN" ] && [ -x "$COLLECTOR_BIN" ] || { echo "build failed" >&2; exit 1; }
gcc -O2 -Wall -o "$OUT/udp_recv" scripts/bench/udp_recv.c
gcc -O2 -Wall -o "$OUT/udp_blast" scripts/bench/udp_blast.c
strip -o "$OUT/vigil-agent" "$AGENT_BIN"

RX=() TX=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then RX=(taskset -c 1); TX=(taskset -c 0); fi

say "== vigil-agent $("$OUT/vigil-agent" version | cut -d' ' -f2), $(nproc) CPUs, $(uname -r), $(date -u +%Y-%m-%dT%H:%MZ) =="
size=$(stat -c %s "$OUT/vigil-agent")
say "binary: stripped static build $size bytes ($(awk -v s="$size" 'BEGIN {printf "%.2f", s / 1048576}') MiB; goal <= 8 MB, 8,000,000 bytes)"
say "        dynamic libraries: $(ldd "$OUT/vigil-agent" | awk '{print $1}' | tr '\n' ' ')"

# A collector on a temporary directory with a project, a key and one rule.
DIR=$(mktemp -d /tmp/vigil-bench.XXXXXX)
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
KEY=$("$COLLECTOR_BIN" keys create --project bench --create-project --config "$DIR/collector.conf" 2>/dev/null)
"$COLLECTOR_BIN" run --config "$DIR/collector.conf" 2> "$DIR/collector.log" &
CPID=$!
for _ in $(seq 100); do [ -s "$DIR/data/admin_token" ] && curl -sf "http://127.0.0.1:$((PORT + 3))/healthz" >/dev/null && break; sleep 0.1; done
TOKEN=$(cat "$DIR/data/admin_token")
api() { curl -sf -H "Authorization: Bearer $TOKEN" "$@"; }
api -X PUT "http://127.0.0.1:$((PORT + 3))/api/v1/projects/bench/patterns" \
    -d '{"patterns":[{"method":"GET","host":"api.example.com","path":"/v1/users/*","monitor":"api","check":"get-user"}]}' >/dev/null

# The agent with its defaults, except where to find things.
"${RX[@]}" "$OUT/vigil-agent" run --set server_port=$((PORT + 2)) --set access_key="$KEY" --set ipa_port=$PORT \
    --set agent_name=bench --set status_interval_ms=1000 --set log_level=warn --set state_dir="$DIR/state" 2> "$DIR/agent.log" &
APID=$!
sleep 3
kill -0 "$APID" || { cat "$DIR/agent.log"; exit 1; }

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
HZ=$(getconf CLK_TCK)
# drops in /proc/net/udp for the socket bound to 127.0.0.1:PORT (last column).
udp_drops() {
    local hex; hex=$(printf '%04X' "$1")
    awk -v p=":$hex" 'NR > 1 && substr($2, length($2) - 4) == p {print $NF; exit}' /proc/net/udp
}

echo
echo "== idle: ${IDLE_S}s connected, capturing, no traffic =="
t0=$(ticks "$APID"); s0=$(date +%s.%N)
sleep "$IDLE_S"
t1=$(ticks "$APID"); s1=$(date +%s.%N)
idle_cpu=$(awk -v t="$((t1 - t0))" -v hz="$HZ" -v a="$s0" -v b="$s1" 'BEGIN {printf "%.3f", 100 * t / hz / (b - a)}')
idle_rss=$(rss_kb "$APID")
say "idle:   RSS $idle_rss KiB ($(awk -v k="$idle_rss" 'BEGIN {printf "%.2f", k / 1024}') MiB; goal <= 6 MB, 5,859 KiB), CPU $idle_cpu % of one core over ${IDLE_S}s ($((t1 - t0)) ticks; goal <= 0.1 %)"
say "        of the RSS: $(awk '/^RssAnon:/ {a=$2} /^RssFile:/ {f=$2} END {printf "anonymous %d KiB, file-backed %d KiB", a, f}' "/proc/$APID/status"); PSS $(awk '/^Pss:/ {print $2}' "/proc/$APID/smaps_rollup") KiB"
# Resident code (executable mappings) of the agent and of libc, from smaps.
code_kb() { awk -v m="$2" '/^[0-9a-f]+-[0-9a-f]+ / {x = ($2 ~ /x/ && $6 ~ m)} x && /^Rss:/ {k += $2} END {print k + 0}' "/proc/$1/smaps"; }
say "        resident code: the agent's $(code_kb "$APID" "vigil-agent$") KiB, libc's $(code_kb "$APID" "libc[.]so") KiB"

# step KIND RATE: sends STEP_S seconds at RATE to the receiver of KIND;
# sets SENT, DROPS, RSS (agent, mid-step).
step() {
    local kind=$1 rate=$2 port d0 d1 line
    if [ "$kind" = agent ]; then port=$PORT; else port=$((PORT + 1)); fi
    if [ "$kind" = c ]; then
        "${RX[@]}" "$OUT/udp_recv" "$port" 64 65535 4194304 1500 $((STEP_S + 5)) > "$DIR/c.out" &
        RPID=$!
        for _ in $(seq 100); do grep -q '^ready' "$DIR/c.out" && break; sleep 0.02; done
    fi
    d0=$(udp_drops "$port")
    "${TX[@]}" "$OUT/udp_blast" ipa "$port" "$STEP_S" "$rate" 32 8 > "$DIR/blast.out" &
    local bpid=$!
    RSS=0
    if [ "$kind" = agent ]; then sleep "$(awk -v s="$STEP_S" 'BEGIN {print s / 2}')"; RSS=$(rss_kb "$APID"); fi
    wait "$bpid"
    sleep 0.3
    d1=$(udp_drops "$port")
    SENT=$(sed -n 's/.*sent=\([0-9]*\).*/\1/p' "$DIR/blast.out")
    ACHIEVED=$(sed -n 's/.* rate=\([0-9]*\).*/\1/p' "$DIR/blast.out")
    DROPS=$((d1 - d0))
    if [ "$kind" = c ]; then wait "$RPID"; RPID=; LINE=$(grep '^receiver=' "$DIR/c.out"); fi
}

echo
echo "== ingest: ${STEP_S}s per step, $ROUNDS rounds, single-record datagrams of 46 bytes, kernel drops per round =="
agent_max=0 c_max=0 peak_rss=0
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{v[NR]=$1} END {print v[int((NR + 1) / 2)]}'; }
printf '%10s | %-26s %-26s %8s | %-26s %-26s\n' rate "agent achieved" "agent drops" rss "C achieved" "C drops" | tee -a "$OUT/summary.txt"
for rate in $RATES; do
    a_ach="" a_drops="" c_ach="" c_drops=""
    for _ in $(seq "$ROUNDS"); do
        step agent "$rate"; a_ach+="$ACHIEVED "; a_drops+="$DROPS "; a_rss=$RSS
        [ "$a_rss" -gt "$peak_rss" ] && peak_rss=$a_rss
        step c "$rate"; c_ach+="$ACHIEVED "; c_drops+="$DROPS "
    done
    printf '%10s | %-26s %-26s %5s KiB | %-26s %-26s\n' "$rate" "$a_ach" "$a_drops" "$a_rss" "$c_ach" "$c_drops" | tee -a "$OUT/summary.txt"
    # A step counts when, in the median round, the sender kept the pace
    # (within 2 %) and nothing was dropped.
    if [ "$(median <<<"$a_drops")" -eq 0 ] && [ "$(median <<<"$a_ach")" -ge $((rate * 98 / 100)) ]; then agent_max=$rate; fi
    if [ "$(median <<<"$c_drops")" -eq 0 ] && [ "$(median <<<"$c_ach")" -ge $((rate * 98 / 100)) ]; then c_max=$rate; fi
done
agents=$(api "http://127.0.0.1:$((PORT + 3))/api/v1/agents")
lag_p99=$(grep -o '"loop_lag_p99_us":[0-9]*' <<<"$agents" | head -1 | cut -d: -f2)
lag_max=$(grep -o '"loop_lag_max_us":[0-9]*' <<<"$agents" | head -1 | cut -d: -f2)
hwm=$(hwm_kb "$APID")
say "ingest: highest rate whose median round had no kernel drop: agent $agent_max/s, C recvmmsg $c_max/s, ratio $(awk -v a="$agent_max" -v c="$c_max" 'BEGIN {printf "%.2f", (c > 0 ? a / c : 0)}') (goal >= 400000/s)"
say "        RSS at full ingest: $peak_rss KiB mid-step max, VmHWM $hwm KiB (goal <= 12 MiB); loop lag of the last status interval p99 ${lag_p99:-?} us, max ${lag_max:-?} us"

echo
echo "== saturation: the sender at full speed for ${STEP_S}s =="
c0=$(ticks "$APID")
step agent 0
c1=$(ticks "$APID")
a_proc=$((SENT - DROPS))
a_rate=$(awk -v n="$a_proc" -v s="$STEP_S" 'BEGIN {printf "%.0f", n / s}')
a_cpu=$(awk -v n="$a_proc" -v t="$((c1 - c0))" -v hz="$HZ" 'BEGIN {printf "%.0f", (t > 0 ? n / (t / hz) : 0)}')
step c 0
c_d=$(sed -n 's/.*datagrams=\([0-9]*\).*/\1/p' <<<"$LINE"); c_s=$(sed -n 's/.* seconds=\([0-9.]*\).*/\1/p' <<<"$LINE")
c_c=$(sed -n 's/.* cpu_s=\([0-9.]*\).*/\1/p' <<<"$LINE")
c_rate=$(awk -v n="$c_d" -v s="$c_s" 'BEGIN {printf "%.0f", (s > 0 ? n / s : 0)}')
c_cpu=$(awk -v n="$c_d" -v c="$c_c" 'BEGIN {printf "%.0f", (c > 0 ? n / c : 0)}')
say "saturation: agent $a_rate datagrams/s ($a_cpu per CPU-second, parse+filter+aggregate); C recvmmsg $c_rate/s ($c_cpu per CPU-second, reads 8 bytes); ratio $(awk -v a="$a_cpu" -v c="$c_cpu" 'BEGIN {printf "%.2f", (c > 0 ? a / c : 0)}') per CPU-second"
say "        agent records matched: $(grep -o '"records_matched":[0-9]*' <<<"$(api "http://127.0.0.1:$((PORT + 3))/api/v1/agents")" | head -1 | cut -d: -f2), kernel drops $(grep -o '"drops_kernel":[0-9]*' <<<"$(api "http://127.0.0.1:$((PORT + 3))/api/v1/agents")" | head -1 | cut -d: -f2) (its own count, SO_RXQ_OVFL)"
echo
echo "summary in $OUT/summary.txt"

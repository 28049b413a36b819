#!/usr/bin/env bash
# collector-alone.sh ingest|density [AGENTS] [SECONDS] — one `vigil-load` step against
# a fresh collector, with nothing else of Vigil running (docs/PERFORMANCE.md, the
# "isolated" figures of "Load and soak"). PIN=thread (the default) gives the collector's
# loop thread (its main thread, TID = PID) CPU 1 to itself: every other thread of the
# collector (the store's writer "vigil-store", a resolver, any started later: the script
# looks again every second during the step and at its end), vigil-load and the scraper run on
# CPU 0. What each thread is pinned to is printed when the collector is ready and at the
# end. PIN=process pins the whole collector (every thread) to CPU 1 and vigil-load to
# CPU 0, as scripts/load.sh does, for a comparison with the earlier figures. On a machine
# shared with other work, CPU 1 still runs other processes' threads; RT=N also gives the loop
# thread the real-time policy SCHED_FIFO at priority N (chrt), so that no ordinary thread
# preempts it there (the kernel's real-time throttling still leaves others 5 %); with
# PIN=process the collector's other threads then run on CPU 1 only while the loop waits.
#   ingest:  AGENTS (50) sessions keep their batch windows full for SECONDS (20);
#            prints the progress lines (records/s acknowledged per 5 s) and the verify line.
#   density: AGENTS (10000) sessions ramp at 5,000 connects/s and hold for SECONDS (20);
#            prints the ramp line, RSS per session and vigil-load's Ping round trips.
# Both print the collector's loop lag quantiles since start, its page faults, and its slow
# loop iterations: SLOW_MS (default 50) is the collector's loop_slow_iteration_ms; the count
# and the logged lines (what ran in each, docs/COLLECTOR.md "Slow loop iterations") are printed.
# A collector that does not know the key (an older build) is run without it. /metrics is
# scraped every SCRAPE_S seconds (5; 0: only at the end) during the step, as a Prometheus
# would, and the slowest scrape is printed. The load average at the start and the largest
# cpu_ms of a logged slow iteration (what the collector itself cost, CPU steal left out)
# are printed too, and for the step: the time CPU 1 (the collector's) spent busy and
# stolen by the hypervisor, and how often the collector's loop thread was preempted
# (nonvoluntary context switches: something else ran on its core while it could run) and
# how much CPU time the loop thread itself used.
# On a shared machine they say how far the wall-clock figures can be trusted. So do the
# softirq time of CPU 1 (/proc/stat) and the NET_RX softirqs per CPU (/proc/softirqs) during
# the step: loopback TCP delivers its packets in softirq context, on the CPU that sent them or
# that the receiving thread runs on. Release binaries must be
# built (scripts/load.sh builds them); BIN=DIR runs the binaries in DIR instead (e.g. an older
# build, for a before/after comparison). Ports: PORT (27700) and PORT+80. KEEP=1 keeps the
# temporary directory (the database, logs) and prints its path. PERF=FILE records the
# collector with `perf record -g` (999 Hz) during the step into FILE, e.g. to see what a
# scrape costs: `perf report -i FILE --children --no-demangle | grep -i metrics`;
# PERF_ARGS replaces `-g -F 999`, e.g. PERF_ARGS="-e sched:sched_switch --call-graph dwarf"
# records where each thread went to sleep.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/procs.sh

mode=${1:?usage: collector-alone.sh ingest|density [AGENTS] [SECONDS]}
case "$mode" in
    ingest) agents=${2:-50} ;;
    density) agents=${2:-10000} ;;
    *) echo "collector-alone.sh: unknown mode '$mode' (ingest or density)" >&2; exit 2 ;;
esac
seconds=${3:-20}
PORT=${PORT:-27700}
HTTP=$((PORT + 80))
BIN=${BIN:-$(swift build -c release --show-bin-path)}
for b in vigil-collector vigil-load; do
    [ -x "$BIN/$b" ] || { echo "collector-alone.sh: $BIN/$b missing; run: swift build -c release --product $b" >&2; exit 1; }
done
PIN=${PIN:-thread}
case "$PIN" in
    thread|process) ;;
    *) echo "collector-alone.sh: unknown PIN '$PIN' (thread or process)" >&2; exit 2 ;;
esac
PIN1=() PIN0=() PINC=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
    PIN1=(taskset -c 1); PIN0=(taskset -c 0)
    # PIN=thread: the collector starts on CPU 0 and only its main thread moves to CPU 1.
    if [ "$PIN" = process ]; then PINC=("${PIN1[@]}"); else PINC=("${PIN0[@]}"); fi
else
    PIN=none
fi
ulimit -Sn "$(ulimit -Hn)"

DIR=$(mktemp -d /tmp/vigil-alone.XXXXXX)
PIDS=()
trap 'vigil_stop_pids "${PIDS[@]}"; if [ "${KEEP:-0}" = 1 ]; then echo "kept $DIR"; else rm -rf "$DIR"; fi' EXIT
trap 'exit 130' INT TERM

# Every simulated agent connects from one address: the per-address handshake limit is raised.
printf 'listen = 127.0.0.1:%s\nhttp_listen = 127.0.0.1:%s\ndata_dir = %s/collector\nmax_clients = %s\nmax_handshakes_per_address = %s\n' \
    "$PORT" "$HTTP" "$DIR" $((agents + 1000)) $((agents + 1000)) > "$DIR/c.conf"
help=$("$BIN/vigil-collector" --help 2>&1 || true)
if [[ $help == *loop_slow_iteration_ms* ]]; then
    echo "loop_slow_iteration_ms = ${SLOW_MS:-50}" >> "$DIR/c.conf"
fi
"$BIN/vigil-collector" keys create --project load --create-project --config "$DIR/c.conf" > "$DIR/key" 2>/dev/null
"${PINC[@]}" "$BIN/vigil-collector" run --config "$DIR/c.conf" 2> "$DIR/c.log" &
C=$!
PIDS+=("$C")
for _ in $(seq 100); do grep -qs " ready " "$DIR/c.log" && break; sleep 0.1; done
grep -q " ready " "$DIR/c.log" || { cat "$DIR/c.log" >&2; exit 1; }
# pin_threads: PIN=thread puts the main thread on CPU 1 and every other thread of the
# collector on CPU 0 (a thread inherits its creator's CPUs, so one the loop starts later
# begins on CPU 1 until the next look); prints how many it moved.
pin_threads() {
    local t moved=0
    [ "$PIN" = thread ] || { echo 0; return; }
    for t in /proc/"$C"/task/*; do
        t=${t##*/}
        if [ "$t" = "$C" ]; then want=1; else want=0; fi
        if [ "$(awk '/^Cpus_allowed_list/ {print $2}' "/proc/$C/task/$t/status" 2>/dev/null)" != "$want" ]; then
            taskset -p -c "$want" "$t" > /dev/null 2>&1 && moved=$((moved + 1))
        fi
    done
    echo "$moved"
}
# show_threads WHEN: each thread of the collector, its name and the CPUs it may run on.
show_threads() {
    local t line=""
    for t in /proc/"$C"/task/*; do
        line+=" ${t##*/}($(cat "$t/comm" 2>/dev/null))=cpu$(awk '/^Cpus_allowed_list/ {print $2}' "$t/status" 2>/dev/null)"
    done
    echo "collector threads $1 (PIN=$PIN):$line"
}
pin_threads > /dev/null
if [ -n "${RT:-}" ]; then
    chrt -f -p "$RT" "$C"
    echo "collector loop thread: $(chrt -p "$C" | head -1 | sed 's/.*: //'), priority $RT"
fi
show_threads "when ready"
REPIN=
if [ "$PIN" = thread ]; then
    ( n=0; while sleep 1; do n=$((n + $(pin_threads))); echo "$n" > "$DIR/repinned"; done ) &
    REPIN=$!
    PIDS+=("$REPIN")
    taskset -p -c 0 "$REPIN" > /dev/null
fi
rss0=$(awk '/^VmRSS/ {print $2}' "/proc/$C/status")
echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
# minflt and majflt: fields 10 and 12 of /proc/PID/stat (after the parenthesised name).
faults() { sed 's/.*) //' "/proc/$C/stat" | awk '{print $8, $10}'; }
read -r minflt0 majflt0 < <(faults)
# CPU 1's busy and steal ticks (/proc/stat: user nice system idle iowait irq softirq steal).
cpu1() { awk '$1 == "cpu1" {print $2 + $3 + $4 + $7 + $8, $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9, $8}' /proc/stat; }
# The loop thread is the main thread: its preemptions (nonvoluntary switches).
preempted() { awk '/^nonvoluntary_ctxt_switches/ {print $2}' "/proc/$C/task/$C/status"; }
# CPU time of the loop thread (utime + stime, clock ticks: fields 14 and 15 of its stat).
loopcpu() { sed 's/.*) //' "/proc/$C/task/$C/stat" | awk '{print $12 + $13}'; }
# NET_RX softirqs raised on CPU 0 and on CPU 1.
netrx() { awk '$1 == "NET_RX:" {print $2, $3}' /proc/softirqs; }
read -r busy0 steal0 total0 softirq0 < <(cpu1)
pre0=$(preempted)
netrx0=$(netrx)
lcpu0=$(loopcpu)

SCRAPER=
if [ "${SCRAPE_S:-5}" != 0 ]; then
    ( while sleep "${SCRAPE_S:-5}"; do
          curl -s -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$HTTP/metrics" >> "$DIR/scrapes" || true
      done ) &
    SCRAPER=$!
    [ "$PIN" = thread ] && taskset -p -c 0 "$SCRAPER" > /dev/null
    PIDS+=("$SCRAPER")
fi
PERFPID=
if [ -n "${PERF:-}" ]; then
    perf record -q ${PERF_ARGS:--g -F 999} -p "$C" -o "$PERF" 2> "$DIR/perf.log" &
    PERFPID=$!
fi
common=(--key-file "$DIR/key" --collector "127.0.0.1:$PORT" --agents "$agents" --duration "$seconds"
        --ledger "$DIR/ledger" --json "$DIR/out.json" --prefix "$mode")
if [ "$mode" = ingest ]; then
    "${PIN0[@]}" "$BIN/vigil-load" ingest "${common[@]}" --report-interval 5 > "$DIR/load.out" 2> "$DIR/load.log"
    grep " progress " "$DIR/load.log" | sed 's/.* t=/t=/; s/ phase=[^ ]*//; s/ sessions=.*acked_records=/ acked_records=/'
    "$BIN/vigil-load" verify --ledger "$DIR/ledger" --db "$DIR/collector/vigil.db" 2>/dev/null | tail -1
else
    "${PIN0[@]}" "$BIN/vigil-load" density "${common[@]}" --rate 5000 > "$DIR/load.out" 2> "$DIR/load.log"
    rss1=$(awk '/^VmRSS/ {print $2}' "/proc/$C/status")
    grep " ramp complete " "$DIR/load.log" | sed 's/.* ramp complete /ramp complete: /'
    awk -v a="$rss0" -v b="$rss1" -v n="$agents" 'BEGIN {printf "collector RSS %d -> %d KiB: %.2f KiB per session\n", a, b, (b - a) / n}'
    tail -1 "$DIR/load.out" | tr ' ' '\n' | grep -E '^ping_rtt_(p50|p99|max)_ms='
fi
read -r minflt1 majflt1 < <(faults)
if [ -n "$PERFPID" ]; then kill -INT "$PERFPID" 2>/dev/null || true; wait "$PERFPID" 2>/dev/null || true; fi
read -r busy1 steal1 total1 softirq1 < <(cpu1)
pre1=$(preempted)
netrx1=$(netrx)
lcpu1=$(loopcpu)
awk -v b=$((busy1 - busy0)) -v s=$((steal1 - steal0)) -v t=$((total1 - total0)) -v p=$((pre1 - pre0)) -v q=$((softirq1 - softirq0)) \
    'BEGIN {if (t > 0) printf "CPU 1 during the step: busy %.0f %%, softirq %.1f %%, stolen %.1f %%; collector loop thread preempted %d times\n", 100 * b / t, 100 * q / t, 100 * s / t, p}'
awk -v t=$((lcpu1 - lcpu0)) -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "collector loop thread CPU time during the step: %.2f s\n", t / hz}'
read -r rx00 rx01 <<< "$netrx0"; read -r rx10 rx11 <<< "$netrx1"
echo "NET_RX softirqs during the step: CPU 0 $((rx10 - rx00)), CPU 1 $((rx11 - rx01))"
if [ -n "$REPIN" ]; then kill "$REPIN" 2>/dev/null || true; fi
echo "collector threads moved during the step: $(( $(cat "$DIR/repinned" 2>/dev/null || echo 0) + $(pin_threads) ))"
show_threads "at the end"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ -n "$SCRAPER" ]; then kill "$SCRAPER" 2>/dev/null || true; fi
[ -s "$DIR/scrapes" ] && sort -n "$DIR/scrapes" | awk '{n++; m=$1} END {printf "metrics scrapes during the step: %d, slowest %.1f ms\n", n, m * 1000}'
curl -sf "http://127.0.0.1:$HTTP/metrics" > "$DIR/metrics"
grep -E '^vigil_loop_lag_seconds\{' "$DIR/metrics" \
    | awk '{printf "collector loop lag %s %.2f ms\n", $1, $2 * 1000}' | sed 's/vigil_loop_lag_seconds//'
echo "collector page faults during the step: minor $((minflt1 - minflt0)), major $((majflt1 - majflt0))"
grep -E '^vigil_loop_(slow_iterations|slow_iterations_on_cpu|time_box_cuts|callbacks_timed|iterations)_total |^vigil_loop_slow_iteration_cpu_max_seconds ' \
    "$DIR/metrics" | sed 's/^/collector /' || true
grep ' slow loop iteration ' "$DIR/c.log" | sed 's/^[^ ]* warn //' || true
grep -o ' cpu_ms=[0-9.]*' "$DIR/c.log" | cut -d= -f2 | sort -n | tail -1 \
    | awk '{print "largest cpu_ms of a logged slow iteration: " $1}' || true

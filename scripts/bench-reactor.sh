#!/usr/bin/env bash
# bench-reactor.sh — Reactor performance figures on this machine, in one run
# (about a minute after the release build). Prints:
#   1. UDP receive: the Reactor's UDPReceiver vs a minimal C recvmmsg receiver
#      (scripts/bench/udp_recv.c), datagrams/s and datagrams per CPU-second,
#      and the ratio Reactor/C (goal: >= 0.90 per CPU-second).
#        drain: the receiver is stopped (SIGSTOP) while a sendmmsg blaster
#               fills its socket queue, then resumed: it drains alone, always
#               saturated — the sender outruns it by construction.
#        live:  the blaster runs concurrently for LIVE_S seconds.
#   2. Loop overhead per iteration: base, per idle watcher, per firing timer.
#   3. Idle RSS of a process that only runs an empty loop.
# Loopback only. Environment: ROUNDS (7), FILL (400000 datagrams), SIZE (64
# bytes), LIVE_S (3), LIVE_ROUNDS (3), PORT (47123).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-7}
FILL=${FILL:-400000}
SIZE=${SIZE:-64}
LIVE_S=${LIVE_S:-3}
LIVE_ROUNDS=${LIVE_ROUNDS:-3}
PORT=${PORT:-47123}
BATCH=64          # datagrams per recvmmsg, both receivers
BUDGET=256        # Reactor: datagrams per wakeup before yielding
MAXDGRAM=2048     # buffer slot per datagram, both receivers
OUT=.build/bench
mkdir -p "$OUT"

echo "== build (release) =="
swift build -c release --product reactor-bench 2>&1 | grep -E "error|Compiling|Build" || true
RB="$(swift build -c release --show-bin-path)/reactor-bench"
[ -x "$RB" ] || { echo "reactor-bench was not built" >&2; exit 1; }
gcc -O2 -Wall -o "$OUT/udp_recv" scripts/bench/udp_recv.c
gcc -O2 -Wall -o "$OUT/udp_blast" scripts/bench/udp_blast.c

# Receiver on CPU 1, sender on CPU 0, when there are two CPUs to pin to.
RX=() TX=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then RX=(taskset -c 1); TX=(taskset -c 0); fi

# The drain needs a socket queue that holds FILL datagrams (~1 KiB of kernel
# memory each): SO_RCVBUFFORCE as root, else what net.core.rmem_max allows.
DRAIN_RCVBUF=$((1 << 30))
if [ "$(id -u)" != 0 ]; then
    rmem_max=$(cat /proc/sys/net/core/rmem_max)
    DRAIN_RCVBUF=$rmem_max
    fit=$((rmem_max / 1400))
    if [ "$FILL" -gt "$fit" ]; then
        echo "note: not root, net.core.rmem_max=$rmem_max: drain fill lowered from $FILL to $fit datagrams"
        FILL=$fit
    fi
fi

RPID=
cleanup() { if [ -n "$RPID" ]; then kill -CONT "$RPID" 2>/dev/null || true; kill "$RPID" 2>/dev/null || true; fi; }
trap cleanup EXIT

# start_receiver c|reactor RCVBUF: starts it in the background (RPID) and
# waits for its "ready" line.
start_receiver() {
    : > "$OUT/recv.out"
    if [ "$1" = c ]; then
        "${RX[@]}" "$OUT/udp_recv" "$PORT" "$BATCH" "$MAXDGRAM" "$2" 300 30 > "$OUT/recv.out" &
    else
        "${RX[@]}" "$RB" udp-recv "$PORT" --batch "$BATCH" --budget "$BUDGET" --max "$MAXDGRAM" --rcvbuf "$2" \
            --idle-ms 300 --max-s 30 > "$OUT/recv.out" &
    fi
    RPID=$!
    for _ in $(seq 100); do grep -q '^ready' "$OUT/recv.out" && return 0; sleep 0.05; done
    echo "receiver $1 did not start" >&2; exit 1
}

# finish_receiver: waits for it to exit (it stops 300 ms after the last
# datagram) and sets LINE to its figures. Not in a subshell: wait needs the parent.
finish_receiver() {
    wait "$RPID"
    RPID=
    LINE=$(grep '^receiver=' "$OUT/recv.out")
}

# field NAME LINE: the value of NAME=... in a key=value line.
field() { tr ' ' '\n' <<<"$2" | sed -n "s/^$1=//p"; }
median() { sort -g | awk '{v[NR]=$1} END {if (NR % 2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }

: > "$OUT/drain.txt"
echo
echo "== UDP drain: $FILL datagrams of $SIZE bytes queued while the receiver is stopped, $ROUNDS rounds =="
for round in $(seq "$ROUNDS"); do
    for kind in c reactor; do
        start_receiver "$kind" "$DRAIN_RCVBUF"
        kill -STOP "$RPID"
        "${TX[@]}" "$OUT/udp_blast" "raw:$SIZE" "$PORT" 30 0 8 64 "$FILL" > "$OUT/blast.out"
        kill -CONT "$RPID"
        finish_receiver; line=$LINE
        echo "round $round: $line" | cut -c1-200
        echo "$kind $line" >> "$OUT/drain.txt"
        if [ "$(field kernel_drops "$line")" != 0 ]; then echo "warning: the queue overflowed during the fill; lower FILL" >&2; fi
    done
done

: > "$OUT/live.txt"
echo
echo "== UDP live: sendmmsg blaster (UDP GSO, 64 datagrams per send) concurrently for ${LIVE_S}s, $LIVE_ROUNDS rounds =="
for round in $(seq "$LIVE_ROUNDS"); do
    for kind in c reactor; do
        # 64 MiB of queue (~50 ms at 1M datagrams/s) so a receiver briefly
        # preempted on a shared machine does not drop.
        start_receiver "$kind" $((64 << 20))
        sent=$("${TX[@]}" "$OUT/udp_blast" "raw:$SIZE" "$PORT" "$LIVE_S" 0 8 64 0)
        finish_receiver; line=$LINE
        echo "round $round: $sent | $line" | cut -c1-230
        echo "$kind $(field rate "$sent") $line" >> "$OUT/live.txt"
    done
done

# summary KIND FILE: median datagrams/s and datagrams/CPU-s of KIND's lines.
summary() {
    local kind=$1 file=$2 rates="" percpu=""
    while read -r k rest; do
        [ "$k" = "$kind" ] || continue
        d=$(field datagrams "$rest"); s=$(field seconds "$rest"); c=$(field cpu_s "$rest")
        rates+="$(awk -v d="$d" -v s="$s" 'BEGIN {print (s > 0 ? d / s : 0)}')"$'\n'
        percpu+="$(awk -v d="$d" -v c="$c" 'BEGIN {print (c > 0 ? d / c : 0)}')"$'\n'
    done < "$file"
    echo "$(printf '%s' "$rates" | median) $(printf '%s' "$percpu" | median)"
}

echo
echo "== loop overhead (release, 1,000,000 iterations each) =="
"$RB" loop-overhead --iterations 1000000 --watchers 100 | tee "$OUT/loop.txt"
echo
echo "== idle RSS (release; a process that only runs an empty loop) =="
"$RB" idle-rss --seconds 1 | tee "$OUT/rss.txt"

read -r c_rate c_cpu <<<"$(summary c "$OUT/drain.txt")"
read -r r_rate r_cpu <<<"$(summary reactor "$OUT/drain.txt")"
read -r lc_rate lc_cpu <<<"$(summary c "$OUT/live.txt")"
read -r lr_rate lr_cpu <<<"$(summary reactor "$OUT/live.txt")"
drops() { awk -v k="$1" '$1 == k {for (i = 2; i <= NF; i++) if ($i ~ /^kernel_drops=/) {split($i, a, "="); t += a[2]}} END {print t + 0}' "$OUT/live.txt"; }
sender=$(awk '{print $2}' "$OUT/live.txt" | median)
loop=$(cat "$OUT/loop.txt"); rss=$(cat "$OUT/rss.txt")

echo
echo "== summary ($(nproc) CPUs, $(uname -r), ${SIZE}-byte datagrams, batch $BATCH, Reactor budget $BUDGET) =="
awk -v cr="$c_rate" -v cc="$c_cpu" -v rr="$r_rate" -v rc="$r_cpu" \
    -v lcr="$lc_rate" -v lcc="$lc_cpu" -v lrr="$lr_rate" -v lrc="$lr_cpu" \
    -v ld_c="$(drops c)" -v ld_r="$(drops reactor)" -v snd="$sender" 'BEGIN {
    printf "UDP drain (medians)   datagrams/s   datagrams/CPU-s\n"
    printf "  C recvmmsg          %11.0f   %15.0f\n", cr, cc
    printf "  Reactor UDPReceiver %11.0f   %15.0f\n", rr, rc
    printf "  ratio Reactor/C     %11.3f   %15.3f   (goal >= 0.90 per CPU-second)\n", rr / cr, rc / cc
    printf "UDP live (medians; blaster %.0f datagrams/s offered; context only: limited by the sender and by scheduling)\n", snd
    printf "  C recvmmsg          %11.0f   %15.0f   kernel drops %d\n", lcr, lcc, ld_c
    printf "  Reactor UDPReceiver %11.0f   %15.0f   kernel drops %d\n", lrr, lrc, ld_r
    printf "  ratio Reactor/C     %11.3f   %15.3f\n", lrr / lcr, lrc / lcc
}'
# User-space share of the receive path (getrusage's user/system split is
# tick-sampled, so only the sum over all rounds means anything).
for kind in c reactor; do
    awk -v k="$kind" '$1 == k {for (i = 2; i <= NF; i++) {split($i, a, "="); if (a[1] == "user_s") u += a[2]; if (a[1] == "cpu_s") c += a[2]; if (a[1] == "datagrams") d += a[2]}}
        END {printf "  %-8s user CPU %.1f ns/datagram (%.1f%% of its CPU), all drain rounds\n", k, u / d * 1e9, 100 * u / c}' "$OUT/drain.txt"
done
echo "loop: $loop"
echo "rss:  $rss"

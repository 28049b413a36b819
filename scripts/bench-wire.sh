#!/usr/bin/env bash
# bench-wire.sh [seconds-per-test]: release build of wire-bench, run pinned
# to one core (taskset, CPU 1 by default; WIRE_BENCH_CPU to change).
# Prints seal and seal+open MB/s for 16 KiB messages, the session pipeline,
# and responder handshakes/s. Figures go in docs/PERFORMANCE.md, "Wire".
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-2}"
swift build -c release --product wire-bench >&2
cpu="${WIRE_BENCH_CPU:-1}"
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(uname -m) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "# libsodium $(pkg-config --modversion libsodium), $(swift --version 2>/dev/null | head -1)"
if command -v taskset >/dev/null; then
  exec taskset -c "$cpu" .build/release/wire-bench "$seconds"
else
  exec .build/release/wire-bench "$seconds"
fi

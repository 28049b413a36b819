#!/usr/bin/env bash
# bench-spool.sh [batches] [interval|always|never]: release build of
# spool-bench, run pinned to one core (CPU 1; SPOOL_BENCH_CPU to change) on
# a directory of this machine's disk (SPOOL_BENCH_DIR, default under
# .build/). Prints the agent spool's write and replay rates (batches/s,
# items/s, MB/s) for aggregate and raw-event batches. Figures go in
# docs/PERFORMANCE.md, "Agent spool".
set -euo pipefail
cd "$(dirname "$0")/.."
batches="${1:-2000}"
sync="${2:-interval}"
swift build -c release --product spool-bench >&2
dir="${SPOOL_BENCH_DIR:-$PWD/.build/spool-bench}"
rm -rf "$dir"
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(uname -m) $(nproc) CPUs, $(df -T "$(dirname "$dir")" | awk 'NR==2 {print $2}') file system"
cpu="${SPOOL_BENCH_CPU:-1}"
if command -v taskset >/dev/null; then
  taskset -c "$cpu" .build/release/spool-bench "$dir" "$batches" "$sync"
else
  .build/release/spool-bench "$dir" "$batches" "$sync"
fi

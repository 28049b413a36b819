#!/usr/bin/env bash
# bench-remote-write.sh [remote-write-bench options]: samples/s the collector's
# remote-write sender encodes and compresses on one core (release build).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/deps.sh
vigil_ensure_deps
swift build -c release --product remote-write-bench >&2
taskset -c 0 .build/release/remote-write-bench "$@"

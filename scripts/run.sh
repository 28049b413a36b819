#!/usr/bin/env bash
# Quick start: installs what is missing, builds, and runs Vigil.
# Until the collector and agent land, this runs the Reactor demo.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/deps.sh
vigil_ensure_deps
swift build -c release --product reactor-demo
exec .build/release/reactor-demo "${1:-5}"

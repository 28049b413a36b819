#!/usr/bin/env bash
# bench-x25519.sh [rounds] [seconds]: the X25519 implementations in Debian's
# -dev packages, timed in C (scripts/bench/x25519.c) pinned to one core
# (CPU 1; WIRE_BENCH_CPU to change), in alternating order round after round,
# with the load average before each run. Rates are per CPU-second. Figures go
# in docs/PERFORMANCE.md, "Wire", "Which X25519".
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/deps.sh
vigil_ensure_deps libgcrypt20-dev >&2   # a benchmark-only package, as load.sh asks for collectd-core
rounds="${1:-5}"
seconds="${2:-1}"
cpu="${WIRE_BENCH_CPU:-1}"
OUT=.build/bench
mkdir -p "$OUT"
gcc -O2 -Wall -o "$OUT/x25519" scripts/bench/x25519.c \
  $(pkg-config --cflags --libs libsodium libcrypto hogweed nettle) -lgcrypt
PIN=()
command -v taskset >/dev/null && PIN=(taskset -c "$cpu")
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "# libsodium $(pkg-config --modversion libsodium), OpenSSL $(pkg-config --modversion libcrypto), nettle $(pkg-config --modversion nettle), libgcrypt $(libgcrypt-config --version 2>/dev/null || echo '?')"
"${PIN[@]}" "$OUT/x25519" "$seconds" openssl-naive libgcrypt nettle
order=(libsodium openssl-cached openssl-bare nettle+sodium nettle+openssl)
for r in $(seq 1 "$rounds"); do
  echo "# round $r, load average $(cut -d' ' -f1-3 /proc/loadavg)"
  "${PIN[@]}" "$OUT/x25519" "$seconds" "${order[@]}" | grep -v -e "^#" -e "^provider"
  order=("${order[@]:1}" "${order[0]}")   # rotate: each provider goes first once
done

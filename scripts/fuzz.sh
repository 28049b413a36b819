#!/usr/bin/env bash
# fuzz.sh TARGET SECONDS [libFuzzer options...]
#   TARGET: ipa (the IPA parser and ingest path), statsd (the agent's
#           StatsD parser and ingest path), spool (the agent's spool
#           segments and saved rules), multipart (the streaming
#           multipart/form-data reader of uploads), json (the JSON
#           module: every HTTP API body, monitor definitions and the Schedule
#           round trip), config (configuration files and agent updates), or a
#           Wire target (framing | records | handshake) where its
#           Sources/Tools/Fuzz/Fuzz* exists, or http-response (the remote-write
#           sender's HTTP response parser).
# Builds the libFuzzer target (release, -sanitize=fuzzer,address, -D FUZZING)
# in its own scratch path (.build-fuzz) so the normal .build is untouched,
# then runs it for SECONDS on one core. The corpus grows in
# fuzz-out/TARGET/corpus (seeded from the target's seed directory); crashes
# land in fuzz-out/TARGET/ as crash-* files. Reproduce one with the plain
# build's replay tool:  swift run fuzz-TARGET fuzz-out/TARGET/crash-...
set -euo pipefail
cd "$(dirname "$0")/.."

target="${1:?usage: fuzz.sh ipa|statsd|spool|multipart|json|config|framing|records|handshake|http-response SECONDS [libFuzzer options]}"
seconds="${2:?usage: fuzz.sh TARGET SECONDS}"
shift 2
case "$target" in
  ipa) seeds="Sources/Tools/Fuzz/FuzzIPA/seeds" ;;
  spool) seeds="Sources/Tools/Fuzz/FuzzSpool/seeds" ;;
  multipart) seeds="Sources/Tools/Fuzz/FuzzMultipart/seeds" ;;
  statsd) seeds="Sources/Tools/Fuzz/FuzzStatsD/seeds" ;;
  json) seeds="Tests/JSONTests/Fixtures/fuzz-seeds/json" ;;
  config) seeds="Tests/ConfigFileTests/Fixtures/fuzz-seeds/config" ;;
  framing|records|handshake) seeds="Tests/WireTests/Fixtures/fuzz-seeds/$target" ;;
  http-response) seeds="Sources/Tools/Fuzz/FuzzHTTPResponse/seeds" ;;
  *) echo "unknown target: $target (ipa, statsd, spool, multipart, json, config, framing, records, handshake, http-response)" >&2; exit 2 ;;
esac
product="fuzz-$target"

swift build -c release --scratch-path .build-fuzz --product "$product" \
  -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library -Xswiftc -DFUZZING >&2

bin=".build-fuzz/release/$product"
out="fuzz-out/$target"
mkdir -p "$out/corpus"
dirs=("$out/corpus")
[ -d "$seeds" ] && dirs+=("$seeds")

# Let ASan/libFuzzer report crashes; Swift's backtracer would run first.
export SWIFT_BACKTRACE=enable=no
# Process-lifetime globals LeakSanitizer cannot see through (scripts/lsan.supp
# says which and why).
export LSAN_OPTIONS="suppressions=$PWD/scripts/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
exec "$bin" -max_total_time="$seconds" -max_len=16384 -rss_limit_mb=2048 -timeout=10 \
  -print_final_stats=1 -artifact_prefix="$out/" "$@" "${dirs[@]}"

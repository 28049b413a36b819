#!/usr/bin/env bash
# fuzz-all.sh [SECONDS]: runs every fuzz target present (Sources/Tools/Fuzz/Fuzz*) for
# SECONDS (default 20) each, one after another (one core). Exits non-zero if
# any target finds a crash. Called by scripts/test.sh with a short duration.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-20}"
status=0
for target in ipa statsd spool multipart framing records handshake json config http-response; do
  case "$target" in
    ipa) src=Sources/Tools/Fuzz/FuzzIPA ;;
    statsd) src=Sources/Tools/Fuzz/FuzzStatsD ;;
    multipart) src=Sources/Tools/Fuzz/FuzzMultipart ;;
    json) src=Sources/Tools/Fuzz/FuzzJSON ;;
    config) src=Sources/Tools/Fuzz/FuzzConfig ;;
    http-response) src=Sources/Tools/Fuzz/FuzzHTTPResponse ;;
    *) src="Sources/Tools/Fuzz/Fuzz$(tr '[:lower:]' '[:upper:]' <<<"${target:0:1}")${target:1}" ;;
  esac
  [ -d "$src" ] || continue
  log="fuzz-out/$target.log"
  mkdir -p fuzz-out
  if scripts/fuzz.sh "$target" "$seconds" >"$log" 2>&1; then
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    echo "fuzz $target: ok, ${seconds}s, $runs executions"
  else
    echo "fuzz $target: FAILED (see $log)"
    tail -n 30 "$log"
    status=1
  fi
done
exit $status

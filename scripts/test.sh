#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test: the XCTest suites,
# the console in headless Chromium (scripts/console-test.sh), a cluster of
# three collectors on PostgreSQL started and stopped (scripts/cluster-test.sh), the Reactor
# suite under AddressSanitizer, the Reactor
# and store suites under ThreadSanitizer, docs/ARCHITECTURE.md's module table
# against Package.swift, the Debian packages (scripts/test-packages.sh), and a
# short run of each fuzz target. Exits non-zero
# on any failure.
#   scripts/test.sh            everything
#   VIGIL_SKIP_SANITIZERS=1    skip the sanitizer runs (local iteration only)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/deps.sh
vigil_ensure_deps
vigil_ensure_python_packages

log=$(mktemp)
trap 'rm -f "$log"' EXIT
passed=0
failed=0

# Runs one `swift test` invocation, adding its XCTest totals to the tally.
run_suite() {
  local label=$1; shift
  echo "== $label"
  set +e
  swift test --disable-swift-testing "$@" >"$log" 2>&1
  local rc=$?
  set -e
  local line
  line=$(grep -E "Executed [0-9]+ tests?, with [0-9]+ failures?" "$log" | tail -1 || true)
  grep -E "error:|' failed \(" "$log" | head -40 || true
  echo "$line"
  local n f
  n=$(echo "$line" | sed -E 's/.*Executed ([0-9]+) tests?.*/\1/')
  f=$(echo "$line" | sed -E 's/.*with ([0-9]+) failures?.*/\1/')
  [ -n "$n" ] || n=0
  [ -n "$f" ] || f=0
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; tail -40 "$log"; fi
  passed=$((passed + n - f))
  failed=$((failed + f))
  return 0
}

echo "== build"
swift build --build-tests 2>&1 | grep -E "error|warning: unre|Build complete" || true
swift build --build-tests >/dev/null

run_suite "tests"

echo "== console in a browser (scripts/console-test.sh)"
# Screenshots to a scratch folder: a test run leaves docs/console as committed
# (run scripts/console-test.sh alone to refresh them).
shots=$(mktemp -d /tmp/vigil-console-shots.XXXXXX)
if VIGIL_SCREENSHOTS="${VIGIL_SCREENSHOTS-$shots}" bash scripts/console-test.sh; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
rm -rf "$shots"

echo "== cluster: three collectors on one PostgreSQL (scripts/cluster-test.sh)"
if bash scripts/cluster-test.sh >"$log" 2>&1; then passed=$((passed + 1)); tail -1 "$log"; else failed=$((failed + 1)); tail -40 "$log"; fi

if [ "${VIGIL_SKIP_SANITIZERS:-0}" != 1 ]; then
  ASAN_OPTIONS=malloc_context_size=10 LSAN_OPTIONS="suppressions=$PWD/scripts/lsan.supp" \
    run_suite "Reactor tests under AddressSanitizer" --sanitize=address --scratch-path .build-asan --filter ReactorTests
  # The store's writer thread shares jobs with the loop thread: its suite runs under TSan too.
  run_suite "Reactor and store tests under ThreadSanitizer" --sanitize=thread --scratch-path .build-tsan \
    --filter "ReactorTests|CollectorStoreTests"
fi

echo "== docs/ARCHITECTURE.md against Package.swift"
if swift package dump-package | python3 scripts/check-architecture.py; then passed=$((passed + 1)); else failed=$((failed + 1)); fi

# The Debian packages: built (release), installed with dpkg, both programs
# run as their units would, removed and purged. Needs root (dpkg -i).
echo "== Debian packages (scripts/test-packages.sh)"
if scripts/test-packages.sh >"$log" 2>&1; then passed=$((passed + 1)); tail -1 "$log"; else failed=$((failed + 1)); tail -40 "$log"; fi

if [ -x scripts/fuzz-all.sh ]; then
  echo "== fuzz (short runs)"
  if scripts/fuzz-all.sh "${VIGIL_FUZZ_SECONDS:-20}"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
fi

echo
echo "vigil: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

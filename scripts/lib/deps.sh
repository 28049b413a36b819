# Sourced by the scripts: installs the Debian packages Vigil needs when any
# is missing (apt-get update once, then one apt-get install), as root or via
# sudo. Nothing else is assumed on a fresh Debian machine but Swift.

VIGIL_DEBIAN_PACKAGES=(
  libev-dev            # Reactor: the event loop (also libev.a for static agents)
  libsodium-dev        # Wire: X25519, ChaCha20-Poly1305, SHA-256
  libsqlite3-dev       # Collector: embedded storage
  libpq-dev            # Collector: the PostgreSQL store (CPQ)
  postgresql           # tests and scripts/load.sh --store postgresql: a private server (scripts/lib/postgres.sh)
  libmicrohttpd-dev    # Collector: HTTP API on the loop
  libcurl4-openssl-dev # Agent: HTTP synthetic monitors
  libsnappy-dev        # Collector: remote-write request compression (CSnappy)
  pkg-config
  curl                 # run.sh and the benchmarks talk to the HTTP API
  gcc                  # benchmark baselines in C
  python3              # scripts/check-architecture.py (test.sh), benchmark helpers, the Python example emitter and its test
  perl                 # examples/emitters/perl (HTTP::Tiny) and its test against a real agent
  prometheus           # tests: promtool checks /metrics; the remote-write receiver the sender is tested against
  libjs-dygraphs       # console: the chart library, served from /usr/share/javascript/dygraphs
  chromium             # console browser test (scripts/console-test.sh): headless browser
  chromium-driver      #   its WebDriver
  python3-selenium     #   the test's driver library (run with Debian's /usr/bin/python3)
)

vigil_ensure_deps() {
  local missing=() p
  for p in "${VIGIL_DEBIAN_PACKAGES[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing Debian packages: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

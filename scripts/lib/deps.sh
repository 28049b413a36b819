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
  libcurl4-openssl-dev # Agent: HTTP synthetic monitors (the OpenSSL flavour: docs/PERFORMANCE.md, "Footprint with HTTP monitors"); vigil-notify: https webhooks and SMTP for alerts
  libsnappy-dev        # Collector: remote-write request compression (CSnappy)
  libgnutls28-dev      # Collector: TLS to https remote-write receivers (CGnuTLS)
  pkg-config
  dpkg-dev             # scripts/package.sh: dpkg-shlibdeps computes the packages' Depends
  adduser              # the packages' postinst creates the vigil user (scripts/test-packages.sh installs them)
  init-system-helpers  # the packages' maintainer scripts: deb-systemd-helper, deb-systemd-invoke
  systemd              # scripts/test-packages.sh: systemd-analyze verify on the units (systemd need not run)
  curl                 # run.sh and the benchmarks talk to the HTTP API
  gcc                  # benchmark baselines in C
  python3              # scripts/check-architecture.py (test.sh), benchmark helpers, the Python example emitter and its test, the /healthz test (holds the database's write lock with sqlite3)
  perl                 # examples/emitters/perl (HTTP::Tiny) and its test against a real agent
  prometheus           # tests: promtool checks /metrics; the remote-write receiver the sender is tested against
  openssl              # tests: self-signed certificates for the collector's HTTPS (http_tls_cert, http_tls_key), the https remote-write receiver, s_server
  libjs-dygraphs       # console: the chart library, served from /usr/share/javascript/dygraphs
  chromium             # console browser test (scripts/console-test.sh): headless browser
  chromium-driver      #   its WebDriver
  python3-selenium     #   the test's driver library (run with Debian's /usr/bin/python3)
  python3-aiosmtpd     # alert tests: the local SMTP sink e-mail notifications are delivered to
)

# Python modules from PyPI the tests use (import name = package name).
VIGIL_PYTHON_PACKAGES=(
  statsd               # tests: a real StatsD client sends to the agent (Tests/AgentTests/StatsD)
  datadog              # tests: a real DogStatsD client (tags, distributions, events) sends to the agent
)

# Installs the missing VIGIL_PYTHON_PACKAGES into the python3 on PATH (a
# pyenv build included) with its own pip; nothing when all import.
vigil_ensure_python_packages() {
  local missing=() p
  for p in "${VIGIL_PYTHON_PACKAGES[@]}"; do
    python3 -c "import $p" 2>/dev/null || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing Python packages: ${missing[*]}"
  python3 -m pip install -q --disable-pip-version-check "${missing[@]}"
}

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

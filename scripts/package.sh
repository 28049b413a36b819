#!/usr/bin/env bash
# package.sh — the Debian packages vigil-agent and vigil-collector, built
# with dpkg-deb from the release binaries (no debhelper build):
#   vigil-agent      the static agent as it ships (scripts/lib/agent-build.sh)
#   vigil-collector  the collector, release, Swift runtime linked statically
# Each holds the stripped binary in /usr/bin, its unit in /lib/systemd/system
# (packaging/systemd), a conffile in /etc/vigil/ with the defaults commented
# (written from the program's own `check-config` output), a man page made
# from its `--help`, and the maintainer scripts of packaging/debian.
# `Depends` comes from dpkg-shlibdeps on the binary, plus adduser.
#   scripts/package.sh [OUTDIR]        (default .build/packages)
# Environment: VIGIL_PACKAGE_SKIP_BUILD=1 packages the binaries already built
# (.build-agent/release/vigil-agent, .build/release/vigil-collector).
# Prints the paths of the two .deb files, one per line, last.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-.build/packages}
source scripts/lib/deps.sh
vigil_ensure_deps
source scripts/lib/agent-build.sh

AGENT_BIN="$VIGIL_AGENT_SCRATCH/release/vigil-agent"
COLLECTOR_BIN=.build/release/vigil-collector
# The collector's notification helper (https webhooks, e-mail), installed beside it.
NOTIFY_BIN=.build/release/vigil-notify
if [ "${VIGIL_PACKAGE_SKIP_BUILD:-0}" != 1 ]; then
    vigil_build_agent 2>&1 | grep -E "error|Build complete" >&2 || true
    swift build -c release --static-swift-stdlib --product vigil-collector 2>&1 | grep -E "error|Build complete" >&2 || true
    swift build -c release --static-swift-stdlib --product vigil-notify 2>&1 | grep -E "error|Build complete" >&2 || true
fi
[ -x "$AGENT_BIN" ] && [ -x "$COLLECTOR_BIN" ] && [ -x "$NOTIFY_BIN" ] || { echo "package.sh: release binaries missing" >&2; exit 1; }

ARCH=$(dpkg --print-architecture)
VERSION=$("$COLLECTOR_BIN" --version | awk '{print $2}')
WORK=$(mktemp -d /tmp/vigil-package.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT"

# dpkg-shlibdeps wants a debian/control to read; the Depends it computes
# from the binary's DT_NEEDED libraries and the shlibs/symbols files of the
# packages that ship them. It reads the symbols the binary imports, not the
# versions it requires without a symbol: a binary with packed relative
# relocations (DT_RELR, the agent: scripts/lib/agent-build.sh) requires
# GLIBC_ABI_DT_RELR, i.e. glibc 2.36, which it would not see, so that
# floor is raised here.
shlib_depends() {
    mkdir -p "$WORK/shlibs/debian"
    printf 'Source: vigil\n\nPackage: vigil\nArchitecture: any\n' > "$WORK/shlibs/debian/control"
    local deps
    deps=$( (cd "$WORK/shlibs" && dpkg-shlibdeps -O "$1") | sed -n 's/^shlibs:Depends=//p')
    if readelf -d "$1" | grep -q "(RELR)"; then
        deps=$(echo "$deps" | sed -E 's/libc6 \(>= 2\.(3[0-5]|[0-2][0-9]|[0-9])(\.[0-9]+)?\)/libc6 (>= 2.36)/')
    fi
    echo "$deps"
}

# man_page PROGRAM SUMMARY: roff from `PROGRAM --help` (help2man's idea).
man_page() {
    local prog=$1 summary=$2 bin=$3 upper
    upper=$(echo "$prog" | tr a-z A-Z)
    cat <<ROFF
.TH $upper 8 "" "$prog $VERSION" "Vigil"
.SH NAME
$prog \\- $summary
.SH DESCRIPTION
The text below is \\fB$prog \\-\\-help\\fR.
.PP
.nf
ROFF
    "$bin" --help | sed -e 's/\\/\\e/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"
    cat <<ROFF
.fi
.SH FILES
.TP
.I /etc/vigil/$4
configuration (\\fBkey = value\\fR lines; the defaults are listed, commented)
.TP
.I /var/lib/$prog
$5
.TP
.I /lib/systemd/system/$prog.service
the systemd unit (Type=notify, watchdog, runs as user \\fBvigil\\fR)
.SH SIGNALS
SIGHUP reloads the configuration file; SIGTERM and SIGINT shut down cleanly.
.SH SEE ALSO
.BR vigil-agent (8),
.BR vigil-collector (8),
.BR systemctl (1)
ROFF
}

# conffile PROGRAM ARGS…: `check-config` with ARGS, defaults commented out.
conffile() {
    local bin=$1; shift
    echo "# Vigil: $(basename "$bin") configuration, \`key = value\` per line, # comments."
    echo "# Every key with its default, commented out; \`$(basename "$bin") --help\` explains each."
    echo "# SIGHUP (systemctl reload $(basename "$bin")) applies the live keys."
    echo
    "$bin" check-config "$@" 2>/dev/null | sed -E \
        -e 's/^access_key = <redacted>  # set$/# Required: the key `vigil-collector keys create --project NAME` prints.\n#access_key = <the key keys create printed>/' \
        -e 's/^(.*)  # default$/#\1/' -e 's/^(.*)  # set$/\1/'
}

# stage PACKAGE CONF STATEMODE READY OTHER SUMMARY DEPENDS_EXTRA RECOMMENDS DESCRIPTION…
build_deb() {
    local pkg=$1 bin=$2 conf=$3 mode=$4 ready=$5 other=$6 summary=$7 extra=$8 recommends=$9
    local root="$WORK/$pkg"
    install -d "$root/DEBIAN" "$root/usr/bin" "$root/etc/vigil" "$root/lib/systemd/system" \
        "$root/usr/share/man/man8" "$root/usr/share/doc/$pkg"
    strip -o "$root/usr/bin/$pkg" "$bin"
    chmod 0755 "$root/usr/bin/$pkg"
    install -m 0644 "packaging/systemd/$pkg.service" "$root/lib/systemd/system/"
    install -m 0644 "$WORK/$conf" "$root/etc/vigil/$conf"
    man_page "$pkg" "$summary" "$bin" "$conf" "$([ "$pkg" = vigil-agent ] && echo "state: the agent's key, last filter rules, spool" || echo "data: the SQLite database and the generated admin token")" \
        | gzip -9n > "$root/usr/share/man/man8/$pkg.8.gz"
    install -m 0644 docs/OPERATIONS.md "$root/usr/share/doc/$pkg/OPERATIONS.md"
    # The collector's web console, where the source tree has one: the
    # installed layout it looks for is /usr/share/vigil/console.
    if [ "$pkg" = vigil-collector ] && [ -d console ]; then
        install -d "$root/usr/share/vigil"
        cp -r console "$root/usr/share/vigil/console"
        chmod -R u=rwX,go=rX "$root/usr/share/vigil"
        recommends="${recommends:+$recommends, }libjs-dygraphs"
    fi
    # vigil-notify loads libcurl when it runs (dlopen), so shlibdeps cannot see it.
    if [ "$pkg" = vigil-collector ]; then
        strip -o "$root/usr/bin/vigil-notify" "$NOTIFY_BIN"
        chmod 0755 "$root/usr/bin/vigil-notify"
        recommends="${recommends:+$recommends, }libcurl4"
    fi
    for s in postinst prerm postrm; do
        sed -e "s|@PACKAGE@|$pkg|g" -e "s|@CONF@|$conf|g" -e "s|@STATEMODE@|$mode|g" \
            -e "s|@READY_TO_START@|$ready|g" -e "s|@OTHER@|$other|g" "packaging/debian/$s" > "$root/DEBIAN/$s"
        chmod 0755 "$root/DEBIAN/$s"
    done
    echo "/etc/vigil/$conf" > "$root/DEBIAN/conffiles"
    local depends
    depends="$(shlib_depends "$root/usr/bin/$pkg"), adduser$extra"
    {
        echo "Package: $pkg"
        echo "Version: $VERSION"
        echo "Architecture: $ARCH"
        echo "Maintainer: Vigil <vigil@localhost>"
        echo "Section: net"
        echo "Priority: optional"
        echo "Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)"
        echo "Depends: $depends"
        [ -z "$recommends" ] || echo "Recommends: $recommends"
        echo "Description: Vigil $summary"
        shift 9
        for line in "$@"; do echo " $line"; done
    } > "$root/DEBIAN/control"
    dpkg-deb --root-owner-group -Zxz --build "$root" "$OUT/${pkg}_${VERSION}_${ARCH}.deb" >/dev/null
    echo "$OUT/${pkg}_${VERSION}_${ARCH}.deb"
}

# The agent's check-config needs a valid access_key: one from a throwaway
# collector database, so it has whatever form keys have (redacted, then
# replaced by the placeholder line above).
KEY=$("$COLLECTOR_BIN" keys create --project example --create-project --set "data_dir=$WORK/keys" 2>/dev/null)
conffile "$AGENT_BIN" --set "access_key=$KEY" --set state_dir=/var/lib/vigil-agent > "$WORK/agent.conf"
conffile "$COLLECTOR_BIN" --set data_dir=/var/lib/vigil-collector > "$WORK/collector.conf"
grep -q '^#access_key' "$WORK/agent.conf" && grep -q '^data_dir = /var/lib/vigil-collector$' "$WORK/collector.conf" \
    || { echo "package.sh: conffile generation failed" >&2; exit 1; }

build_deb vigil-agent "$AGENT_BIN" agent.conf 0700 \
    "grep -Eq '^[[:space:]]*access_key[[:space:]]*=' \"\$CONF\"" vigil-collector \
    "monitoring agent (instrumentation ingest, synthetic monitors)" "" "libcurl4" \
    "One small static program per host: it receives fire-and-forget UDP records" \
    "from in-process instrumentation, filters and aggregates them, runs scheduled" \
    "synthetic monitors (http monitors load libcurl), and ships everything over one" \
    "encrypted session to a Vigil collector. Set access_key in /etc/vigil/agent.conf."
build_deb vigil-collector "$COLLECTOR_BIN" collector.conf 0750 true vigil-agent \
    "monitoring collector (agent sessions, storage, HTTP API)" "" "" \
    "Holds thousands of long-lived Vigil agent sessions, stores what they send in an" \
    "embedded SQLite database, acknowledges only what is durable, and serves an HTTP" \
    "API, Prometheus metrics and optionally Prometheus remote write."

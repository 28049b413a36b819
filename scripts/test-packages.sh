#!/usr/bin/env bash
# test-packages.sh — the Debian packages on this machine, as root: builds them
# (scripts/package.sh; release builds, incremental), checks the units with
# `systemd-analyze verify`, installs both with `dpkg -i`, starts each program
# the way its unit's ExecStart would (the unit's own command line, as user
# vigil, in its WorkingDirectory, NOTIFY_SOCKET pointing at a socket this
# script binds, WATCHDOG_USEC set), checks READY=1 and watchdog pings, runs
# the agent against the collector with a key from the installed
# `vigil-collector keys create`, sees it connected through the API, stops
# both (STOPPING=1, exit 0), then `dpkg -r` (conffiles and data kept) and
# `dpkg -P` (conffiles, data and the vigil user gone). systemd need not run.
# Loopback only; ports chosen free (given through the environment, as a unit
# drop-in's Environment= would). Leaves the machine as it found it.
# Refuses to run where Vigil packages, their directories or a `vigil` user
# already exist; one run at a time per machine (flock).
# Exits non-zero on the first failed check.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "test-packages.sh: needs root (dpkg -i)" >&2; exit 1; }
# One run at a time on a machine (other checkouts' test.sh may run this too):
# flock(2) on dpkg's database directory, which always exists, so no lock file
# is left behind (dpkg's own lock is an fcntl lock, which flock does not touch).
exec 9</var/lib/dpkg
flock -w 1200 9 || { echo "test-packages.sh: another run holds the lock on /var/lib/dpkg" >&2; exit 1; }
for p in vigil-agent vigil-collector; do
    if dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qv not-installed; then
        echo "test-packages.sh: $p is on this machine already; not touching it" >&2; exit 1
    fi
done
if getent passwd vigil >/dev/null; then echo "test-packages.sh: a user vigil exists already; not touching it" >&2; exit 1; fi
for d in /etc/vigil /var/lib/vigil-agent /var/lib/vigil-collector; do
    if [ -e "$d" ]; then echo "test-packages.sh: $d exists already; not touching it" >&2; exit 1; fi
done

T=$(mktemp -d /tmp/vigil-pkgtest.XXXXXX)
chmod 0755 "$T"
CPID= APID= LPIDS=()
PACKAGES_BEFORE=$(dpkg-query -W -f='${Package}\n' | sort)
fail() { echo "FAIL: $*" >&2; for f in "$T"/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -20 "$f" >&2; }; done; exit 1; }
ok() { echo "ok: $*"; }
cleanup() {
    for p in $APID $CPID "${LPIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    for p in vigil-agent vigil-collector; do
        if dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qv not-installed; then dpkg_retry -P "$p" >/dev/null 2>&1 || true; fi
    done
    getent passwd vigil >/dev/null && userdel vigil 2>/dev/null || true
    getent group vigil >/dev/null && groupdel vigil 2>/dev/null || true
    rm -rf /var/lib/vigil-agent /var/lib/vigil-collector "$T"
    # Dependencies apt-get pulled in for the packages go again.
    local added
    added=$(comm -13 <(echo "$PACKAGES_BEFORE") <(dpkg-query -W -f='${Package}\n' | sort) || true)
    [ -z "$added" ] || DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq $added >/dev/null 2>&1 || true
}
trap cleanup EXIT

# dpkg takes its lock or fails at once; other builds on this machine may hold it for a moment.
dpkg_retry() {
    local i
    for i in $(seq 60); do
        if dpkg "$@" 2>"$T/dpkg.err"; then return 0; fi
        grep -q "lock" "$T/dpkg.err" || { cat "$T/dpkg.err" >&2; return 1; }
        sleep 1
    done
    cat "$T/dpkg.err" >&2; return 1
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
free_udp_port() { python3 -c 'import socket; s=socket.socket(type=socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# listen NAME: a Unix datagram socket $T/NAME.sock (writable by the service
# user), every datagram appended to $T/NAME.msgs with its newlines as '|'.
listen() {
    python3 -u - "$T/$1.sock" "$T/$1.msgs" <<'PY' &
import os, socket, sys
path, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
os.chmod(path, 0o666)
with open(out, "a") as f:
    while True:
        f.write(s.recv(4096).decode().replace("\n", "|") + "\n")
        f.flush()
PY
    LPIDS+=($!)
    for _ in $(seq 100); do [ -S "$T/$1.sock" ] && return 0; sleep 0.05; done
    fail "notify listener $1 did not start"
}

# wait_msg NAME PATTERN [COUNT] [TIMEOUT_S]: COUNT messages matching PATTERN (grep -E).
wait_msg() {
    local n=${3:-1} deadline=$((SECONDS + ${4:-30}))
    while [ $SECONDS -lt $deadline ]; do
        [ "$(grep -cE "$2" "$T/$1.msgs" 2>/dev/null || true)" -ge "$n" ] && return 0
        sleep 0.1
    done
    fail "$1: no $n× '$2' (got: $(tr '\n' ' ' < "$T/$1.msgs" 2>/dev/null))"
}

# unit_exec UNIT: the unit's ExecStart= and WorkingDirectory=, as installed.
unit_value() { sed -n "s/^$2=//p" "/lib/systemd/system/$1.service"; }

# start_unit UNIT ENV…: runs ExecStart as User= in WorkingDirectory= with the
# unit's NoNewPrivileges, a notify socket and a watchdog; sets the pid in $!.
start_unit() {
    local unit=$1; shift
    local user dir cmd
    user=$(unit_value "$unit" User); dir=$(unit_value "$unit" WorkingDirectory); cmd=$(unit_value "$unit" ExecStart)
    [ -n "$user" ] && [ -n "$dir" ] && [ -n "$cmd" ] || fail "$unit: User, WorkingDirectory or ExecStart missing"
    (cd "$dir" && exec env -i PATH=/usr/bin:/bin NOTIFY_SOCKET="$T/$unit.sock" WATCHDOG_USEC=1000000 "$@" \
        setpriv --reuid "$user" --regid "$user" --init-groups --no-new-privs -- $cmd) 2>"$T/$unit.log" &
}

echo "== packages"
start=$SECONDS
mapfile -t debs < <(scripts/package.sh "$T/debs" | tail -2)
ok "built ${debs[*]##*/} in $((SECONDS - start)) s"
for d in "${debs[@]}"; do
    dpkg-deb -I "$d" | grep -E "^ (Package|Version|Depends|Recommends):" | sed 's/^/    /'
    dpkg-deb -c "$d" > "$T/contents"
    grep -qE "\./etc/vigil/(agent|collector)\.conf$" "$T/contents" || fail "$d: no conffile"
done

echo "== install"
if ! dpkg_retry -i "${debs[@]}" >"$T/dpkg-i.log" 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -f -y -qq >/dev/null || fail "dependencies"
fi
for p in vigil-agent vigil-collector; do
    [ "$(dpkg-query -W -f='${db:Status-Status}' $p)" = installed ] || fail "$p not installed"
    [ -x /usr/bin/$p ] && [ -f /lib/systemd/system/$p.service ] && zcat /usr/share/man/man8/$p.8.gz | grep -q "^.TH" \
        || fail "$p: binary, unit or man page missing"
    [ "$(stat -c %U:%a /var/lib/$p)" = "vigil:$([ $p = vigil-agent ] && echo 700 || echo 750)" ] || fail "/var/lib/$p: $(stat -c %U:%a /var/lib/$p)"
done
[ -x /usr/bin/vigil-notify ] || fail "vigil-collector: vigil-notify (alert notifications) missing"
getent passwd vigil | grep -q ":/nonexistent:" || fail "system user vigil"
for p in vigil-agent vigil-collector; do
    [ -L /etc/systemd/system/multi-user.target.wants/$p.service ] || fail "$p.service not enabled by deb-systemd-helper"
done
[ "$(stat -c %G:%a /etc/vigil/agent.conf)" = vigil:640 ] || fail "agent.conf mode $(stat -c %G:%a /etc/vigil/agent.conf)"
grep -q "^#ipa_port = 51712$" /etc/vigil/agent.conf && grep -q "^#listen = 0.0.0.0:6600$" /etc/vigil/collector.conf \
    || fail "conffiles do not list the defaults"
ok "installed: binaries, units, man pages, conffiles (defaults commented), user vigil, state directories"
verify=$(systemd-analyze verify --man=no /lib/systemd/system/vigil-agent.service /lib/systemd/system/vigil-collector.service 2>&1) \
    && [ -z "$verify" ] || fail "systemd-analyze verify: $verify"
ok "systemd-analyze verify: no findings"
vigil-agent --version >/dev/null 2>&1 || vigil-agent version >/dev/null || fail "vigil-agent does not run"
ldd /usr/bin/vigil-agent | grep -q swift && fail "the packaged agent links the Swift runtime dynamically"
# The agent is linked with packed relative relocations (DT_RELR), which need
# glibc 2.36: the package must say so (dpkg-shlibdeps reads the binary's
# GLIBC_ABI_DT_RELR version), and the binary above ran on this glibc.
readelf -d /usr/bin/vigil-agent | grep -q "(RELR)" || fail "the packaged agent has no DT_RELR (scripts/lib/agent-build.sh)"
dpkg-query -W -f='${Depends}' vigil-agent | grep -qE "libc6 \(>= 2\.(3[6-9]|[4-9][0-9])" \
    || fail "vigil-agent Depends: $(dpkg-query -W -f='${Depends}' vigil-agent) (DT_RELR needs libc6 >= 2.36)"
ok "the agent runs; DT_RELR, Depends: $(dpkg-query -W -f='${Depends}' vigil-agent | grep -oE 'libc6 \([^)]*\)')"

echo "== run as the units would"
SPORT=$(free_port); HPORT=$(free_port); IPORT=$(free_udp_port)
KEY=$(runuser -u vigil -- vigil-collector keys create --project pkgtest --create-project --config /etc/vigil/collector.conf) \
    || fail "keys create"
# What an operator does: the key into the agent's conffile.
printf 'access_key = %s\nserver_port = %s\n' "$KEY" "$SPORT" >> /etc/vigil/agent.conf
listen vigil-collector
start_unit vigil-collector VIGIL_COLLECTOR_LISTEN=127.0.0.1:$SPORT VIGIL_COLLECTOR_HTTP_LISTEN=127.0.0.1:$HPORT
CPID=$!
wait_msg vigil-collector "^READY=1"
curl -sf "http://127.0.0.1:$HPORT/healthz" >/dev/null || fail "collector READY=1 but its HTTP port does not answer"
[ "$(ps -o user= -p $CPID | tr -d ' ')" = vigil ] || fail "collector not running as vigil"
wait_msg vigil-collector "^WATCHDOG=1" 2
ok "collector: READY=1 ($(grep -m1 '^READY=1' "$T/vigil-collector.msgs")), port answering, watchdog pings"

listen vigil-agent
start_unit vigil-agent VIGIL_IPA_PORT=$IPORT
APID=$!
wait_msg vigil-agent "^READY=1"
grep -q "$(printf '0100007F:%04X' "$IPORT")" /proc/net/udp || fail "agent READY=1 before its IPA port was bound"
wait_msg vigil-agent "^WATCHDOG=1" 2
ok "agent: READY=1, IPA port bound, watchdog pings"

TOKEN=$(cat /var/lib/vigil-collector/admin_token)
connected=
for _ in $(seq 150); do
    if curl -sf -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$HPORT/api/v1/agents?project=pkgtest" \
        | grep -q '"connected":true'; then connected=1; break; fi
    sleep 0.1
done
[ -n "$connected" ] || fail "the agent never showed as connected in GET /api/v1/agents"
ok "agent connected to the collector (GET /api/v1/agents)"
[ "$(stat -c %U /var/lib/vigil-collector/admin_token)" = vigil ] || fail "collector files not owned by vigil"

kill -HUP $CPID
wait_msg vigil-collector "^RELOADING=1"
wait_msg vigil-collector "^READY=1" 2
kill -TERM $APID $CPID
wait_msg vigil-agent "^STOPPING=1"
wait_msg vigil-collector "^STOPPING=1"
wait $APID || fail "agent exit status $?"
wait $CPID || fail "collector exit status $?"
APID= CPID=
ok "SIGHUP: RELOADING=1 then READY=1; SIGTERM: STOPPING=1, both exit 0"

echo "== remove, purge"
dpkg_retry -r vigil-agent vigil-collector >/dev/null
[ ! -e /usr/bin/vigil-agent ] && [ ! -e /usr/bin/vigil-collector ] && [ ! -e /usr/bin/vigil-notify ] || fail "binaries left after dpkg -r"
grep -q "^access_key = $KEY" /etc/vigil/agent.conf && [ -f /etc/vigil/collector.conf ] || fail "conffiles not kept by dpkg -r"
[ -d /var/lib/vigil-collector ] && getent passwd vigil >/dev/null || fail "data or user gone after dpkg -r"
ok "dpkg -r: programs gone; conffiles, data and user kept"
dpkg_retry -P vigil-agent vigil-collector >/dev/null
[ ! -e /etc/vigil ] || fail "/etc/vigil left after purge: $(ls -A /etc/vigil)"
[ ! -e /var/lib/vigil-agent ] && [ ! -e /var/lib/vigil-collector ] || fail "data left after purge"
! getent passwd vigil >/dev/null && ! getent group vigil >/dev/null || fail "user or group vigil left after purge"
dpkg-query -W vigil-agent vigil-collector >/dev/null 2>&1 && fail "dpkg still knows the packages"
left=$(find /etc/systemd /var/lib/systemd -name "vigil-*" 2>/dev/null)
[ -z "$left" ] || fail "unit state left after purge: $left"
ok "dpkg -P: conffiles, data, user and group gone"
echo "packages: ok ($((SECONDS - start)) s)"

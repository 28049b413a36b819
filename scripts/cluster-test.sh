#!/usr/bin/env bash
# cluster-test.sh — scripts/cluster.sh end to end (scripts/test.sh runs it): start a cluster in a
# temporary directory on free ports, wait until every collector's /healthz answers 200 and every
# agent is listed by `GET /api/v1/agents` of a collector that does not hold its session (the
# agents and their states are in the shared store), check that a second start refuses and that
# status names every process, stop, and check that no process of the cluster is left (not the
# collectors, not the agents, not PostgreSQL).
#   scripts/cluster-test.sh      (after `swift build`; uses the debug binaries)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${VIGIL_BIN:-$(swift build --show-bin-path)}
for p in vigil-collector vigil-agent; do
    [ -x "$BIN/$p" ] || swift build --product "$p" >/dev/null
done

DIR=$(mktemp -d /tmp/vigil-cluster-test.XXXXXX)
chmod 0711 "$DIR"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# Three consecutive free TCP ports (HTTP of collectors 1-3) and one for the sessions.
consecutive_free() {
    python3 - <<'EOF'
import socket
for base in range(20000, 32000, 7):
    socks = []
    try:
        for p in range(base, base + 3):
            s = socket.socket(); s.bind(("127.0.0.1", p)); socks.append(s)
        print(base); break
    except OSError:
        pass
    finally:
        for s in socks: s.close()
EOF
}
export VIGIL_CLUSTER_DIR=$DIR/cluster VIGIL_BIN=$BIN VIGIL_CLUSTER_AGENTS=6
export VIGIL_CLUSTER_PORT=$(free_port) VIGIL_CLUSTER_HTTP_PORT=$(consecutive_free) VIGIL_CLUSTER_IPA_PORT=$(( $(consecutive_free) + 3 ))
PIDS_SEEN=""
fail() {
    echo "cluster-test: FAIL: $*" >&2
    for f in "$DIR"/cluster/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -5 "$f" >&2; }; done
    echo "cluster-test: FAIL: $*" >&2   # again, last: test.sh shows the log's tail
    exit 1
}
cleanup() {
    local s=$?
    trap - EXIT
    scripts/cluster.sh stop >/dev/null 2>&1 || true
    rm -rf "$DIR"
    exit $s
}
trap cleanup EXIT

scripts/cluster.sh start > "$DIR/start.out" 2>&1 || { cat "$DIR/start.out" >&2; fail "start failed"; }
grep -q "Admin token (every collector): " "$DIR/start.out" || fail "start did not print the admin token"
PIDS_SEEN=$(awk '{print $2}' "$DIR/cluster/pids" | tr '\n' ' ')
[ "$(wc -l < "$DIR/cluster/pids")" = 9 ] || fail "expected 3 collectors and 6 agents in pids, got: $(cat "$DIR/cluster/pids")"
TOKEN=$(cat "$DIR/cluster/admin_token")

# Every agent listed by a collector other than the one holding its session, within 60 s.
check_visible() {
    local i
    for i in 1 2 3; do
        curl -sf -m 5 -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$((VIGIL_CLUSTER_HTTP_PORT + i - 1))/api/v1/agents" \
            > "$DIR/agents-$i.json" || return 1
    done
    python3 - "$DIR" <<'EOF'
import json, sys
d = sys.argv[1]
lists = [{a["name"]: a for a in json.load(open(f"{d}/agents-{i}.json"))["agents"]} for i in (1, 2, 3)]
# Each agent's holder as every collector tells it: one collector, the same in all three lists.
missing = []
holders = {}
for n in range(6):
    name = f"cluster-agent-{n}"
    told = [l.get(name) for l in lists]
    if any(a is None for a in told):
        missing.append(f"{name}: not listed by every collector"); continue
    ids = {a.get("collector") or "" for a in told}
    if len(ids) != 1 or "" in ids or not all(a.get("connected") for a in told):
        missing.append(f"{name}: held by {sorted(ids)} (connected: {[a.get('connected') for a in told]})"); continue
    holders[name] = ids.pop()
if missing:
    print("; ".join(missing)); sys.exit(1)
per = {}
for h in holders.values():
    per[h] = per.get(h, 0) + 1
if len(per) < 2:
    # Agents start with rotated collector lists: one holder for all means the collectors share an id.
    print(f"every agent held by {sorted(per)}: the collectors do not tell themselves apart"); sys.exit(1)
print("agents per collector:", sorted(per.values()), "held by", len(per), "collectors")
EOF
}
ok=0
for _ in $(seq 120); do
    if out=$(check_visible 2>&1); then ok=1; break; fi
    sleep 0.5
done
[ $ok = 1 ] || fail "agents not visible through the collectors that do not hold them: $out"
echo "cluster-test: $out"

# A second start refuses and changes nothing.
if scripts/cluster.sh start > "$DIR/start2.out" 2>&1; then fail "a second start did not refuse"; fi
grep -q "already running" "$DIR/start2.out" || fail "second start: $(cat "$DIR/start2.out")"
[ "$(awk '{print $2}' "$DIR/cluster/pids" | tr '\n' ' ')" = "$PIDS_SEEN" ] || fail "a refused start changed the pids file"

scripts/cluster.sh status > "$DIR/status.out"
[ "$(grep -cE '^(collector|agent)-[0-9]+ +pid [0-9]+ +running ' "$DIR/status.out")" = 9 ] || fail "status: $(cat "$DIR/status.out")"
[ "$(grep -c '/healthz → 200' "$DIR/status.out")" = 3 ] || fail "status healthz: $(cat "$DIR/status.out")"
grep -q '^postgresql *running' "$DIR/status.out" || fail "status: PostgreSQL not running: $(cat "$DIR/status.out")"
PGPID=$(head -1 "$DIR/cluster/pg/data/postmaster.pid")

scripts/cluster.sh stop > "$DIR/stop.out" 2>&1 || fail "stop failed: $(cat "$DIR/stop.out")"
left=""
for p in $PIDS_SEEN $PGPID; do
    # An exited process is gone once its parent (init, for these) has reaped it: a moment.
    for _ in $(seq 50); do [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" = Z ] || break; sleep 0.1; done
    kill -0 "$p" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" != Z ] && left+=" $p ($(tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null))"
done
# Any process still using the cluster's directory (a postgres backend, a helper).
for p in /proc/[0-9]*; do
    c=$(tr '\0' ' ' 2>/dev/null < "$p/cmdline") || continue
    [[ $c == *"$DIR/cluster"* ]] && left+=" ${p#/proc/} ($c)"
done
[ -z "$left" ] || fail "processes left after stop:$left"
[ ! -f "$DIR/cluster/pids" ] || fail "stop left the pids file"
scripts/cluster.sh status > "$DIR/status2.out"
grep -q "not running" "$DIR/status2.out" || fail "status after stop: $(cat "$DIR/status2.out")"
echo "cluster-test: ok (start, every agent visible through another collector, second start refused, status, stop, nothing left)"

# Sourced by the scripts that start processes: stops them all, also when the
# script fails or is interrupted.

# vigil_stop_pids PID…: SIGCONT (a paused process cannot die), SIGTERM,
# up to 5 s for them to exit, then SIGKILL for any left; reaps them.
vigil_stop_pids() {
    local p alive
    for p in "$@"; do kill -CONT "$p" 2>/dev/null || true; kill -TERM "$p" 2>/dev/null || true; done
    for _ in $(seq 50); do
        alive=0
        for p in "$@"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ $alive = 0 ] && break
        sleep 0.1
    done
    for p in "$@"; do kill -KILL "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}

# vigil_workdir NAME (the script's name, e.g. load-postgresql.sh): DIR, a new temporary
# directory (/tmp/vigil-NAME.XXXXXX) that a private PostgreSQL's unprivileged user can reach
# (scripts/lib/postgres.sh, in DIR/pg), and PIDS, the processes to stop. On any exit the
# processes and that server are stopped and DIR is removed, or kept and its path printed
# with KEEP=1; an interrupt says so and exits 130. Also defines `fail MESSAGE` (NAME: MESSAGE
# on stderr, exit 1) and `say` (its arguments on stderr).
vigil_workdir() {
    VIGIL_SCRIPT=$1
    DIR=$(mktemp -d "/tmp/vigil-${1%.sh}.XXXXXX")
    chmod 0711 "$DIR"
    PIDS=()
    trap vigil_workdir_cleanup EXIT
    trap 'echo "$VIGIL_SCRIPT: interrupted" >&2; exit 130' INT TERM
    fail() { echo "$VIGIL_SCRIPT: $*" >&2; exit 1; }
    say() { echo "$*" >&2; }
}
vigil_workdir_cleanup() {
    local status=$?
    trap - EXIT INT TERM
    vigil_stop_pids "${PIDS[@]}"
    if [ -d "$DIR/pg" ]; then bash scripts/lib/postgres.sh stop "$DIR/pg" >/dev/null 2>&1 || true; fi
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $DIR" >&2; else rm -rf "$DIR"; fi
    exit "$status"
}

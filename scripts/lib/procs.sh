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

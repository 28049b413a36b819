#!/bin/sh
# shell-steps.sh — an example Vigil custom monitor (protocol version 1,
# docs/MONITORS.md). Each step runs a shell command taken from the
# monitor's `config`, keyed by the step's name:
#
#   {"id": "host-basics", "name": "Host basics", "kind": "exec",
#    "interval_secs": 60, "timeout_secs": 30,
#    "spec": {"command": "/usr/lib/vigil/monitors/shell-steps.sh",
#             "steps": [{"name": "disk", "timeout_secs": 5},
#                       {"name": "resolve", "timeout_secs": 5}],
#             "config": {"disk": "test $(df -P / | awk 'NR==2 {print $5+0}') -lt 90",
#                        "resolve": "getent hosts ${env:CHECK_HOST}"}}}
#
# A step is ok when its command exits 0 and an error otherwise; the
# command's output goes to stderr, which the agent logs. On SIGTERM the
# running command is stopped (SIGTERM) and waited for, then the monitor
# exits 143.
#
# Limits of this example, not of the protocol: config values must not
# contain double quotes or backslashes (it reads the one-line JSON with
# sed); a monitor in a language with a JSON parser has no such limit.
set -u
PROTOCOL=1

# Handshake: the agent names the highest version it speaks; answer ours.
IFS= read -r hello || exit 1
case "$hello" in
  "VIGIL-MONITOR "*) agent_version=${hello#VIGIL-MONITOR } ;;
  *) printf 'log unexpected handshake\n'; exit 1 ;;
esac
if ! [ "$agent_version" -ge "$PROTOCOL" ] 2>/dev/null; then
  printf 'log agent speaks version %s, this monitor needs %s\n' "$agent_version" "$PROTOCOL"
  exit 1
fi
printf 'VIGIL-MONITOR %s\n' "$PROTOCOL"

IFS= read -r line || exit 1
case "$line" in
  "config "*) config=${line#config } ;;
  *) printf 'log expected the config line\n'; exit 1 ;;
esac

child=
on_term() {
  if [ -n "$child" ]; then
    kill -TERM "$child" 2>/dev/null
    wait "$child"
  fi
  exit 143
}
trap on_term TERM

# command_for NAME: the config value for key NAME ("" when absent).
command_for() {
  key=$(printf '%s' "$1" | sed 's/[.]/[.]/g')
  printf '%s\n' "$config" | sed -n "s/.*\"$key\":\"\([^\"]*\)\".*/\1/p"
}

# now_ms: milliseconds from GNU date, empty where date lacks %N.
now_ms() {
  t=$(date +%s%3N 2>/dev/null)
  case "$t" in *[!0-9]*|'') ;; *) printf '%s' "$t" ;; esac
}

while IFS= read -r line; do
  case "$line" in
    "run step "*)
      step=${line#run step }
      cmd=$(command_for "$step")
      if [ -z "$cmd" ]; then
        printf 'error no command configured for step %s\n' "$step"
        continue
      fi
      t0=$(now_ms)
      # In the background, so the TERM trap runs at once (a trap waits for
      # a foreground command); stdin from /dev/null, output to the log.
      sh -c "$cmd" </dev/null >&2 &
      child=$!
      wait "$child"
      status=$?
      child=
      t1=$(now_ms)
      if [ -n "$t0" ] && [ -n "$t1" ]; then
        printf 'timing command %s\n' "$((t1 - t0))"
      fi
      if [ "$status" -eq 0 ]; then
        printf 'ok\n'
      else
        printf 'error command exited with status %s\n' "$status"
      fi
      ;;
    exit)
      exit 0
      ;;
    *)
      printf 'log ignoring an unknown request\n'
      ;;
  esac
done
exit 0

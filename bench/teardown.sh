#!/usr/bin/env bash
# Stop ONLY what the bench scripts started: every $RUN/*.pid whose process is still nginx,
# haproxy, ringlb (or a bench python3/wrk helper). SIGTERM, wait up to 5 s, then SIGKILL that
# pid. Never kills by name. ringlb's process-runtime replicas exit with it (their stdin closes).
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/lib.sh"
shopt -s nullglob
for pf in "$RUN"/*.pid; do
  pid=$(cat "$pf" 2>/dev/null || true)
  comm=$(cat "/proc/$pid/comm" 2>/dev/null || true)
  stop_pidfile "$pf"
  # A process that is not ours was left running (stop_pidfile said so); only report real stops.
  if [[ -n "$comm" ]] && ! running "$pid"; then blog "stopped $comm pid $pid ($(basename "$pf"))"; fi
done
exit 0

#!/usr/bin/env bash
# Restarts under load: N times, a new ringlb starts on the same data port (SO_REUSEPORT, its own
# control port), becomes ready, and the old one gets SIGTERM and drains, while wrk opens one
# connection per request as fast as it can (-c50, Connection: close). Prints wrk's totals and
# socket errors: a connection reset by a closing listener shows up as a read or write error.
#
#   bench/restarts.sh [N]           (after bench/setup.sh: uses its nginx backend; N = 30)
#
# Compare with net.ipv4.tcp_migrate_req at 0 and at 1 (docs/operations.md, "Signals, drain and
# restarts"), and HANDOVER=1, where every ringlb runs with --handover $RUN/handover.sock and so
# each new one takes the old one's listening sockets instead of binding its own.
# Env: RUN, PORT_BASE, BACKEND_BASE (lib.sh), RINGLB_BIN, HANDOVER. Data port PORT_BASE + 500,
# control ports PORT_BASE + 510 and + 511 in turn. Bounded: wrk runs N + 4 s; every ringlb it
# started is stopped on exit.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/lib.sh"
N="${1:-30}"
P=$((PORT_BASE + 500))
C0=$((PORT_BASE + 510))
C1=$((PORT_BASE + 511))
mkdir -p "$RUN/logs"
port_free "$P" && port_free "$C0" && port_free "$C1" || exit 1
PIDS=()
HANDOVER_FLAGS=()
[[ "${HANDOVER:-0}" == 1 ]] && HANDOVER_FLAGS=(--handover "$RUN/handover.sock")
trap 'for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT

start() { # start CONTROL_PORT: a ringlb on the data port; sets NEW to its pid once it is ready
  "$(ringlb_bin)" --runtime static \
    --backend "b1=127.0.0.1:$B1" --backend "b2=127.0.0.1:$B2" --backend "b3=127.0.0.1:$B3" \
    --listen "127.0.0.1:$P" --control "127.0.0.1:$1" --log warn --drain-timeout 2s \
    "${HANDOVER_FLAGS[@]}" \
    </dev/null >>"$RUN/logs/restarts.log" 2>&1 &
  NEW=$!
  PIDS+=("$NEW")
  for _ in $(seq 50); do
    curl -fsS -o /dev/null "http://127.0.0.1:$1/readyz" 2>/dev/null && return 0
    sleep 0.1
  done
  blog "ringlb on control port $1 not ready after 5 s"
  return 1
}

ctl=$C0
start "$ctl"
old=$NEW
dur=$((N + 4))
timeout $((dur + 15)) wrk -t1 -c50 -d"${dur}s" -H 'Connection: close' "http://127.0.0.1:$P/" \
  >"$RUN/restarts.wrk" 2>&1 &
wrk_pid=$!
sleep 1.5
for _ in $(seq "$N"); do
  ctl=$((ctl == C0 ? C1 : C0))
  start "$ctl"
  kill -TERM "$old"
  wait "$old" 2>/dev/null || true
  old=$NEW
  sleep 0.7
done
wait "$wrk_pid" || true
echo "migrate_req=$(cat /proc/sys/net/ipv4/tcp_migrate_req 2>/dev/null || echo '?') handover=${HANDOVER:-0} restarts=$N" \
  "$(grep -E 'requests in|Socket errors' "$RUN/restarts.wrk" | tr -s ' \n' ' ')"

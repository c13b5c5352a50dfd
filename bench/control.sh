#!/usr/bin/env bash
# Control-plane latency: how long `/add` of one process replica takes until it serves.
# Starts ringlb with the default process runtime (3 replicas, each a child process) on
# 127.0.0.1:PORT_BASE+104 (control +114), runs control.py (CTL_TRIALS=10 trials of /add then one
# request that the new replica owns), writes its JSON to $OUT (default stdout), stops ringlb
# (its replicas exit with it). Goal: ≤ 200 ms from /add to the first answer.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/lib.sh"
OUT="${OUT:-/dev/stdout}"
TRIALS="${CTL_TRIALS:-10}"
name=ringlb-ctl
mkdir -p "$RUN/logs"
if alive "$RUN/$name.pid"; then stop_pidfile "$RUN/$name.pid"; fi
port_free "$P_CTL"
port_free $((P_CTL + C_OFF))
PIN=()
[[ -n "${SERVER_CPUS:-}" ]] && PIN=(taskset -c "$SERVER_CPUS")
"${PIN[@]}" "$(ringlb_bin)" --listen "127.0.0.1:$P_CTL" --control "127.0.0.1:$((P_CTL + C_OFF))" \
  --log warn --drain-timeout 1s </dev/null >"$RUN/logs/$name.log" 2>&1 &
echo $! >"$RUN/$name.pid"
trap 'stop_pidfile "$RUN/$name.pid"' EXIT
wait_port "$P_CTL" 100
blog "$name started (pid $(cat "$RUN/$name.pid")); $TRIALS trials of /add"
res=$(timeout 300 python3 "$HERE/control.py" "$P_CTL" $((P_CTL + C_OFF)) "$TRIALS" Sx)
echo "$res" >"$OUT"
blog "$(echo "$res" | python3 -c 'import json,sys; d=json.load(sys.stdin); print("median /add %.1f ms, /add + first request %.1f ms, first request served by the new replica in %d/%d" % (d["add_ms_median"], d["first_request_ms_median"], d["first_request_by_new"], d["trials"]))')"

#!/usr/bin/env bash
# User-space memory (RSS) of ringlb per open connection, in two states, each with a fresh ringlb
# (static runtime, in front of the nginx backend of setup.sh, which must be running):
#   spliced: MEM_CONNS connections that each sent one request, got the answer and stay open
#            (idle keep-alive, spliced to the backend);
#   waiting: MEM_CONNS connections that sent nothing (waiting for their request line).
# RSS is read from /proc/<pid>/status (VmRSS) after a warm-up, with all connections open, and
# again after they closed. Writes a JSON object per state to $OUT (default stdout).
#
# Env: MEM_CONNS=5000, OUT, RUN/PORT_BASE/BACKEND_BASE (lib.sh). The open-file hard limit caps what
# fits: ringlb raises its soft limit to the hard one and derives its connection cap from it (a
# spliced connection holds several descriptors); past the cap a client gets a 503 and is not
# counted. Waiting connections hold one descriptor each, so that run lifts the cap to MEM_CONNS.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/lib.sh"
N="${MEM_CONNS:-5000}"
OUT="${OUT:-/dev/stdout}"
listening "$B1" || { blog "no backend on $B1: run bench/setup.sh first"; exit 1; }

rss_settled() { # rss_settled PID: VmRSS (KiB) once two reads 300 ms apart agree within 1 %
  local a b
  a=$(rss_kib "$1")
  for _ in $(seq 20); do
    sleep 0.3
    b=$(rss_kib "$1")
    if ((b - a < a / 100 && a - b < a / 100)); then break; fi
    a=$b
  done
  echo "$b"
}

results=()
for state in spliced waiting; do
  name=ringlb-mem
  cap=()
  [[ $state == waiting ]] && cap=(--max-conns $((N + 100)))
  start_ringlb "$name" "$P_MEM" --request-timeout 300s --idle-timeout 300s "${cap[@]}"
  pid=$(cat "$RUN/$name.pid")
  # Warm-up: let every worker thread, the allocator and the metrics registry reach steady state.
  wrk -t1 -c50 -d1s "http://127.0.0.1:$P_MEM/" >/dev/null 2>&1 || true
  wrk -t1 -c50 -d1s -H 'Connection: close' "http://127.0.0.1:$P_MEM/" >/dev/null 2>&1 || true
  sleep 1
  rss0=$(rss_settled "$pid")
  mode=request
  [[ $state == waiting ]] && mode=silent
  coproc CONNS { exec python3 "$HERE/conns.py" "$P_MEM" "$N" "$mode" 240; }
  echo "$CONNS_PID" >"$RUN/conns.pid"
  read -r -t 180 word open _of _n <&"${CONNS[0]}" || { blog "conns.py did not get ready"; exit 1; }
  [[ "$word" == READY ]] || { blog "conns.py said: $word"; exit 1; }
  rss1=$(rss_settled "$pid")
  fds=$(ls "/proc/$pid/fd" | wc -l)
  threads=$(awk '/^Threads:/{print $2}' "/proc/$pid/status")
  exec {CONNS[1]}>&-
  read -r -t 30 _closed <&"${CONNS[0]}" || true
  wait "$CONNS_PID" 2>/dev/null || true
  rm -f "$RUN/conns.pid"
  sleep 1
  rss2=$(rss_settled "$pid")
  per=$(((rss1 - rss0) * 1024 / (open > 0 ? open : 1)))
  blog "$state: $open of $N open; RSS $rss0 -> $rss1 KiB (after close $rss2); $per bytes per connection; $fds fds"
  results+=("{\"state\":\"$state\",\"asked\":$N,\"open\":$open,\"rss_before_kib\":$rss0,\"rss_open_kib\":$rss1,\"rss_after_close_kib\":$rss2,\"bytes_per_conn\":$per,\"fds_open\":$fds,\"threads\":$threads}")
  stop_pidfile "$RUN/$name.pid"
done
nofile=$(ulimit -Hn)
{
  echo "{\"nofile_hard\":$nofile,\"when\":\"$(date -u +%Y-%m-%dT%H:%MZ)\",\"states\":["
  (IFS=,; echo "${results[*]}")
  echo "]}"
} >"$OUT"

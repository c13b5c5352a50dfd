#!/usr/bin/env bash
# Loopback TCP segments per request: for each target, a bounded wrk run (DUR=3 s, -c50, the
# close workload by default) between two readings of the kernel's TcpOutSegs counter (nstat).
# Every hop is counted (wrk ↔ proxy ↔ backend), so "direct" gives the floor without a proxy.
# Loopback carries other traffic too (health checks, anything else running): compare targets
# measured in the same call, and run it on an otherwise quiet machine.
#
#   bench/segments.sh direct ringlb ringlb-auto hap1-tcp     (after bench/setup.sh)
#
# Env: MODE=close|ka (close), DUR=3, RUN (lib.sh), REPS=2. Prints "target<TAB>segments/request"
# per run.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/lib.sh"
(($#)) || { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2; }
command -v nstat >/dev/null || { echo "segments.sh: nstat not installed (apt-get install iproute2)" >&2; exit 1; }
MODE="${MODE:-close}" DUR="${DUR:-3}" REPS="${REPS:-2}"
EXTRA=()
[[ "$MODE" == close ]] && EXTRA=(-H 'Connection: close')
segs() { nstat -az TcpOutSegs | awk '$1 == "TcpOutSegs" {print $2}'; }
for _ in $(seq "$REPS"); do
  for t in "$@"; do
    port=$(awk -F'\t' -v t="$t" '$1 == t {print $2}' "$RUN/targets.tsv")
    [[ -n "$port" ]] || { echo "segments.sh: unknown target '$t' (see $RUN/targets.tsv)" >&2; exit 2; }
    before=$(segs)
    reqs=$(timeout $((DUR + 10)) wrk -t1 -c50 -d"${DUR}s" "${EXTRA[@]}" "http://127.0.0.1:$port/" |
      awk '/requests in/ {print $1}')
    after=$(segs)
    awk -v t="$t" -v s=$((after - before)) -v r="$reqs" 'BEGIN {printf "%s\t%.2f\n", t, s / r}'
  done
done

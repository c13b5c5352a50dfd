#!/usr/bin/env bash
# Per-thread CPU and context switches of one running target during one bounded wrk run, and the
# machine's idle share over it:
#
#   bench/threads.sh <target> [ka|close|bulk]     e.g. bench/threads.sh hapD-tcpforce ka
#
# Target names and pid files come from $RUN/targets.tsv (bench/setup.sh). For each thread of the
# target's process that used CPU: seconds of CPU, and voluntary / involuntary context switches
# per request, or per MiB for bulk (/proc/PID/task/TID/stat and status); the same for the nginx
# backend's worker processes (lines starting "backend"). Idle: the idle + iowait
# ticks of /proc/stat over the run, as a share of all CPUs × the run's length; wrk's latency
# percentiles (p50 to p99.9 and the longest). Env: DUR=5,
# CONNS=50 (bulk: 4).
#
# SCHED=1 also records the scheduler over the run (`perf sched record -a`, Debian's linux-perf)
# and adds, per thread, how often it slept and was preempted, its median sleep, and its median
# wake-up delay (from being woken to running: time spent waiting for a CPU) and which tasks woke
# it, for the target's threads and the three busiest other task names (bench/wakeups.py).
# POLICY=batch runs the target's threads as SCHED_BATCH for the run (the scheduler then never lets
# a wake-up of theirs preempt the running task) and puts SCHED_OTHER back afterwards.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/lib.sh"
USAGE="usage: threads.sh <target> [ka|close|bulk]"
TARGET="${1:?$USAGE}"
MODE="${2:-ka}"
DUR="${DUR:-5}"
C="${CONNS:-50}"
URL_PATH=/; UNIT=request
case "$MODE" in
  ka) EXTRA=() ;;
  close) EXTRA=(-H 'Connection: close') ;;
  bulk) EXTRA=(); C="${CONNS:-4}"; URL_PATH=/big; UNIT=MiB ;;
  *) echo "$USAGE" >&2; exit 2 ;;
esac

PORT=""; PF=""
while IFS=$'\t' read -r n p pf _d; do
  [[ -z "$n" || "$n" == \#* ]] && continue
  if [[ "$n" == "$TARGET" ]]; then PORT="$p"; PF="${pf%%,*}"; fi
done <"$RUN/targets.tsv"
[[ -n "$PORT" ]] || { echo "threads.sh: unknown target '$TARGET' (see $RUN/targets.tsv)" >&2; exit 2; }
PID=$(cat "$RUN/$PF")

# The nginx backend's worker processes: how often the target makes them sleep counts too.
BACKEND=$(pgrep -P "$(cat "$RUN/backend.pid" 2>/dev/null || echo 0)" 2>/dev/null | paste -sd' ' || true)

snap() { # snap PID...: one line per thread: name tid ticks voluntary involuntary
  local p t s f
  for p in "$@"; do for t in /proc/"$p"/task/*; do
    s=$(cat "$t/stat" 2>/dev/null) || continue
    read -ra f <<<"${s##*) }"
    echo "$(cat "$t/comm") ${t##*/} $((f[11] + f[12])) $(awk '/^voluntary_ctxt_switches/ { v = $2 }
      /^nonvoluntary_ctxt_switches/ { n = $2 } END { print v, n }' "$t/status")"
  done; done
}
idle() { awk 'NR == 1 { print $5 + $6 }' /proc/stat; }

policy() { # policy -b|-o: every thread of the target
  local t
  for t in /proc/"$PID"/task/*; do chrt "$1" -p 0 "${t##*/}" >/dev/null; done
}
case "${POLICY:-}" in
  "" | batch) ;;
  *) echo "threads.sh: POLICY is batch or unset" >&2; exit 2 ;;
esac
REC=()
if [[ "${SCHED:-}" == 1 ]]; then
  command -v perf >/dev/null || { echo "threads.sh: SCHED=1 needs perf (apt-get install linux-perf)" >&2; exit 2; }
fi
B=$(mktemp); A=$(mktemp); BB=$(mktemp); BA=$(mktemp); D=$(mktemp -d)
trap 'rm -rf "$B" "$A" "$BB" "$BA" "$D"; [[ -z "${POLICY:-}" ]] || policy -o 2>/dev/null || true' EXIT
[[ -z "${POLICY:-}" ]] || policy -b
[[ "${SCHED:-}" == 1 ]] && REC=(perf sched record -k mono -a -q -o "$D/sched.data" --)
snap "$PID" >"$B"; snap $BACKEND >"$BB"; i0=$(idle); t0=$(date +%s.%N)
OUT=$("${REC[@]}" wrk -t1 -c"$C" -d"${DUR}s" -s "$HERE/conf/report.lua" "${EXTRA[@]}" \
  "http://127.0.0.1:$PORT$URL_PATH")
snap "$PID" >"$A"; snap $BACKEND >"$BA"; i1=$(idle); t1=$(date +%s.%N)
if [[ "$MODE" == bulk ]]; then # wrk's "…, 7.52GB read" counts in units of 1024
  REQ=$(awk '/requests in/ { v = $(NF - 1); u = v; sub(/[0-9.]+/, "", u); sub(/[A-Z]+$/, "", v)
    f = (u == "GB") ? 1024 : (u == "MB") ? 1 : (u == "KB") ? 1 / 1024 : 1 / 1048576
    printf "%.0f", v * f }' <<<"$OUT")
else
  REQ=$(awk '/requests in/ { print $1 }' <<<"$OUT")
fi
HZ=$(getconf CLK_TCK)
echo "$TARGET $MODE: $REQ ${UNIT}s in ${DUR} s; idle $(awk -v i="$((i1 - i0))" -v hz="$HZ" \
  -v n="$(nproc)" -v t="$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" \
  'BEGIN { printf "%.1f %%", 100 * i / hz / n / t }')"
awk '/^RESULT/ { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] / 1000 }
  printf "  latency (wrk) p50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f ms\n",
    v["lat_p50_us"], v["lat_p90_us"], v["lat_p99_us"], v["lat_p999_us"], v["lat_max_us"] }' <<<"$OUT"
join -1 2 -2 2 <(sort -k2,2 "$B") <(sort -k2,2 "$A") |
  awk -v r="$REQ" -v hz="$HZ" -v unit="$UNIT" '$7 - $3 > 0 {
    printf "  %-18s tid %-7s cpu %5.2f s  voluntary %.4f  involuntary %.4f per %s\n",
      $2, $1, ($7 - $3) / hz, ($8 - $4) / r, ($9 - $5) / r, unit }'
join -1 2 -2 2 <(sort -k2,2 "$BB") <(sort -k2,2 "$BA") |
  awk -v r="$REQ" -v hz="$HZ" -v unit="$UNIT" '$7 - $3 > 0 {
    printf "  backend %-10s tid %-7s cpu %5.2f s  voluntary %.4f  involuntary %.4f per %s\n",
      $2, $1, ($7 - $3) / hz, ($8 - $4) / r, ($9 - $5) / r, unit }'
if [[ "${SCHED:-}" == 1 ]]; then
  TIDS=$(cd /proc/"$PID"/task && ls | paste -sd,)
  echo "scheduler (perf sched record${POLICY:+, target as SCHED_${POLICY^^}}):"
  perf script -i "$D/sched.data" -s "$HERE/wakeups.py" "$REQ" "$UNIT" "$TIDS"
fi

#!/usr/bin/env bash
# One bounded wrk measurement of one target; prints one TSV line.
#
#   bench/measure.sh <target|port> <workload>
#   bench/measure.sh --header             print the TSV header
#
# Workloads:
#   ka        GET /  (30-byte body), keep-alive,                          -c ${CONNS:-50}
#   close     GET /  with 'Connection: close' (a TCP connection per request), -c ${CONNS:-50}
#   bulk      GET /big (64 MiB file), keep-alive,                         -c ${CONNS:-4}
#   rid       GET /?rid=<distinct 6-digit id per request>, keep-alive,    -c ${CONNS:-50}
#   rid-close the same with 'Connection: close', so every request is routed on its own
#
# Targets and their pid files come from $RUN/targets.tsv (written by setup.sh).
# Env: DUR=10 (seconds), CONNS, WRK_THREADS=1, CLIENT_CPUS (taskset -c for wrk), RUN,
#      RAWDIR (keep raw wrk output there), LABEL (first column).
# CPU columns (seconds, from /proc during the run): proxy = the target's pid file processes and
# their children; backend = the nginx backend; wrk = wrk itself; foreign = all busy CPU of the
# machine minus those three (other tenants); steal and softirq as the kernel counts them.
# ct_count = connection-tracking entries at the start, ct_drops = packets the kernel's connection
# tracking dropped during the run (a full table: SYNs are lost and retried after 1 s).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/lib.sh"
HDR="label\ttarget\tport\tmode\tconns\tdur_s\treq_s\tGB_s\tp50_ms\tp90_ms\tp99_ms\tmax_ms\terrors\tproxy_cpu_s\tbackend_cpu_s\twrk_cpu_s\tforeign_cpu_s\tsteal_s\tsoftirq_s\tproxy_us_per_req\tct_count\tct_drops"
if [[ "${1:-}" == "--header" ]]; then
  echo -e "$HDR"
  exit 0
fi
USAGE="usage: measure.sh <target|port> <ka|close|bulk|rid|rid-close>"
TARGET="${1:?$USAGE}"
MODE="${2:?$USAGE}"
DUR="${DUR:-10}"
WT="${WRK_THREADS:-1}"

NAME=""; PORT=""; PFILES=""
while IFS=$'\t' read -r n p pf _d; do
  [[ -z "$n" || "$n" == \#* ]] && continue
  if [[ "$n" == "$TARGET" || "$p" == "$TARGET" ]]; then NAME="$n"; PORT="$p"; PFILES="$pf"; fi
done <"$RUN/targets.tsv"
if [[ -z "$PORT" ]]; then echo "measure.sh: unknown target '$TARGET' (see $RUN/targets.tsv)" >&2; exit 2; fi

SCRIPT="$HERE/conf/report.lua"
case "$MODE" in
  ka) C="${CONNS:-50}"; URL="http://127.0.0.1:$PORT/"; EXTRA=() ;;
  close) C="${CONNS:-50}"; URL="http://127.0.0.1:$PORT/"; EXTRA=(-H 'Connection: close') ;;
  bulk) C="${CONNS:-4}"; URL="http://127.0.0.1:$PORT/big"; EXTRA=() ;;
  rid | rid-close)
    C="${CONNS:-50}"; URL="http://127.0.0.1:$PORT/"; EXTRA=()
    [[ "$MODE" == rid-close ]] && EXTRA=(-H 'Connection: close')
    SCRIPT="$RUN/rid-report.lua"
    cat "$HERE/conf/rid.lua" "$HERE/conf/report.lua" >"$SCRIPT"
    ;;
  *) echo "$USAGE" >&2; exit 2 ;;
esac
PIN=()
if [[ -n "${CLIENT_CPUS:-}" ]]; then PIN=(taskset -c "$CLIENT_CPUS"); fi

pids_of() { # pids_of "a.pid,b.pid": listed pids + their direct children
  local f pid
  IFS=',' read -ra fs <<<"$1"
  for f in "${fs[@]}"; do
    [[ -n "$f" && -f "$RUN/$f" ]] || continue
    pid=$(cat "$RUN/$f")
    echo "$pid"
    ps -o pid= --ppid "$pid" 2>/dev/null || true
  done | sort -u
}
ticks() { # ticks PID... -> utime+stime clock ticks summed (all threads of each process)
  local t=0 pid rest
  for pid in "$@"; do
    rest=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
    rest="${rest##*) }"
    read -ra f <<<"$rest"
    t=$((t + f[11] + f[12]))
  done
  echo "$t"
}
sysstat() { # busy=user+nice+system+irq+softirq, steal, softirq (ticks)
  local a
  read -ra a < <(head -1 /proc/stat)
  echo "$((a[1] + a[2] + a[3] + a[6] + a[7])) ${a[8]} ${a[7]}"
}
HZ=$(getconf CLK_TCK)
ct_count() { cat /proc/sys/net/netfilter/nf_conntrack_count 2>/dev/null || echo 0; }
ct_drops() { # drop + early_drop + insert_failed, all CPUs
  [[ -r /proc/net/stat/nf_conntrack ]] || { echo 0; return; }
  local hdr line t=0 i
  { read -ra hdr; while read -ra line; do
      for i in "${!hdr[@]}"; do
        case "${hdr[$i]}" in drop | early_drop | insert_failed) t=$((t + 16#${line[$i]})) ;; esac
      done
    done; } </proc/net/stat/nf_conntrack
  echo "$t"
}

BE_PIDS=($(pids_of backend.pid))
if [[ "$PFILES" == "backend.pid" || -z "$PFILES" ]]; then PX_PIDS=(); else PX_PIDS=($(pids_of "$PFILES")); fi

ctc=$(ct_count); ctd0=$(ct_drops)
px0=$(ticks "${PX_PIDS[@]}"); be0=$(ticks "${BE_PIDS[@]}"); read -r s0 st0 si0 < <(sysstat)
OUTF=$(mktemp)
# wrk's CPU: the change in this shell's children's user+system time (the `times` builtin; it
# must run in this shell, not in a pipe or $(…) subshell).
children_cpu() {
  times >"$OUTF.t"
  awk 'NR == 2 { s = 0; for (i = 1; i <= NF; i++) { split($i, b, "m"); sub("s", "", b[2]); s += b[1] * 60 + b[2] }
                 print s }' "$OUTF.t"
}
children_cpu >"$OUTF.c0"
"${PIN[@]}" wrk -t"$WT" -c"$C" -d"${DUR}s" --timeout 10s --latency \
  -s "$SCRIPT" "${EXTRA[@]}" "$URL" >"$OUTF" 2>&1 || true
children_cpu >"$OUTF.c1"
px1=$(ticks "${PX_PIDS[@]}"); be1=$(ticks "${BE_PIDS[@]}"); read -r s1 st1 si1 < <(sysstat)
ctd1=$(ct_drops)
if [[ -n "${RAWDIR:-}" ]]; then
  mkdir -p "$RAWDIR"
  cp "$OUTF" "$RAWDIR/$(echo "${LABEL:-x}" | tr / _)_${NAME}_${MODE}.txt"
fi
RES=$(grep '^RESULT' "$OUTF" || true)
WCPU=$(awk -v a="$(cat "$OUTF.c0")" -v b="$(cat "$OUTF.c1")" 'BEGIN { printf "%.2f", b - a }')
rm -f "$OUTF" "$OUTF.t" "$OUTF.c0" "$OUTF.c1"
if [[ -z "$RES" ]]; then echo "measure.sh: wrk produced no RESULT for $NAME $MODE" >&2; exit 1; fi
declare -A R
for kv in ${RES#RESULT }; do R[${kv%%=*}]=${kv#*=}; done
awk -v label="${LABEL:--}" -v name="$NAME" -v port="$PORT" -v mode="$MODE" -v c="$C" \
  -v req="${R[requests]}" -v bytes="${R[bytes]}" -v dus="${R[duration_us]}" \
  -v p50="${R[lat_p50_us]}" -v p90="${R[lat_p90_us]}" -v p99="${R[lat_p99_us]}" -v mx="${R[lat_max_us]}" \
  -v errs="$((R[err_connect] + R[err_read] + R[err_write] + R[err_status] + R[err_timeout]))" \
  -v pxt="$((px1 - px0))" -v bet="$((be1 - be0))" -v wcpu="${WCPU:-0}" -v syst="$((s1 - s0))" \
  -v stl="$((st1 - st0))" -v sirq="$((si1 - si0))" -v hz="$HZ" -v haspx="${#PX_PIDS[@]}" \
  -v ctc="$ctc" -v ctd="$((ctd1 - ctd0))" 'BEGIN {
  d = dus / 1e6; px = pxt / hz; be = bet / hz
  foreign = syst / hz - px - be - wcpu
  printf "%s\t%s\t%s\t%s\t%s\t%.1f\t%.0f\t%.3f\t%.3f\t%.3f\t%.3f\t%.1f\t%s\t%s\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%s\t%d\t%d\n",
    label, name, port, mode, c, d, req / d, bytes / d / 1e9, p50 / 1e3, p90 / 1e3, p99 / 1e3, mx / 1e3, errs,
    (haspx > 0 ? sprintf("%.2f", px) : "-"), be, wcpu, foreign, stl / hz, sirq / hz,
    (haspx > 0 && req > 0 ? sprintf("%.1f", px * 1e6 / req) : "-"), ctc, ctd
}'

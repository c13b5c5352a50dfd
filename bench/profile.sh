#!/usr/bin/env bash
# Where a proxy's time goes, per request: for each PROFILE_TARGETS × PROFILE_MODES it runs a short
# wrk (DUR_PROFILE=5 s) twice against the already running target (bench/setup.sh):
#   1. under `strace -c -f -p <pid>`: system calls per request (strace slows the proxy a lot, so
#      the request rate of that run means nothing; the calls per request do);
#   2. under `perf record -e cpu-clock -p <pid>` (when perf works): the hottest functions, user
#      and kernel, as a share of the proxy's CPU samples; and `perf stat` of the same run: task
#      clock, context switches and CPU migrations (software events; no hardware counters needed).
# Raw output lands in $PROFILE_DIR (default $RUN/profile); profile.py turns it into markdown.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/lib.sh"
DIR="${PROFILE_DIR:-$RUN/profile}"
# hapD-tcpforce is the like-for-like peer of ringlb's default: two threads, every byte spliced.
TARGETS="${PROFILE_TARGETS:-ringlb ringlb-w1 ringlb-auto hap1-tcpsplice hap1-tcpforce hapD-tcpforce}"
# (targets that are not running are left out)
declare -A PORT_OF
while IFS=$'\t' read -r n p _rest; do [[ -z "$n" || "$n" == \#* ]] || PORT_OF[$n]=$p; done <"$RUN/targets.tsv"
t2=""
for t in $TARGETS; do if [[ -n "${PORT_OF[$t]:-}" ]] && listening "${PORT_OF[$t]}"; then t2="$t2 $t"; fi; done
TARGETS="$t2"
MODES="${PROFILE_MODES:-ka close bulk}"
DUR="${DUR_PROFILE:-5}"
rm -rf "$DIR"
mkdir -p "$DIR"
command -v strace >/dev/null || { blog "strace not installed: apt-get install strace"; exit 1; }
have_perf=0
if command -v perf >/dev/null && perf record -q -e cpu-clock -o "$DIR/probe.data" -- true 2>/dev/null; then have_perf=1; fi
rm -f "$DIR/probe.data"

ctxsw() { # ctxsw PID -> "voluntary involuntary" context switches, summed over its threads
  cat /proc/"$1"/task/*/status 2>/dev/null |
    awk '/^voluntary_ctxt_switches/ {v += $2} /^nonvoluntary_ctxt_switches/ {n += $2} END {print v + 0, n + 0}'
}

for t in $TARGETS; do
  pf=$(awk -F'\t' -v t="$t" '$1 == t {print $3}' "$RUN/targets.tsv")
  pid=$(cat "$RUN/${pf%%,*}")
  for m in $MODES; do
    tag="${t}_${m}"
    # 1. system calls
    timeout $((DUR + 30)) strace -c -f -q -p "$pid" -o "$DIR/$tag.strace" &
    spid=$!
    echo "$spid" >"$RUN/strace.pid"
    sleep 1
    DUR=$DUR LABEL=strace "$HERE/measure.sh" "$t" "$m" >"$DIR/$tag.strace.tsv" || true
    kill -INT "$spid" 2>/dev/null || true
    wait "$spid" 2>/dev/null || true
    rm -f "$RUN/strace.pid"
    # 2. CPU samples
    if ((have_perf)); then
      timeout $((DUR + 30)) perf record -q -e cpu-clock -F 1999 -p "$pid" -o "$DIR/$tag.perf.data" -- sleep $((DUR + 1)) 2>/dev/null &
      ppid=$!
      timeout $((DUR + 30)) perf stat -x, -e task-clock,context-switches,cpu-migrations -p "$pid" \
        -o "$DIR/$tag.perf-stat.csv" -- sleep $((DUR + 1)) 2>/dev/null &
      qpid=$!
      ctx0=$(ctxsw "$pid")
      DUR=$DUR LABEL=perf "$HERE/measure.sh" "$t" "$m" >"$DIR/$tag.perf.tsv" || true
      echo "$ctx0 $(ctxsw "$pid")" >"$DIR/$tag.ctxsw"
      wait "$ppid" 2>/dev/null || true
      wait "$qpid" 2>/dev/null || true
      perf report -q -i "$DIR/$tag.perf.data" --stdio --no-children --sort dso,sym --percent-limit 0.7 \
        2>/dev/null | sed '/^$/d' | head -40 >"$DIR/$tag.perf.txt" || true
      perf report -q -i "$DIR/$tag.perf.data" --stdio --no-children --sort dso \
        2>/dev/null | sed '/^$/d' | head -10 >"$DIR/$tag.perf-dso.txt" || true
      rm -f "$DIR/$tag.perf.data"
    fi
    blog "$tag profiled"
  done
done

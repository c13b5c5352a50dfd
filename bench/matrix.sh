#!/usr/bin/env bash
# Repeat bench/measure.sh over workloads × targets × REPS and append TSV lines to $OUT.
# Repetitions are interleaved (rep → workload → target) so drift hits every target alike, and
# each repetition rotates the order of the targets.
# Before each run it waits (at most QUIET_WAIT s) for the machine to be idle; a run during which
# other tenants burned more than FOREIGN_MAX CPU seconds, or the hypervisor took more than
# STEAL_MAX CPU seconds from this machine (steal time: the vCPUs were ready to run and did not),
# is retried up to RETRIES times. All attempts are kept in $OUT; summarize.py keeps the least
# disturbed one per (target, workload, rep).
#
# Connection tracking: every TCP connection on loopback takes an entry in the kernel's conntrack
# table for 120 s after it closes (nf_conntrack_tcp_timeout_time_wait); the one-connection-per-
# request workloads make 10-40 thousand a second. When the table is full the kernel drops SYNs
# (retried after 1 s). So before a close/rid-close run the script waits (at most CONNTRACK_WAIT
# s) until the table is at most half full (before other runs: until it has room), runs those
# workloads for CLOSE_DUR s, and retries a run that saw conntrack drops, like a disturbed one.
#
#   MODES="ka close bulk rid rid-close" TARGETS="direct ringlb hap1-tcp …" \
#   RID_TARGETS="direct ringlb hap1-http" REPS=3 DUR=10 OUT=x.tsv bench/matrix.sh
#
# TARGETS serve ka/close/bulk; RID_TARGETS serve rid/rid-close. Names from $RUN/targets.tsv.
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/lib.sh"
REPS="${REPS:-3}"
DUR="${DUR:-10}"
MODES="${MODES:-ka close bulk rid rid-close}"
TARGETS="${TARGETS:-direct ringlb ringlb-w1 ringlb-auto ringlb-busy ringlb-pin hap1-tcp hap1-tcpsplice hap1-tcpforce hap1-http ngx1-stream hapD-tcpsplice hapD-tcpforce ngxD-stream}"
RID_TARGETS="${RID_TARGETS:-direct ringlb ringlb-auto hap1-http ngx1-http}"
# Leave out targets that setup.sh did not start (e.g. ringlb-auto with a binary without --splice).
declare -A PORT_OF
while IFS=$'\t' read -r n p _rest; do
  [[ -z "$n" || "$n" == \#* ]] && continue
  PORT_OF[$n]=$p
done <"$RUN/targets.tsv"
present() {
  local t out=""
  for t in $1; do
    if [[ -n "${PORT_OF[$t]:-}" ]] && listening "${PORT_OF[$t]}"; then out="$out $t"; else blog "no $t running: left out"; fi
  done
  echo "${out# }"
}
TARGETS=$(present "$TARGETS")
RID_TARGETS=$(present "$RID_TARGETS")
RETRIES="${RETRIES:-1}"
FOREIGN_MAX="${FOREIGN_MAX:-1.0}"
STEAL_MAX="${STEAL_MAX:-1.0}"
QUIET_PCT="${QUIET_PCT:-10}"
QUIET_WAIT="${QUIET_WAIT:-30}"
CLOSE_DUR="${CLOSE_DUR:-$(( DUR > 5 ? 5 : DUR ))}"
CONNTRACK_WAIT="${CONNTRACK_WAIT:-60}"
OUT="${OUT:?set OUT to the TSV file to append to}"
HZ=$(getconf CLK_TCK)
mkdir -p "$(dirname "$OUT")"
[[ -s "$OUT" ]] || "$HERE/measure.sh" --header >"$OUT"

# Wait (at most QUIET_WAIT s) until the whole machine has been below QUIET_PCT % of one core
# busy for 2 consecutive seconds (our servers idle between runs, so busy time is someone else's).
wait_quiet() {
  ((QUIET_WAIT > 0)) || return 0
  local waited=0 ok=0 a b busy
  while ((waited < QUIET_WAIT)); do
    read -ra a < <(head -1 /proc/stat)
    sleep 1
    read -ra b < <(head -1 /proc/stat)
    busy=$(((b[1] + b[2] + b[3] + b[6] + b[7]) - (a[1] + a[2] + a[3] + a[6] + a[7])))
    if ((busy * 100 < QUIET_PCT * HZ)); then
      ok=$((ok + 1))
      ((ok >= 2)) && return 0
    else
      ok=0
    fi
    waited=$((waited + 1))
  done
  blog "machine still busy after ${QUIET_WAIT}s; running anyway"
}

# wait_conntrack NEED: wait (at most CONNTRACK_WAIT s) until the conntrack table has room for NEED
# more entries (a full table drops SYNs, and even a keep-alive run opens its connections).
wait_conntrack() {
  local f=/proc/sys/net/netfilter/nf_conntrack_count m=/proc/sys/net/netfilter/nf_conntrack_max
  [[ -r $f && -r $m ]] || return 0
  local waited=0 max need="$1"
  max=$(cat "$m")
  ((need > max / 2)) && need=$((max / 2))
  while (($(cat "$f") + need > max)); do
    if ((waited >= CONNTRACK_WAIT)); then
      blog "conntrack table still $(cat "$f")/$max after ${CONNTRACK_WAIT}s; running anyway"
      return 0
    fi
    ((waited % 30 == 0)) && blog "waiting for conntrack entries to expire: $(cat "$f")/$max"
    sleep 5
    waited=$((waited + 5))
  done
}

total=0
for mode in $MODES; do
  case "$mode" in rid | rid-close) set -- $RID_TARGETS ;; *) set -- $TARGETS ;; esac
  total=$((total + $#))
done
total=$((total * REPS))
blog "reps=$REPS dur=${DUR}s (close: ${CLOSE_DUR}s) workloads='$MODES' runs=$total (>= $((total * DUR / 60)) min) -> $OUT"
i=0
for rep in $(seq "$REPS"); do
  for mode in $MODES; do
    case "$mode" in rid | rid-close) ts="$RID_TARGETS" ;; *) ts="$TARGETS" ;; esac
    # Each repetition starts one target further on, so no target always runs first or right
    # after the same neighbour.
    read -ra arr <<<"$ts"
    k=$(((rep - 1) % ${#arr[@]}))
    ts="${arr[*]:k} ${arr[*]:0:k}"
    for t in $ts; do
      i=$((i + 1))
      d=$DUR
      case "$mode" in close | rid-close) d=$CLOSE_DUR ;; esac
      for a in $(seq 0 "$RETRIES"); do
        case "$mode" in close | rid-close) wait_conntrack 131072 ;; *) wait_conntrack 5000 ;; esac
        wait_quiet
        line=$(LABEL="r$rep/a$a" DUR="$d" "$HERE/measure.sh" "$t" "$mode") || {
          blog "FAILED $t $mode"
          break
        }
        echo "$line" >>"$OUT"
        echo "[$i/$total] $(echo "$line" | cut -f1,2,4,7,8,9,11,13,14,17,22 | tr '\t' ' ')" >&2
        foreign=$(echo "$line" | cut -f17)
        steal=$(echo "$line" | cut -f18)
        drops=$(echo "$line" | cut -f22)
        if awk -v f="$foreign" -v m="$FOREIGN_MAX" 'BEGIN{exit !(f > m)}'; then
          blog "disturbed (foreign CPU ${foreign}s > ${FOREIGN_MAX}s); again"
        elif awk -v s="$steal" -v m="$STEAL_MAX" 'BEGIN{exit !(s > m)}'; then
          blog "disturbed (steal ${steal}s > ${STEAL_MAX}s); again"
        elif ((${drops:-0} > 0)); then
          blog "disturbed ($drops packets dropped by a full conntrack table); again"
        else
          break
        fi
      done
    done
  done
done
blog "done -> $OUT"

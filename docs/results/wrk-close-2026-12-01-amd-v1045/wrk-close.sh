#!/usr/bin/env bash
# wrk's own CPU, context switches and (with EVENTS=tp) system calls on the close workload, under
# `perf stat`, behind each target of a running bench/setup.sh, interleaved.
#   usage: EVENTS=tp|sw ROUNDS=N PREFIX=name wrk-close.sh NAME:PORT...
# Writes PREFIX-NAME-ROUND.csv (perf stat -x,) and PREFIX-NAME-ROUND.txt (wrk's output) in the
# current directory and prints "ROUND NAME requests=N" for each run.
set -u
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
EV=task-clock,context-switches,cpu-migrations
if [[ ${EVENTS:-sw} == tp ]]; then
  EV+=,raw_syscalls:sys_enter
  for s in read write connect socket close epoll_wait epoll_ctl getsockopt setsockopt recvfrom \
    sendto fcntl shutdown; do EV+=",syscalls:sys_enter_$s"; done
fi
for r in $(seq "${ROUNDS:-3}"); do
  for t in "$@"; do
    n=${t%%:*} p=${t##*:}
    # the benchmark's own rule: wait for room in the connection-tracking table
    while (($(cat /proc/sys/net/netfilter/nf_conntrack_count) > 300000)); do sleep 1; done
    perf stat -x, -o "$PREFIX-$n-$r.csv" -e "$EV" -- wrk -t1 -c50 -d5s --timeout 10s \
      -s "$ROOT/bench/conf/report.lua" -H 'Connection: close' "http://127.0.0.1:$p/" \
      >"$PREFIX-$n-$r.txt" 2>&1
    echo "$r $n $(grep -o 'requests=[0-9]*' "$PREFIX-$n-$r.txt")"
  done
done

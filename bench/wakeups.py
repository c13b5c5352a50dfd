# A `perf script` handler: how often each thread slept and was preempted during a
# `perf sched record`, how long it slept, and how long it waited for a CPU once woken.
#
#   perf script -i sched.data -s bench/wakeups.py <count> <unit> <tid,tid,...>
#
# <count> <unit>: what the run served (e.g. 276285 request), to give the switches per unit.
# <tid,...>: the threads listed one by one (the proxy's); every other task is summed by name, and
# the three busiest names are listed after them (wrk, the nginx backend).
#
# The handlers only collect; the events are sorted by time at the end, because perf can hand
# events from different CPUs over out of order (record with `-k mono`, one clock for all CPUs).
#
# The counts are complete: they come from the switch away from each thread. The medians are not:
# a sleep is timed only when the switch that ends it was recorded, and on some machines the
# tracer sees no switch away from a CPU's idle task (on the 2-vCPU VM of docs/benchmarks.md, CPU
# 1's are never recorded), so wake-ups onto such an idle CPU are left out of the medians.
#
# A thread that leaves the CPU runnable (state R, or R+ when preempted) was preempted; any other
# state is a sleep. A sleep ends at the thread's first `sched_waking`; from there to its next
# `sched_switch` onto a CPU is its wake-up delay, the time it waited in a run queue. "woken by"
# names the task that was running when the wake-up was made (for a wake-up from loopback TCP,
# the sender: wrk for a new connection or a request, nginx for a response).
#
# Waits for a CPU, for the target's threads as a whole: every stretch from being woken or
# preempted to running again, how many lasted over 1 ms and over 2 ms, the longest, and how
# much of the time spent in waits over 1 ms another of the target's threads was running on the
# CPU the thread was waiting on (the CPU it was preempted on, or the one its wake-up chose). A
# thread that waits behind its sibling holds up every connection it serves; the scheduler's
# slice sets how long such a wait lasts. The same blind spot applies: a wait that ends on a CPU
# whose switches away from idle are not recorded is not seen.

import bisect
import statistics
import sys
from collections import defaultdict

COUNT = float(sys.argv[1])
UNIT = sys.argv[2]
TIDS = [int(t) for t in sys.argv[3].split(",") if t]

events = []  # (ns, kind, ...) in the order perf hands them over
names = {}
left = {}  # tid -> (ns it left the CPU, it left runnable)
woken = {}  # tid -> ns of the first wake-up of its current sleep
sleeps = defaultdict(list)  # tid -> sleep lengths, ns
delays = defaultdict(list)  # tid -> wake-up delays, ns
preempted = defaultdict(int)
slept = defaultdict(int)
wakers = defaultdict(lambda: defaultdict(int))  # tid -> waker's name -> wake-ups
waits = []  # (tid, cpu it waited on, ns it became runnable, ns it ran again)
ready = {}  # tid -> (ns it became runnable, cpu) while it waits for a CPU
running = {}  # cpu -> (pid, ns it started) as the switches show
spans = defaultdict(list)  # cpu -> [(start ns, end ns, pid)] of the target's threads


def _ns(secs, nsecs):
    return secs * 1_000_000_000 + nsecs


def sched__sched_switch(event_name, context, common_cpu, common_secs, common_nsecs, common_pid,
                        common_comm, common_callchain, prev_comm, prev_pid, prev_prio, prev_state,
                        next_comm, next_pid, next_prio, perf_sample_dict):
    events.append((_ns(common_secs, common_nsecs), 1, prev_comm, prev_pid, prev_state, next_comm,
                   next_pid, common_cpu))


def sched__sched_waking(event_name, context, common_cpu, common_secs, common_nsecs, common_pid,
                        common_comm, common_callchain, comm, pid, prio, target_cpu,
                        perf_sample_dict):
    events.append((_ns(common_secs, common_nsecs), 0, common_comm, pid, target_cpu))


def trace_unhandled(event_name, context, event_fields_dict, perf_sample_dict):
    pass


def _switch(t, prev_comm, prev_pid, prev_state, next_comm, next_pid, cpu):
    names[prev_pid] = prev_comm
    names[next_pid] = next_comm
    was = running.get(cpu)
    if was is not None and was[0] in TIDS:
        spans[cpu].append((was[1], t, was[0]))
    running[cpu] = (next_pid, t)
    if prev_pid in TIDS:
        if prev_state & 0xFF == 0:
            ready[prev_pid] = (t, cpu)
        else:  # asleep: a wait whose switch onto a CPU was not recorded ends here unseen
            ready.pop(prev_pid, None)
    if next_pid in ready:
        since, on = ready.pop(next_pid)
        waits.append((next_pid, on, since, t))
    if prev_pid != 0:
        # A thread that was running has no wake-up pending: one left over belongs to a sleep
        # whose end was not recorded (see above).
        woken.pop(prev_pid, None)
        runnable = prev_state & 0xFF == 0
        left[prev_pid] = (t, runnable)
        if runnable:
            preempted[prev_pid] += 1
        else:
            slept[prev_pid] += 1
    out = left.pop(next_pid, None)
    if out is not None and not out[1] and next_pid in woken:
        w = woken.pop(next_pid)
        sleeps[next_pid].append(w - out[0])
        delays[next_pid].append(t - w)


def _waking(t, waker, pid, cpu):
    out = left.get(pid)
    if out is not None and not out[1] and pid not in woken:
        woken[pid] = t
        wakers[pid][waker] += 1
        if pid in TIDS:
            ready[pid] = (t, cpu)


def _behind_sibling(tid, cpu, a, b):
    """ns of [a, b) during which another of the target's threads ran on cpu."""
    s = spans[cpu]
    i = max(bisect.bisect_left(s, (a, 0, 0)) - 1, 0)
    ns = 0
    while i < len(s) and s[i][0] < b:
        start, end, pid = s[i]
        if pid != tid:
            ns += max(0, min(end, b) - max(start, a))
        i += 1
    return ns


def _waits():
    w = waits
    if not w:
        return
    long_ = [(tid, cpu, a, b) for tid, cpu, a, b in w if b - a > 1_000_000]
    total = sum(b - a for _, _, a, b in long_)
    behind = sum(_behind_sibling(tid, cpu, a, b) for tid, cpu, a, b in long_)
    print("  waits for a CPU (target's threads): %d, over 1 ms %d, over 2 ms %d, longest %.2f ms;"
          " %s of the time in waits over 1 ms another target thread ran on that CPU" % (
              len(w), len(long_), sum(1 for _, _, a, b in w if b - a > 2_000_000),
              max(b - a for _, _, a, b in w) / 1e6,
              "%.0f %%" % (100 * behind / total) if total else "-"))


def _row(label, tids):
    s = [x for t in tids for x in sleeps[t]]
    d = [x for t in tids for x in delays[t]]
    by = defaultdict(int)
    for t in tids:
        for n, c in wakers[t].items():
            by[n] += c
    top = sorted(by.items(), key=lambda kv: -kv[1])[:3]
    med = lambda a: statistics.median(a) / 1000 if a else float("nan")
    print("  %-22s sleeps %.4f  preempted %.4f per %s   median sleep %6.1f µs   "
          "median wake-up delay %6.1f µs   woken by %s" % (
              label, sum(slept[t] for t in tids) / COUNT,
              sum(preempted[t] for t in tids) / COUNT, UNIT, med(s), med(d),
              ", ".join("%s %.4f" % (n, c / COUNT) for n, c in top) or "-"))


def trace_end():
    # At one instant a switch goes before a wake-up: a thread leaves the CPU, then is woken.
    events.sort(key=lambda e: (e[0], -e[1]))
    for e in events:
        if e[1]:
            _switch(*e[:1], *e[2:])
        else:
            _waking(e[0], e[2], e[3], e[4])
    for cpu in spans:
        spans[cpu].sort()
    for t in TIDS:
        if slept[t] + preempted[t] > 0:
            _row("%s %d" % (names.get(t, "?"), t), [t])
    others = defaultdict(list)
    for t, n in names.items():
        if t not in TIDS and t != 0 and n != "perf" and slept[t] + preempted[t] > 0:
            others[n].append(t)
    busiest = sorted(others.items(),
                     key=lambda kv: -sum(slept[t] + preempted[t] for t in kv[1]))[:3]
    for n, tids in busiest:
        _row("%s (%d threads)" % (n, len(tids)) if len(tids) > 1 else n, tids)
    _waits()

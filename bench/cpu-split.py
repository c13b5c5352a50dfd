#!/usr/bin/env python3
"""Where the machine's CPU went per request, for each target of bench/matrix.sh TSV files.

usage: bench/cpu-split.py matrix.tsv...

A proxy's own CPU is not all it costs: how it sends and when it sleeps also sets what the nginx
backend and wrk spend per request, and how long the two CPUs sit idle. Per (workload, target),
over the repetitions that bench/summarize.py keeps (the least disturbed attempt of each), the
medians of: requests per second; microseconds per request of the proxy, the backend, wrk and
other tenants (`foreign`); the idle time per request (2 CPUs x the run's length minus all of
those); the idle share; p99. The bulk workload is left out: per request means per 64 MiB there.
"""

import os
import statistics as st
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from summarize import load, num  # noqa: E402

CPUS = 2


def split(rs):
    def per_req(r, col):
        v = num(r, col)
        return (v or 0.0) * 1e6 / (num(r, "req_s") * num(r, "dur_s"))

    def idle_s(r):
        busy = sum(num(r, c) or 0.0 for c in ("proxy_cpu_s", "backend_cpu_s", "wrk_cpu_s", "foreign_cpu_s"))
        return CPUS * num(r, "dur_s") - busy

    med = lambda f: st.median(f(r) for r in rs)  # noqa: E731
    return [
        med(lambda r: num(r, "req_s")),
        med(lambda r: per_req(r, "proxy_cpu_s")),
        med(lambda r: per_req(r, "backend_cpu_s")),
        med(lambda r: per_req(r, "wrk_cpu_s")),
        med(lambda r: per_req(r, "foreign_cpu_s")),
        med(lambda r: idle_s(r) * 1e6 / (num(r, "req_s") * num(r, "dur_s"))),
        med(lambda r: 100.0 * idle_s(r) / (CPUS * num(r, "dur_s"))),
        med(lambda r: num(r, "p99_ms")),
    ]


def main(paths):
    if not paths:
        sys.exit(__doc__.strip())
    groups, order = load(paths)
    print("| workload | target | runs | req/s | proxy µs/req | backend µs/req | wrk µs/req "
          "| foreign µs/req | idle µs/req | idle | p99 ms |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for mode, target in order:
        if mode == "bulk":
            continue
        rs = [r for r in groups[(mode, target)] if num(r, "req_s")]
        if not rs:
            continue
        rps, proxy, backend, wrk, foreign, idle, idle_pct, p99 = split(rs)
        proxy_s = "–" if target == "direct" else f"{proxy:.1f}"
        print(f"| {mode} | {target} | {len(rs)} | {rps:,.0f} | {proxy_s} | {backend:.1f} | {wrk:.1f} "
              f"| {foreign:.1f} | {idle:.1f} | {idle_pct:.1f} % | {p99:.2f} |")


if __name__ == "__main__":
    main(sys.argv[1:])

#!/usr/bin/env python3
"""How much proxy CPU each keep-alive and close target leaves, against the kernel's part of ringlb's.

usage: bench/floor.py [--target NAME] RESULTS_DIR...

NAME is the ringlb target of the matrix to set against the budgets (default `ringlb`; e.g.
`ringlb-auto` for `--splice auto`).

Each RESULTS_DIR holds the bench-matrix.tsv and bench-profile.md of one `make bench` run. With
both CPUs busy, a rate R costs 2 s of CPU per second, 2e6 / R microseconds per request, shared by
the proxy, the nginx backend, wrk, other tenants and the idle time. A target "rate >= k x the
peer's" leaves the proxy at most

    2e6 / (k x peer rate) - (backend + wrk + foreign)   microseconds per request,

with no idle time and the smaller of the backend + wrk + foreign cost measured behind ringlb and
behind that peer. The CPU target "ringlb's CPU <= 0.9 x HAProxy's" leaves 0.9 x the lowest CPU
per request of HAProxy's `mode tcp` configurations in the run.

The kernel's part of ringlb's CPU is its median CPU per request times the share of its perf
samples in the kernel on that workload (the profile step, a separate 5 s run of the same
build). The last column says what is over the budget first: "the kernel's part" when that part
alone is above it (no change in ringlb's own code can meet the target, only less kernel work per
request can); "ringlb's own code" when only the whole CPU is; "outside the proxy's CPU" when
ringlb's CPU fits and the rate was lost to idle time or to what the backend and wrk spent
behind it.
"""

import argparse
import os
import re
import statistics as st
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from summarize import is_peer, load, num  # noqa: E402

CPUS = 2
SHARE = re.compile(r"<summary>(\S+) — (\w[\w-]*): kernel\.kallsyms ([0-9.]+)%")


def kernel_shares(path):
    """(target, workload) -> share of the perf samples in the kernel, from bench-profile.md."""
    with open(path) as f:
        return {(m[1], m[2]): float(m[3]) / 100 for m in SHARE.finditer(f.read())}


def per_req(rs, col):
    return st.median((num(r, col) or 0.0) * 1e6 / (num(r, "req_s") * num(r, "dur_s")) for r in rs)


def rate(rs):
    return st.median(num(r, "req_s") for r in rs)


def others(rs):
    """backend + wrk + foreign CPU per request: what the proxy shares the two CPUs with."""
    return sum(per_req(rs, c) for c in ("backend_cpu_s", "wrk_cpu_s", "foreign_cpu_s"))


def leaves(groups, mode, peer, k, ringlb="ringlb"):
    """Proxy microseconds per request that "rate >= k x peer" leaves."""
    p, r = groups[(mode, peer)], groups[(mode, ringlb)]
    return CPUS * 1e6 / (k * rate(p)) - min(others(p), others(r))


def run(d, target="ringlb"):
    groups, _ = load([os.path.join(d, "bench-matrix.tsv")])
    shares = kernel_shares(os.path.join(d, "bench-profile.md"))
    name = os.path.basename(os.path.normpath(d))
    out = []
    for mode in ("ka", "close"):
        if (mode, target) not in groups or (target, mode) not in shares:
            continue
        rs = groups[(mode, target)]
        cpu = st.median(num(r, "proxy_us_per_req") for r in rs)
        kern = cpu * shares[(target, mode)]
        peers = [t for (m, t) in groups if m == mode and is_peer(t)]
        checks = []
        if mode == "ka":
            best = max(peers, key=lambda t: rate(groups[(mode, t)]))
            checks.append((f"req/s ≥ 1.05 × {best}", leaves(groups, mode, best, 1.05, target)))
            tcp = [t for t in peers if t.startswith("hap") and "tcp" in t]
            low = min(tcp, key=lambda t: per_req(groups[(mode, t)], "proxy_cpu_s"))
            checks.append((f"CPU ≤ 0.9 × {low}", 0.9 * per_req(groups[(mode, low)], "proxy_cpu_s")))
        else:
            for peer, k in (("hap1-tcp", 1.1), ("hap1-http", 1.0)):
                if (mode, peer) in groups:
                    checks.append((f"conn/s ≥ {k} × {peer}", leaves(groups, mode, peer, k, target)))
        for what, budget in checks:
            where = ("the kernel's part" if kern > budget else "ringlb's own code" if cpu > budget
                     else "outside the proxy's CPU")
            out.append((name, mode, what, budget, cpu, kern, where))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", default="ringlb", help="the ringlb target (default: ringlb)")
    ap.add_argument("dirs", nargs="+", metavar="RESULTS_DIR")
    args = ap.parse_args()
    print(f"| run | workload | target | proxy µs per request it leaves | {args.target}'s CPU | "
          "of which kernel | over the budget first |")
    print("|---|---|---|---:|---:|---:|---|")
    for d in args.dirs:
        for name, mode, what, budget, cpu, kern, where in run(d, args.target):
            print(f"| {name} | {mode} | {what} | {budget:.1f} | {cpu:.1f} | {kern:.1f} | {where} |")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Paired comparison of two or more targets in one bench/matrix.sh run.

    bench/pairs.py matrix.tsv BASE OTHER[,OTHER...]

For each workload and each OTHER: the median over the rounds of OTHER ÷ BASE within the same
round (req/s, or GB/s for bulk), how many rounds were above 1, and the same for the proxy CPU
per request; then each target's plain medians. A ratio within one round cancels the drift
between rounds, which on a noisy machine is larger than most differences worth measuring.

Each run counts with its least disturbed attempt, as in bench/summarize.py. A round in which
that attempt of either target was still disturbed (other tenants' CPU above FOREIGN_MAX, steal
above STEAL_MAX, both 1.0 s by default as in bench/matrix.sh, or conntrack drops) is left out of
that pair, and the line says how many were: a round that slowed one side and not the other would
tilt the ratio. ALL=1 keeps every round.
"""
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from summarize import drops, load  # noqa: E402

FOREIGN_MAX = float(os.environ.get("FOREIGN_MAX", "1.0"))
STEAL_MAX = float(os.environ.get("STEAL_MAX", "1.0"))
KEEP_ALL = os.environ.get("ALL", "0") == "1"


def disturbed(d):
    """Whether a kept attempt is still over one of bench/matrix.sh's limits."""
    return (float(d["foreign_cpu_s"]) > FOREIGN_MAX or float(d.get("steal_s") or 0) > STEAL_MAX
            or drops(d) > 0)


def main(path, base, others):
    groups, _ = load([path])  # each run's least disturbed attempt
    by = {}
    for d in (r for rs in groups.values() for r in rs):
        rate = float(d["GB_s"]) if d["mode"] == "bulk" else float(d["req_s"])
        try:
            cpu = float(d["proxy_us_per_req"])
        except ValueError:
            cpu = float("nan")
        bad = disturbed(d) and not KEEP_ALL
        by.setdefault((d["mode"], d["label"].split("/")[0]), {})[d["target"]] = (
            rate, cpu, float(d["p99_ms"]), bad)
    for mode in sorted({m for m, _ in by}):
        if not any(base in v for (m, _), v in by.items() if m == mode):
            continue  # e.g. rid, which the matrix runs only against the http peers
        for t in others:
            both = [v for (m, _), v in by.items() if m == mode and t in v and base in v]
            pairs = [(v[t][0] / v[base][0], v[t][1] / v[base][1]) for v in both
                     if not (v[t][3] or v[base][3])]
            out = len(both) - len(pairs)
            if not pairs:
                if both:
                    print(f"{mode} {t} ÷ {base}: all {out} rounds left out (disturbed)")
                continue
            rate = [a for a, _ in pairs]
            cpu = [b for _, b in pairs]
            print(f"{mode} {t} ÷ {base}: {len(pairs)} rounds"
                  f"{f' ({out} left out: disturbed)' if out else ''}, rate median "
                  f"{statistics.median(rate):.3f} ({sum(a > 1 for a in rate)} above 1), CPU per request "
                  f"median {statistics.median(cpu):.3f} ({sum(b < 1 for b in cpu)} below 1)")
        for t in [base] + others:
            vals = [v[t] for (m, _), v in by.items() if m == mode and t in v and not v[t][3]]
            if vals:
                print(f"    {t:<16} median {statistics.median(x[0] for x in vals):.4g}, "
                      f"CPU {statistics.median(x[1] for x in vals):.3g}, p99 {statistics.median(x[2] for x in vals):.2f} ms"
                      f"{'' if KEEP_ALL else ' (undisturbed rounds)'}")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3].split(","))

#!/usr/bin/env python3
"""Paired comparison of two or more targets in one bench/matrix.sh run.

    bench/pairs.py matrix.tsv BASE OTHER[,OTHER...]

For each workload and each OTHER: the median over the rounds of OTHER ÷ BASE within the same
round (req/s, or GB/s for bulk), how many rounds were above 1, and the same for the proxy CPU
per request; then each target's plain medians. A ratio within one round cancels the drift
between rounds, which on a noisy machine is larger than most differences worth measuring.
"""
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from summarize import disturbance  # noqa: E402


def main(path, base, others):
    rows = [l.rstrip("\n").split("\t") for l in open(path)]
    head, rows = rows[0], rows[1:]
    kept = {}
    for r in rows:
        d = dict(zip(head, r))
        # a retried run counts with its least disturbed attempt, as in bench/summarize.py
        key = (d["mode"], d["label"].split("/")[0], d["target"])
        if key not in kept or disturbance(d) < disturbance(kept[key]):
            kept[key] = d
    by = {}
    for d in kept.values():
        rate = float(d["GB_s"]) if d["mode"] == "bulk" else float(d["req_s"])
        try:
            cpu = float(d["proxy_us_per_req"])
        except ValueError:
            cpu = float("nan")
        by.setdefault((d["mode"], d["label"].split("/")[0]), {})[d["target"]] = (rate, cpu, float(d["p99_ms"]))
    for mode in sorted({m for m, _ in by}):
        for t in others:
            pairs = [(v[t][0] / v[base][0], v[t][1] / v[base][1])
                     for (m, _), v in by.items() if m == mode and t in v and base in v]
            if not pairs:
                continue
            rate = [a for a, _ in pairs]
            cpu = [b for _, b in pairs]
            print(f"{mode} {t} ÷ {base}: {len(pairs)} rounds, rate median {statistics.median(rate):.3f} "
                  f"({sum(a > 1 for a in rate)} above 1), CPU per request median {statistics.median(cpu):.3f} "
                  f"({sum(b < 1 for b in cpu)} below 1)")
        for t in [base] + others:
            vals = [v[t] for (m, _), v in by.items() if m == mode and t in v]
            if vals:
                print(f"    {t:<16} median {statistics.median(x[0] for x in vals):.4g}, "
                      f"CPU {statistics.median(x[1] for x in vals):.3g}, p99 {statistics.median(x[2] for x in vals):.2f} ms")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3].split(","))

#!/usr/bin/env python3
"""Turn bench/profile.sh output into markdown: system calls per request (per MiB for bulk) of each
profiled target side by side, and the hottest functions from perf.

usage: profile.py PROFILE_DIR
"""

import csv
import glob
import os
import sys
from collections import defaultdict

UNITS = {"bulk": ("MiB", 1024 * 1024)}


def load_tsv(path):
    with open(path) as f:
        rows = [r for r in csv.DictReader(f, delimiter="\t", fieldnames=HDR)]
    return rows[0] if rows else None


HDR = ("label target port mode conns dur_s req_s GB_s p50_ms p90_ms p99_ms max_ms errors proxy_cpu_s "
       "backend_cpu_s wrk_cpu_s foreign_cpu_s steal_s softirq_s proxy_us_per_req").split()


def parse_strace(path):
    """{syscall: (calls, failed calls)} from `strace -c` output."""
    calls = {}
    for line in open(path):
        f = line.split()
        if len(f) < 5 or not f[0][0].isdigit() or f[-1] == "total":
            continue
        # % time, seconds, usecs/call, calls, [errors], syscall
        calls[f[-1]] = (int(f[3]), int(f[4]) if len(f) == 6 else 0)
    return calls


def main():
    d = sys.argv[1]
    per = defaultdict(dict)  # mode -> target -> {syscall: per unit}
    units = {}
    targets = []
    for path in sorted(glob.glob(os.path.join(d, "*.strace"))):
        tag = os.path.basename(path)[: -len(".strace")]
        target, mode = tag.rsplit("_", 1)
        row = load_tsv(path + ".tsv")
        if not row:
            continue
        dur = float(row["dur_s"])
        if mode in UNITS:
            unit, size = UNITS[mode]
            work = float(row["GB_s"]) * 1e9 * dur / size
        else:
            unit, work = "request", float(row["req_s"]) * dur
        if work <= 0:
            continue
        units[mode] = unit
        per[mode][target] = {k: (c / work, e / work) for k, (c, e) in parse_strace(path).items()}
        if target not in targets:
            targets.append(target)
    out = []
    for mode in ("ka", "close", "bulk", "rid", "rid-close"):
        if mode not in per:
            continue
        ts = [t for t in targets if t in per[mode]]
        names = sorted({k for t in ts for k in per[mode][t]},
                       key=lambda k: -max(per[mode][t].get(k, (0, 0))[0] for t in ts))
        out.append(f"\n#### {mode}: system calls per {units[mode]} (strace -c -f; in brackets: how many failed, e.g. EAGAIN)\n")
        out.append("| system call | " + " | ".join(ts) + " |")
        out.append("|---|" + "---:|" * len(ts))
        cell = lambda c, e: "–" if not c else f"{c:.2f}" + (f" ({e:.2f})" if e >= 0.005 else "")
        tot = {t: (sum(c for c, _ in per[mode][t].values()), sum(e for _, e in per[mode][t].values())) for t in ts}
        out.append("| **all** | " + " | ".join(f"**{cell(*tot[t])}**" for t in ts) + " |")
        for k in names:
            vals = [per[mode][t].get(k, (0, 0)) for t in ts]
            if max(c for c, _ in vals) < 0.01:
                continue
            out.append(f"| {k} | " + " | ".join(cell(*v) for v in vals) + " |")
    stat = defaultdict(dict)  # mode -> target -> (context switches, migrations) per unit
    for path in sorted(glob.glob(os.path.join(d, "*.perf-stat.csv"))):
        tag = os.path.basename(path)[: -len(".perf-stat.csv")]
        target, mode = tag.rsplit("_", 1)
        row = load_tsv(os.path.join(d, tag + ".perf.tsv"))
        if not row:
            continue
        dur = float(row["dur_s"])
        work = (float(row["GB_s"]) * 1e9 * dur / UNITS[mode][1]) if mode in UNITS else float(row["req_s"]) * dur
        ev = {}
        for line in open(path):
            f = line.strip().split(",")
            if len(f) >= 3 and f[0].replace(".", "", 1).isdigit():
                ev[f[2]] = float(f[0])
        cs = os.path.join(d, tag + ".ctxsw")
        if work > 0 and os.path.exists(cs):
            v0, n0, v1, n1 = (int(x) for x in open(cs).read().split())
            stat[mode][target] = ((v1 - v0) / work, (n1 - n0) / work, ev.get("cpu-migrations", 0) / work)
    if stat:
        out.append("\n#### Scheduler events: voluntary · involuntary context switches (the proxy's threads, from /proc) · CPU migrations (perf stat), per request (per MiB for bulk)\n")
        ts = [t for t in targets if any(t in stat[m] for m in stat)]
        out.append("| workload | " + " | ".join(ts) + " |")
        out.append("|---|" + "---:|" * len(ts))
        for mode in ("ka", "close", "bulk", "rid", "rid-close"):
            if mode in stat:
                cells = [" · ".join(f"{x:.3f}" for x in stat[mode][t]) if t in stat[mode] else "–" for t in ts]
                out.append(f"| {mode} | " + " | ".join(cells) + " |")
    perf = sorted(glob.glob(os.path.join(d, "*.perf.txt")))
    if perf:
        out.append("\n#### Hottest functions (perf record -e cpu-clock, share of the proxy's samples)\n")
        for path in perf:
            tag = os.path.basename(path)[: -len(".perf.txt")]
            lines = [l.rstrip() for l in open(path) if l.strip() and not l.startswith("#")][:15]
            if not lines:
                continue
            dso = path.replace(".perf.txt", ".perf-dso.txt")
            split = ""
            if os.path.exists(dso):
                parts = [l.split() for l in open(dso) if l.strip() and not l.startswith("#")]
                split = ": " + ", ".join(f"{p[1].strip('[]')} {p[0]}" for p in parts[:4] if len(p) >= 2)
            out.append(f"<details><summary>{tag.replace('_', ' — ')}{split}</summary>\n\n```")
            out.extend(lines)
            out.append("```\n</details>\n")
    print("\n".join(out))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Summarize bench/matrix.sh TSV files: markdown tables and one SVG chart per workload.

usage: bench/summarize.py [--svg-dir DIR] [--md FILE] matrix.tsv...

Per (target, workload, rep) the least disturbed attempt is kept (no conntrack drops first, then
the least CPU taken by others: other tenants' CPU plus the hypervisor's steal); then the median over
reps. spread = (max - min) / median of the per-rep values. Ratios compare medians of the same
run: against the best HAProxy/nginx target of that workload ("best peer") and against direct.
"""

import argparse
import csv
import os
import statistics as st
import sys
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import svg  # noqa: E402

WORKLOADS = {
    "ka": "small requests, keep-alive (wrk -c50)",
    "close": "small requests, one connection per request (Connection: close, wrk -c50)",
    "bulk": "GET of a 64 MiB file, keep-alive (wrk -c4)",
    "rid": "a distinct ?rid= per request, keep-alive (wrk -c50, Lua request hook)",
    "rid-close": "a distinct ?rid= per request, one connection per request (wrk -c50, Lua request hook)",
}
ORDER = ["ka", "close", "bulk", "rid", "rid-close"]


def is_peer(t):
    return t.startswith("hap") or t.startswith("ngx")


def kind(t):
    return "ringlb" if t.startswith("ringlb") else "base" if t == "direct" else "peer"


def drops(r):
    return int(r.get("ct_drops") or 0)


def taken(r):
    """CPU seconds the run lost to others: other tenants' busy time plus the hypervisor's steal."""
    return float(r["foreign_cpu_s"]) + float(r.get("steal_s") or 0)


def disturbance(r):
    """Runs without conntrack drops first, then the least CPU taken by others."""
    return (drops(r) > 0, taken(r))


def read_rows(paths):
    rows = []
    for path in paths:
        with open(path) as f:
            rows += [r for r in csv.DictReader(f, delimiter="\t") if r["label"] != "label"]
    return rows


def load(paths):
    rows = read_rows(paths)
    best = {}
    for r in rows:
        rep = r["label"].split("/")[0]
        key = (r["target"], r["mode"], rep)
        if key not in best or disturbance(r) < disturbance(best[key]):
            best[key] = r
    groups = defaultdict(list)
    order = []
    for (target, mode, _rep), r in best.items():
        if (mode, target) not in groups:
            order.append((mode, target))
        groups[(mode, target)].append(r)
    return groups, order


def num(r, col):
    v = r.get(col, "-")
    return None if v in ("-", "", None) else float(v)


class Stat:
    """Per (workload, target) figures over the kept repetitions."""

    def __init__(self, mode, target, rs):
        self.mode, self.target, self.n = mode, target, len(rs)
        self.bulk = mode == "bulk"
        tp = [num(r, "GB_s" if self.bulk else "req_s") for r in rs]
        self.tp = st.median(tp)
        self.lo, self.hi = min(tp), max(tp)
        self.spread = 100.0 * (self.hi - self.lo) / self.tp if self.tp else 0.0
        self.p50 = st.median(num(r, "p50_ms") for r in rs)
        self.p99 = st.median(num(r, "p99_ms") for r in rs)
        self.errors = sum(int(float(r["errors"])) for r in rs)
        self.foreign = st.median(num(r, "foreign_cpu_s") for r in rs)
        self.dropped = sum(1 for r in rs if drops(r) > 0)
        if self.bulk:  # proxy CPU seconds per GB moved
            c = [num(r, "proxy_cpu_s") / (num(r, "GB_s") * num(r, "dur_s")) for r in rs
                 if num(r, "proxy_cpu_s") is not None and num(r, "GB_s")]
        else:  # proxy CPU microseconds per request
            c = [num(r, "proxy_us_per_req") for r in rs if num(r, "proxy_us_per_req") is not None]
        self.cpu = st.median(c) if c else None


def fmt(x, nd=0):
    return "–" if x is None else f"{x:,.{nd}f}"


def ratio(a, b):
    return "–" if a is None or not b else f"{a / b:.2f}×"


def summarize(groups, order):
    by_mode = defaultdict(list)
    for mode, target in order:
        by_mode[mode].append(Stat(mode, target, groups[(mode, target)]))
    for m in by_mode:
        # keep the targets in the order measured, direct first
        by_mode[m].sort(key=lambda s: (s.target != "direct",))
    return by_mode


def best_peer(stats):
    peers = [s for s in stats if is_peer(s.target)]
    return max(peers, key=lambda s: s.tp) if peers else None


def headline(by_mode):
    out = ["| workload | direct (no proxy) | ringlb | ringlb ÷ best peer | ringlb ÷ direct | best HAProxy/nginx | other ringlb settings (÷ best peer) | proxy CPU: ringlb · lowest of the peers |",
           "|---|---:|---:|---:|---:|---|---|---:|"]
    for m in ORDER:
        ss = by_mode.get(m)
        if not ss:
            continue
        d = {s.target: s for s in ss}
        unit = " GB/s" if m == "bulk" else ""
        nd = 2 if m == "bulk" else 0
        cu = " s/GB" if m == "bulk" else " µs/req"
        cnd = 2 if m == "bulk" else 1
        r, dr, bp = d.get("ringlb"), d.get("direct"), best_peer(ss)
        others = " · ".join(f"{s.target.replace('ringlb-', '')} {fmt(s.tp, nd)} ({ratio(s.tp, bp.tp if bp else None)})"
                            for s in ss if s.target.startswith("ringlb-")) or "–"
        peer_cpu = min((s.cpu for s in ss if is_peer(s.target) and s.cpu is not None), default=None)
        out.append(
            f"| {m} | {fmt(dr.tp, nd) + unit if dr else '–'} | {fmt(r.tp, nd) + unit if r else '–'} | "
            f"**{ratio(r.tp if r else None, bp.tp if bp else None)}** | {ratio(r.tp if r else None, dr.tp if dr else None)} | "
            f"{(fmt(bp.tp, nd) + unit + ' (' + bp.target + ')') if bp else '–'} | {others} | "
            f"{fmt(r.cpu if r else None, cnd)} · {fmt(peer_cpu, cnd)}{cu} |")
    return "\n".join(out)


def tables(by_mode):
    out = []
    for m in ORDER:
        ss = by_mode.get(m)
        if not ss:
            continue
        bp = best_peer(ss)
        dr = next((s for s in ss if s.target == "direct"), None)
        out.append(f"\n#### {m}: {WORKLOADS[m]}\n")
        if m == "bulk":
            out.append("| target | GB/s (median) | min – max | spread | ÷ best peer | ÷ direct | p50 / p99 ms (one 64 MiB response) | proxy CPU s/GB | runs | errors |")
        else:
            out.append("| target | req/s (median) | min – max | spread | ÷ best peer | ÷ direct | p50 / p99 ms | proxy CPU µs/req | runs | errors |")
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        nd = 2 if m == "bulk" else 0
        for s in ss:
            name = f"**{s.target}**" if s.target.startswith("ringlb") else s.target
            lat = f"{s.p50:.0f} / {s.p99:.0f}" if s.bulk else f"{s.p50:.2f} / {s.p99:.2f}"
            out.append(
                f"| {name} | {fmt(s.tp, nd)} | {fmt(s.lo, nd)} – {fmt(s.hi, nd)} | {s.spread:.0f}% | "
                f"{ratio(s.tp, bp.tp if bp else None)} | {ratio(s.tp, dr.tp if dr else None)} | {lat} | "
                f"{fmt(s.cpu, 2 if s.bulk else 1)} | {s.n} | {s.errors} |")
        hit = [f"{s.target} ({s.dropped} of {s.n})" for s in ss if s.dropped]
        if hit:
            out.append(f"\nRuns during which a full conntrack table dropped packets (SYNs retried after 1 s, "
                       f"so throughput is low and p99 near 1000 ms): {', '.join(hit)}.")
    return "\n".join(out)


def charts(by_mode, svg_dir, note):
    os.makedirs(svg_dir, exist_ok=True)
    written = []
    for m in ORDER:
        ss = by_mode.get(m)
        if not ss:
            continue
        bulk = m == "bulk"
        rows_tp = [(s.target, s.tp, s.lo, s.hi, kind(s.target)) for s in ss]
        rows_p99 = [(s.target, s.p99, None, None, kind(s.target)) for s in ss]
        rows_cpu = [(s.target, s.cpu, None, None, kind(s.target)) for s in ss]
        panels = [
            {"title": "throughput (median, whisker = min–max)", "unit": "GB/s" if bulk else "requests/s", "rows": rows_tp},
            {"title": "p99 latency (median)", "unit": "ms" + (" per 64 MiB response" if bulk else ""), "rows": rows_p99},
            {"title": "proxy CPU (median)", "unit": "CPU s per GB" if bulk else "CPU µs per request", "rows": rows_cpu},
        ]
        path = os.path.join(svg_dir, f"bench-{m}.svg")
        svg.figure(path, f"{m}: {WORKLOADS[m]}", panels, note)
        written.append(path)
    return written


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--svg-dir")
    ap.add_argument("--md")
    ap.add_argument("--note", default="")
    ap.add_argument("files", nargs="+")
    a = ap.parse_args()
    groups, order = load(a.files)
    if not groups:
        sys.exit("summarize.py: no measurements in " + " ".join(a.files))
    by_mode = summarize(groups, order)
    md = "#### Headline (medians; ratios within the same run)\n\n" + headline(by_mode) + "\n" + tables(by_mode) + "\n"
    if a.md:
        with open(a.md, "w") as f:
            f.write(md)
    else:
        sys.stdout.write(md)
    if a.svg_dir:
        for p in charts(by_mode, a.svg_dir, a.note):
            print(f"wrote {p}", file=sys.stderr)


if __name__ == "__main__":
    main()

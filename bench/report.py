#!/usr/bin/env python3
"""Render the benchmark's results into markdown fragments and SVG charts, and splice them into
docs/benchmarks.md between `<!-- generated:NAME -->` and `<!-- /generated:NAME -->` markers.

usage: report.py --results docs/results [--doc docs/benchmarks.md]

Reads, from the results directory: bench-machine.json (when each step ran, on what), and each
step's output: bench-matrix.tsv, bench-profile/, bench-memory.json, bench-ring.json,
bench-control.json. A missing file leaves its section as it was.
"""

import argparse
import json
import os
import re
import statistics as st
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import summarize  # noqa: E402
import svg  # noqa: E402

GOALS = {"spliced": 16 * 1024, "waiting": 4 * 1024}
LABELS = {"maglev-walk-2": "maglev, first 2 of the failover walk"}
CHART_LABELS = {"maglev-walk-2": "maglev walk(2)"}


def when(machine, step):
    m = machine.get(step)
    if not m:
        return ""
    s, e = m["start"], m["end"]
    pin = s.get("pin", {})
    pinned = (f"; servers pinned to CPU {pin['server_cpus']}" if pin.get("server_cpus") else "") + \
             (f"; wrk pinned to CPU {pin['client_cpus']}" if pin.get("client_cpus") else "")
    return (f"Run {s['time'].replace('T', ' ').replace('Z', ' UTC')} – {e['time'][11:16]} UTC, "
            f"load average {' / '.join(s['loadavg'])} at the start and {' / '.join(e['loadavg'])} at the end"
            f"{pinned}.")


def machine_md(machine):
    m = next(iter(machine.values()), None)
    if not m:
        return None
    s = m["start"]
    dirty = int(s.get("dirty") or 0)
    build = lambda x: f"commit {x['start']['commit']}" + (
        f" with uncommitted changes in {x['start']['dirty']} source file(s)" if int(x["start"].get("dirty") or 0) else "")
    builds = {build(x) for x in machine.values()}
    rows = [
        ("machine", f"{s['nproc']} vCPU ({s['cpu']}), {s['mem_gib']} GiB RAM, a shared VM"),
        ("kernel", f"Linux {s['kernel']}"),
        ("HAProxy", s["haproxy"].replace(" - https://haproxy.org/", "")),
        ("nginx", s["nginx"].replace("nginx version: ", "")),
        ("wrk", s["wrk"].split(" [")[0]),
        ("ringlb", f"{s['ringlb']}, release build of "
                   + (f"commit {s['commit']}" + (f" with uncommitted changes in {dirty} source file(s)" if dirty else "")
                      if len(builds) == 1 else "the commit named per step below")),
        ("rustc", s["rustc"]),
        ("open-file limit", f"{s['nofile_hard']} (hard)"),
    ]
    if "halt_poll_ns" in s:
        ns = s["halt_poll_ns"]
        rows.append(("guest halt polling", f"{ns} ns (`guest_halt_poll_ns`)" if ns.isdigit() else "not available"))
    if "autogroup" in s:
        ag = s["autogroup"]
        rows.append(("autogroup scheduling", {"1": "on: each session is a scheduling group; every "
                     "server here, ringlb included, runs in a session of its own",
                     "0": "off"}.get(ag, "not available")))
    flaws = {k: v for k, v in (s.get("mitigations") or {}).items()
             if not v.startswith("Not affected")}
    if "mitigations" in s:
        rows.append(("CPU flaws the kernel reports", "; ".join(f"{k}: {v}" for k, v in flaws.items()) or "none"))
    out = ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]
    out.append("")
    for step in ("matrix", "profile", "memory", "control", "ring"):
        if step in machine:
            st_ = machine[step]["start"]
            extra = f" ({st_['reps']} repetitions of {st_['dur_s']} s per target and workload)" if step == "matrix" else ""
            cmd = st_.get("command")
            out.append(f"- **{step}**{extra}: {when(machine, step)}" + (f" Command: `{cmd}`." if cmd else "")
                       + (f" ringlb: {build(machine[step])}." if len(builds) > 1 else ""))
    return "\n".join(out)


def matrix_md(results, machine):
    tsv = os.path.join(results, "bench-matrix.tsv")
    if not os.path.exists(tsv):
        return None
    groups, order = summarize.load([tsv])
    by_mode = summarize.summarize(groups, order)
    note = when(machine, "matrix")
    summarize.charts(by_mode, results, note)
    kept = [r for rs in groups.values() for r in rs]
    rows = summarize.read_rows([tsv])
    retried = sum(1 for r in rows if not r["label"].endswith("/a0"))
    foreign = sorted(float(r["foreign_cpu_s"]) for r in kept)
    steal = sorted(float(r.get("steal_s") or 0) for r in kept)
    close_dur = st.median([float(r["dur_s"]) for r in kept if r["mode"] in ("close", "rid-close")] or [0])
    m = machine.get("matrix", {}).get("start", {})
    note += (f" {m.get('reps', '?')} interleaved repetitions of {m.get('dur_s', '?')} s per target and workload "
             f"({close_dur:.0f} s for close and rid-close); {retried} of {len(rows)} runs were repeats of a disturbed one. "
             f"Other tenants' CPU during the kept runs: median {st.median(foreign):.2f} s per run, at most "
             f"{foreign[-1]:.2f} s (of 2 CPUs × the run's length); CPU time stolen by the hypervisor: median "
             f"{st.median(steal):.2f} s, at most {steal[-1]:.2f} s.")
    out = [note, "", "#### Headline (medians; ratios within the same run)", "", summarize.headline(by_mode), "",
           "Charts: " + " · ".join(f"[{m}](results/bench-{m}.svg)" for m in summarize.ORDER if m in by_mode), ""]
    for m in summarize.ORDER:
        if m in by_mode:
            out.append(f"![{m}](results/bench-{m}.svg)\n")
    out.append(summarize.tables(by_mode))
    return "\n".join(out)


def profile_md(results, machine):
    d = os.path.join(results, "bench-profile")
    if not os.path.isdir(d):
        return None
    text = subprocess.run([sys.executable, os.path.join(HERE, "profile.py"), d],
                          capture_output=True, text=True, check=True).stdout
    return when(machine, "profile") + "\n" + text


def memory_md(results, machine):
    p = os.path.join(results, "bench-memory.json")
    if not os.path.exists(p):
        return None
    d = json.load(open(p))
    rows, out = [], [when(machine, "memory"), "",
                     "| connections | asked | open | RSS before | RSS with them open | RSS after they closed | **RSS per connection** | goal | descriptors per connection |",
                     "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    label = {"spliced": "spliced (one request answered, idle keep-alive)", "waiting": "waiting for the request line (sent nothing)"}
    for s in d["states"]:
        goal = GOALS[s["state"]]
        ok = "✓" if s["bytes_per_conn"] <= goal else "✗"
        out.append(f"| {label[s['state']]} | {s['asked']} | {s['open']} | {s['rss_before_kib'] / 1024:.1f} MiB | "
                   f"{s['rss_open_kib'] / 1024:.1f} MiB | {s['rss_after_close_kib'] / 1024:.1f} MiB | "
                   f"**{s['bytes_per_conn'] / 1024:.1f} KiB** {ok} | ≤ {goal // 1024} KiB | {s['fds_open'] / max(s['open'], 1):.1f} |")
        rows.append((s["state"], s["bytes_per_conn"] / 1024, None, None, "ringlb"))
    panels = [{"title": "user-space RSS per open connection", "unit": "KiB per connection", "rows": rows,
               "refs": [(4, "goal waiting ≤ 4"), (16, "goal spliced ≤ 16")], "fmt": lambda v: f"{v:.1f}"}]
    svg.figure(os.path.join(results, "bench-memory.svg"), "ringlb memory per connection", panels,
               when(machine, "memory"))
    out += ["", "![memory](results/bench-memory.svg)"]
    short = [s for s in d["states"] if s["open"] < s["asked"]]
    for s in short:
        out.append(f"\nOnly {s['open']} of {s['asked']} {s['state']} connections could be open at once: ringlb "
                   f"derives its connection cap from the open-file limit (hard limit {d['nofile_hard']} here, "
                   f"which this container cannot raise) and the descriptors a spliced connection holds "
                   f"({s['fds_open'] / max(s['open'], 1):.1f} measured); the others got a 503. "
                   f"The figure is per open connection.")
    return "\n".join(out)


def ring_md(results, machine):
    p = os.path.join(results, "bench-ring.json")
    if not os.path.exists(p):
        return None
    d = json.load(open(p))
    out = [when(machine, "ring"), "",
           "| family | lookup (median, 95 % CI) | rebuild at N = 6 (median, 95 % CI) |", "|---|---:|---:|"]
    fams = list(d["lookup_ns"])
    fams.sort(key=lambda f: (f != "maglev", f))
    for f in fams:
        lk = d["lookup_ns"][f]
        rb = d["rebuild_ns"].get(f)
        rbs = f"{rb['median'] / 1e3:,.1f} µs ({rb['lo'] / 1e3:,.1f} – {rb['hi'] / 1e3:,.1f})" if rb else "–"
        goal = ""
        if f == "maglev":
            goal = f" {'✓' if lk['median'] <= 10 else '✗'} (goal ≤ 10 ns)"
            rbs += f" {'✓' if rb and rb['median'] <= 2e6 else '✗'} (goal ≤ 2 ms)"
        out.append(f"| {LABELS.get(f, f)} | {lk['median']:.1f} ns ({lk['lo']:.1f} – {lk['hi']:.1f}){goal} | {rbs} |")
    lk_rows = [(CHART_LABELS.get(f, f), d["lookup_ns"][f]["median"], d["lookup_ns"][f]["lo"], d["lookup_ns"][f]["hi"],
                "ringlb" if f == "maglev" else "peer") for f in fams]
    rb_rows = [(CHART_LABELS.get(f, f), d["rebuild_ns"][f]["median"] / 1e3 if f in d["rebuild_ns"] else None,
                d["rebuild_ns"][f]["lo"] / 1e3 if f in d["rebuild_ns"] else None,
                d["rebuild_ns"][f]["hi"] / 1e3 if f in d["rebuild_ns"] else None,
                "ringlb" if f == "maglev" else "peer") for f in fams]
    panels = [{"title": "lookup, hashing the key included", "unit": "ns per lookup", "rows": lk_rows,
               "refs": [(10, "goal ≤ 10 ns")]},
              {"title": "rebuild at N = 6", "unit": "µs per rebuild", "rows": rb_rows,
               "refs": [(2000, "goal ≤ 2 ms")]}]
    svg.figure(os.path.join(results, "bench-ring.svg"), "ring lookup and rebuild (criterion, N = 6)", panels,
               when(machine, "ring"))
    out += ["", "![ring](results/bench-ring.svg)"]
    return "\n".join(out)


def control_md(results, machine):
    p = os.path.join(results, "bench-control.json")
    if not os.path.exists(p):
        return None
    d = json.load(open(p))
    ss = d["samples"]
    add = [s["add_ms"] for s in ss]
    first = [s["first_request_ms"] for s in ss]
    pct = lambda v, q: sorted(v)[round(q * (len(v) - 1))]
    out = [when(machine, "control"), "",
           "| measure | median | fastest | 90th pct | slowest | goal |", "|---|---:|---:|---:|---:|---:|",
           f"| `POST /add` returns (the new replica answered its first heartbeat) | {st.median(add):.1f} ms | {min(add):.1f} ms | {pct(add, .9):.1f} ms | {max(add):.1f} ms | |",
           f"| `/add` sent → first request for an ID it owns answered | **{st.median(first):.1f} ms** {'✓' if st.median(first) <= 200 else '✗'} | {min(first):.1f} ms | {pct(first, .9):.1f} ms | {max(first):.1f} ms | ≤ 200 ms |",
           "", f"{d['trials']} trials; the first request after `/add` was answered by the new replica "
               f"in {d['first_request_by_new']} of them (request ID {d['rid']}, owned by `{d['name']}`)."]
    f0 = lambda v: f"{v:.0f}"
    panels = [{"title": "POST /add returned", "unit": "ms", "fmt": f0, "refs": [(200, "200 ms")],
               "rows": [(f"trial {i + 1}", s["add_ms"], None, None, "peer") for i, s in enumerate(ss)]},
              {"title": "/add sent → first routed answer", "unit": "ms", "fmt": f0, "refs": [(200, "goal ≤ 200 ms")],
               "rows": [(f"trial {i + 1}", s["first_request_ms"], None, None, "ringlb") for i, s in enumerate(ss)]}]
    svg.figure(os.path.join(results, "bench-control.svg"), "adding one process replica until it serves", panels,
               when(machine, "control"))
    out += ["", "![control](results/bench-control.svg)"]
    return "\n".join(out)


def splice_doc(doc, parts):
    text = open(doc).read()
    for name, body in parts.items():
        if body is None:
            continue
        pat = re.compile(rf"(<!-- generated:{name} -->\n).*?(<!-- /generated:{name} -->)", re.S)
        if not pat.search(text):
            print(f"report.py: no <!-- generated:{name} --> section in {doc}", file=sys.stderr)
            continue
        text = pat.sub(lambda m: m.group(1) + body.strip() + "\n" + m.group(2), text)
    with open(doc, "w") as f:
        f.write(text)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--doc")
    a = ap.parse_args()
    mp = os.path.join(a.results, "bench-machine.json")
    machine = json.load(open(mp)) if os.path.exists(mp) else {}
    parts = {
        "machine": machine_md(machine),
        "matrix": matrix_md(a.results, machine),
        "profile": profile_md(a.results, machine),
        "memory": memory_md(a.results, machine),
        "ring": ring_md(a.results, machine),
        "control": control_md(a.results, machine),
    }
    for name, body in parts.items():
        if body is not None:
            with open(os.path.join(a.results, f"bench-{name}.md"), "w") as f:
                f.write(body.strip() + "\n")
    if a.doc:
        splice_doc(a.doc, parts)


if __name__ == "__main__":
    main()

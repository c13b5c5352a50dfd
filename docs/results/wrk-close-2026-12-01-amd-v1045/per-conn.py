#!/usr/bin/env python3
"""Per connection, medians over the rounds, of what perf stat counted in wrk: PREFIX-NAME-ROUND.csv
beside PREFIX-NAME-ROUND.txt (wrk's output with report.lua's RESULT line).

usage: per-conn.py PREFIX NAME...
"""
import glob
import re
import statistics as st
import sys
from collections import defaultdict

prefix, names = sys.argv[1], sys.argv[2:]
rows = defaultdict(lambda: defaultdict(list))
for n in names:
    for csv in sorted(glob.glob(f"{prefix}-{n}-[0-9]*.csv")):
        req = int(re.search(r"requests=(\d+)", open(csv[:-4] + ".txt").read())[1])
        rows["conn/s"][n].append(req / 5)
        for line in open(csv):
            f = line.strip().split(",")
            if len(f) < 3 or not f[0] or f[0].startswith("#"):
                continue
            v = float(f[0]) * (1e3 if f[2] == "task-clock" else 1)  # task-clock: ms -> µs
            rows[f[2].replace("syscalls:sys_enter_", "")][n].append(v / req)
print("| wrk, per connection | " + " | ".join(names) + " |")
print("|---|" + "---:|" * len(names))
for ev, by in rows.items():
    label = "CPU µs (task-clock)" if ev == "task-clock" else ev
    print(f"| {label} | " + " | ".join(f"{st.median(by[n]):,.3f}" for n in names) + " |")

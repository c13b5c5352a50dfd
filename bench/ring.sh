#!/usr/bin/env bash
# Ring lookup and rebuild cost: runs the criterion bench core/benches/ring.rs
# (`cargo bench -p ringlb-core --bench ring`) with its results in $RUN/criterion, and writes the
# median (with criterion's 95 % confidence interval) of every family's lookup and rebuild at
# N = 6 as JSON to $OUT (default stdout). Goals: maglev lookup ≤ 10 ns, rebuild ≤ 2 ms.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/lib.sh"
OUT="${OUT:-/dev/stdout}"
ROOT="$(cd "$HERE/.." && pwd)"
export CRITERION_HOME="$RUN/criterion"
rm -rf "$CRITERION_HOME"
mkdir -p "$RUN/logs"
blog "cargo bench -p ringlb-core --bench ring (results in $CRITERION_HOME)"
(cd "$ROOT" && timeout 900 cargo bench -p ringlb-core --bench ring -- --noplot) >"$RUN/logs/ring-bench.log" 2>&1 || {
  tail -20 "$RUN/logs/ring-bench.log" >&2
  exit 1
}
python3 - "$CRITERION_HOME" "$(date -u +%Y-%m-%dT%H:%MZ)" >"$OUT" <<'EOF'
import json, os, sys
home, when = sys.argv[1], sys.argv[2]
out = {"when": when, "lookup_ns": {}, "rebuild_ns": {}}
for group, key in (("lookup", "lookup_ns"), ("rebuild", "rebuild_ns")):
    gdir = os.path.join(home, group)
    for fam in sorted(os.listdir(gdir)) if os.path.isdir(gdir) else []:
        for param in os.listdir(os.path.join(gdir, fam)):
            p = os.path.join(gdir, fam, param, "new", "estimates.json")
            if not os.path.exists(p):
                continue
            m = json.load(open(p))["median"]
            ci = m["confidence_interval"]
            out[key][fam] = {"median": m["point_estimate"], "lo": ci["lower_bound"], "hi": ci["upper_bound"], "n": param}
if not out["lookup_ns"]:
    sys.exit("ring.sh: no criterion estimates found under " + home)
json.dump(out, sys.stdout, indent=1)
print()
EOF
blog "maglev lookup / rebuild: $(python3 -c "import json,sys;d=json.load(open('$OUT')) if '$OUT'!='/dev/stdout' else None;print(f\"{d['lookup_ns']['maglev']['median']:.1f} ns / {d['rebuild_ns']['maglev']['median']/1e6:.3f} ms\" if d else '')" 2>/dev/null || true)"

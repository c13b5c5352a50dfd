#!/usr/bin/env bash
# ringlb's benchmark, one command: ringlb beside HAProxy and nginx on this machine's loopback.
#
#   bench/run.sh            everything (34–41 min on 2 cores), then rewrites the generated parts of
#                           docs/benchmarks.md and docs/results/bench-*
#   bench/run.sh --quick    a tiny run that proves the harness works: 1 s, 1 repetition, one
#                           workload, two targets; prints the table, touches no docs
#   bench/run.sh --only matrix,memory   some steps only (the doc keeps the others' last results)
#   bench/run.sh --no-docs  measure, write docs/results/bench-* but not docs/benchmarks.md
#
# Steps: matrix (wrk over workloads × targets, interleaved repetitions), profile (system calls
# and hot functions per request), memory (RSS per connection), ring (criterion bench), control
# (/add until the new replica serves). It builds ringlb (cargo build --release -p ringlb-proxy)
# unless RINGLB_BIN names a binary, starts the nginx backend, HAProxy, nginx and ringlb on
# 127.0.0.1 (bench/setup.sh), and on exit stops every process it started, through pid files only.
#
# Env: REPS=3 DUR=10 MODES TARGETS RID_TARGETS (see matrix.sh), RUN=/tmp/ringlb-bench,
#      PORT_BASE=27000 BACKEND_BASE=18081 (lib.sh), RINGLB_BIN, SERVER_CPUS / CLIENT_CPUS (pin the
#      servers / wrk with taskset), QUIET_WAIT=30 (s to wait for an idle machine before each run),
#      MEM_CONNS=5000, CTL_TRIALS=10, RESULTS=docs/results.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
# The command as given, with the settings that came from the environment, for the record.
COMMAND="bench/run.sh${*:+ $*}"
for v in REPS DUR CLOSE_DUR MODES TARGETS RID_TARGETS PORT_BASE BACKEND_BASE RINGLB_BIN SERVER_CPUS \
  CLIENT_CPUS QUIET_WAIT CONNTRACK_WAIT MEM_CONNS CTL_TRIALS DUR_PROFILE PROFILE_TARGETS PROFILE_MODES; do
  if [[ -n "${!v:-}" ]]; then COMMAND="$v=\"${!v}\" $COMMAND"; fi
done
export COMMAND
source "$HERE/lib.sh"

QUICK=0
DOCS=1
STEPS="matrix,profile,memory,ring,control"
while (($#)); do
  case "$1" in
    --quick) QUICK=1 ;;
    --no-docs) DOCS=0 ;;
    --only) STEPS="${2:?--only needs a comma-separated list of steps}"; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if ((QUICK)); then
  export DUR="${DUR:-1}" REPS="${REPS:-1}" MODES="${MODES:-ka}" TARGETS="${TARGETS:-ringlb hap1-tcp}"
  export QUIET_WAIT="${QUIET_WAIT:-0}" RETRIES="${RETRIES:-0}" CONNTRACK_WAIT="${CONNTRACK_WAIT:-0}"
  [[ " $MODES " == *" bulk "* ]] || export SETUP_BIG=0
  STEPS=matrix
  DOCS=0
  RESULTS="${RESULTS:-$RUN/results}"
fi
export REPS="${REPS:-3}" DUR="${DUR:-10}"
RESULTS="${RESULTS:-$ROOT/docs/results}"
step() { [[ ",$STEPS," == *",$1,"* ]]; }
for s in ${STEPS//,/ }; do
  case "$s" in matrix | profile | memory | ring | control) ;; *) echo "run.sh: unknown step '$s'" >&2; exit 2 ;; esac
done
for tool in wrk haproxy nginx curl python3 strace setsid ps; do
  command -v "$tool" >/dev/null || NEED_INSTALL=1
done
[[ -f /usr/lib/nginx/modules/ngx_stream_module.so ]] || NEED_INSTALL=1

mkdir -p "$RUN/logs" "$RESULTS"
cleanup() {
  "$HERE/teardown.sh" 2>&1 | grep -v '^$' >&2 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- ringlb binary
if [[ -z "${RINGLB_BIN:-}" ]]; then
  blog "cargo build --release -p ringlb-proxy"
  (cd "$ROOT" && timeout 1800 cargo build --release -p ringlb-proxy 2>&1 | tail -3) >&2
  # A private copy: the workspace's binary may be rebuilt by someone else during the run.
  mkdir -p "$RUN/bin"
  cp "$ROOT/target/release/ringlb" "$RUN/bin/ringlb.new" && mv "$RUN/bin/ringlb.new" "$RUN/bin/ringlb"
  export RINGLB_BIN="$RUN/bin/ringlb"
  # What the binary was built from (the tree may move on during the run).
  BUILD_COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
  BUILD_DIRTY=$(git -C "$ROOT" status --porcelain -- proxy core control replica Cargo.lock 2>/dev/null | wc -l)
else
  BUILD_COMMIT="unknown ($RINGLB_BIN)"
  BUILD_DIRTY=0
fi
export BUILD_COMMIT BUILD_DIRTY
[[ -x "$RINGLB_BIN" ]] || { blog "RINGLB_BIN=$RINGLB_BIN is not an executable"; exit 1; }

# ---------------------------------------------------------------- the machine
machine_json() { # machine_json PHASE -> one JSON object (load, time, versions)
  python3 - "$1" <<EOF
import json, os, subprocess, sys
def sh(c):
    try:
        return subprocess.run(c + " 2>&1", shell=True, capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception as e:
        return str(e)
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mem = next((int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
def vulns():
    # The CPU flaws the kernel reports and how it mitigates them: they set the price of every
    # system call and context switch, and they differ from host to host.
    d = "/sys/devices/system/cpu/vulnerabilities"
    try:
        names = sorted(os.listdir(d))
    except OSError:
        return {}
    return {n: open(os.path.join(d, n)).read().strip() for n in names}
print(json.dumps({
  "phase": sys.argv[1],
  "time": sh("date -u +%Y-%m-%dT%H:%M:%SZ"),
  "loadavg": open("/proc/loadavg").read().split()[:3],
  "nproc": os.cpu_count(), "cpu": cpu, "mem_gib": round(mem / 1048576, 1),
  "kernel": sh("uname -r"),
  "haproxy": sh("haproxy -v | head -1"), "nginx": sh("nginx -v"), "wrk": sh("wrk -v | head -1"),
  "ringlb": sh("$RINGLB_BIN --version"), "rustc": sh("rustc --version"),
  "commit": os.environ.get("BUILD_COMMIT", "unknown"),
  "dirty": os.environ.get("BUILD_DIRTY", "0"),
  "nofile_hard": sh("ulimit -Hn"),
  "halt_poll_ns": sh("cat /sys/module/haltpoll/parameters/guest_halt_poll_ns"),
  "autogroup": sh("cat /proc/sys/kernel/sched_autogroup_enabled"),
  "mitigations": vulns(),
  "reps": int("$REPS"), "dur_s": int("$DUR"),
  "pin": {"server_cpus": "${SERVER_CPUS:-}", "client_cpus": "${CLIENT_CPUS:-}"},
  "steps": "$STEPS",
  "command": os.environ.get("COMMAND", ""),
}))
EOF
}
blog "start: $(uptime)"
FAILED=""
# run_step NAME CMD...: runs one step and records when it ran, on what, under which load.
run_step() {
  local name="$1" start end
  shift
  start=$(machine_json start)
  if ! "$@"; then
    blog "step $name FAILED"
    FAILED="$FAILED $name"
    return 0
  fi
  end=$(machine_json end)
  ((QUICK)) && return 0
  python3 - "$RESULTS/bench-machine.json" "$name" "$start" "$end" <<'EOF'
import json, os, sys
path, step = sys.argv[1], sys.argv[2]
d = json.load(open(path)) if os.path.exists(path) else {}
d[step] = {"start": json.loads(sys.argv[3]), "end": json.loads(sys.argv[4])}
json.dump(d, open(path, "w"), indent=1, sort_keys=True)
EOF
}

# ---------------------------------------------------------------- servers
if [[ -n "${NEED_INSTALL:-}" ]]; then
  blog "installing wrk haproxy nginx libnginx-mod-stream (setup.sh)"
else
  export NO_INSTALL=1
fi
"$HERE/setup.sh"

# ---------------------------------------------------------------- steps
if step matrix; then
  rm -f "$RESULTS/bench-matrix.tsv"
  RAWDIR="$RUN/raw" OUT="$RESULTS/bench-matrix.tsv" run_step matrix "$HERE/matrix.sh"
fi
if step profile; then
  PROFILE_DIR="$RESULTS/bench-profile" run_step profile "$HERE/profile.sh"
fi
if step memory; then
  OUT="$RESULTS/bench-memory.json" run_step memory "$HERE/memory.sh"
fi
if step control; then
  OUT="$RESULTS/bench-control.json" run_step control "$HERE/control.sh"
fi
"$HERE/teardown.sh" 2>/dev/null || true
if step ring; then
  OUT="$RESULTS/bench-ring.json" run_step ring "$HERE/ring.sh"
fi
blog "end: $(uptime)"

# ---------------------------------------------------------------- report
if ((QUICK)); then
  python3 "$HERE/summarize.py" --md "$RESULTS/bench.md" "$RESULTS/bench-matrix.tsv"
  cat "$RESULTS/bench.md"
  [[ -z "$FAILED" ]] || exit 1
  exit 0
fi
python3 "$HERE/report.py" --results "$RESULTS" $( ((DOCS)) && echo --doc "$ROOT/docs/benchmarks.md")
blog "results in $RESULTS$( ((DOCS)) && echo " and docs/benchmarks.md")"
if [[ -n "$FAILED" ]]; then
  blog "failed steps:$FAILED (their previous results, if any, stay in the doc)"
  exit 1
fi

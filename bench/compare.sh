#!/usr/bin/env bash
# Before and after: ringlb built from several git revisions, measured side by side with HAProxy
# and nginx in one run (interleaved repetitions, as bench/matrix.sh does).
#
#   bench/compare.sh REV [REV...]        e.g.  bench/compare.sh aed2abf HEAD
#
# Each revision is checked out into a temporary git worktree and built there
# (cargo build --release -p ringlb-proxy, one shared target directory under $RUN/compare); the
# worktree is removed again. Each binary runs as target `ringlb-<short sha>` (and, with AUTO=1,
# `ringlb-<short sha>-auto` with --splice auto) beside PEERS, in front of the same nginx backend.
# Prints the medians, spread and ratios (bench/summarize.py); the raw lines stay in
# $RUN/compare/compare.tsv. Stops every process it started on exit (bench/teardown.sh).
#
# Env: MODES="ka close", REPS=5, DUR=5, AUTO=0, PEERS="hap1-tcp hap1-tcpsplice ngx1-stream",
#      RUN, PORT_BASE, BACKEND_BASE (lib.sh); QUIET_WAIT, RETRIES (matrix.sh).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
source "$HERE/lib.sh"
(($#)) || { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2; }
(($# <= 9)) || { echo "compare.sh: at most 9 revisions" >&2; exit 2; }
MODES="${MODES:-ka close}"
export REPS="${REPS:-5}" DUR="${DUR:-5}"
PEERS="${PEERS:-hap1-tcp hap1-tcpsplice ngx1-stream}"
DIR="$RUN/compare"
mkdir -p "$DIR" "$RUN/logs"
trap '"$HERE/teardown.sh" >&2 || true' EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- one binary per revision
names=()
for rev in "$@"; do
  sha=$(git -C "$ROOT" rev-parse --short "$rev^{commit}")
  bin="$DIR/bin-$sha/ringlb" # named ringlb: teardown.sh stops only processes it recognises
  if [[ ! -x "$bin" ]]; then
    wt="$DIR/src-$sha"
    rm -rf "$wt"
    git -C "$ROOT" worktree add --quiet --detach "$wt" "$sha"
    blog "building $sha"
    (cd "$wt" && CARGO_TARGET_DIR="$DIR/target" timeout 1800 cargo build --release -q -p ringlb-proxy)
    mkdir -p "$(dirname "$bin")"
    cp "$DIR/target/release/ringlb" "$bin"
    git -C "$ROOT" worktree remove --force "$wt"
  fi
  names+=("$sha:$bin")
done

# ---------------------------------------------------------------- servers
[[ " $MODES " == *" bulk "* ]] || export SETUP_BIG=0
NO_RINGLB=1 "$HERE/setup.sh"
targets=""
i=0
for nb in "${names[@]}"; do
  sha="${nb%%:*}" bin="${nb#*:}"
  variants=("ringlb-$sha:")
  [[ "${AUTO:-0}" == 1 ]] && variants+=("ringlb-$sha-auto:--splice auto")
  for v in "${variants[@]}"; do
    name="${v%%:*}" flags="${v#*:}"
    port=$((PORT_BASE + 120 + i))
    i=$((i + 1))
    # shellcheck disable=SC2086 # flags are words
    RINGLB_BIN="$bin" start_ringlb "$name" "$port" $flags
    printf '%s\t%s\t%s.pid\t%s\n' "$name" "$port" "$name" "ringlb at $sha $flags" >>"$RUN/targets.tsv"
    targets="$targets $name"
  done
done

# ---------------------------------------------------------------- measure
OUT="$DIR/compare.tsv"
rm -f "$OUT"
MODES="$MODES" TARGETS="${targets# } $PEERS" OUT="$OUT" "$HERE/matrix.sh"
python3 "$HERE/summarize.py" "$OUT"

# Shared settings and helpers of the bench/ scripts (sourced, not run).
#
# Ports: the nginx backend listens on BACKEND_BASE, +1, +2 (default 18081-18083); the front
# proxies on PORT_BASE + n (default 27001-27017, ringlb 27100-27106, its control ports
# 27110-27116). Everything binds 127.0.0.1. Every process is started with its pid in $RUN/*.pid
# and stopped through that file only (bench/teardown.sh).

RUN="${RUN:-/tmp/ringlb-bench}"
BACKEND_BASE="${BACKEND_BASE:-18081}"
PORT_BASE="${PORT_BASE:-27000}"
B1=$BACKEND_BASE
B2=$((BACKEND_BASE + 1))
B3=$((BACKEND_BASE + 2))
P_RINGLB=$((PORT_BASE + 100))
P_RINGLB_W1=$((PORT_BASE + 101))
P_RINGLB_AUTO=$((PORT_BASE + 102))
P_MEM=$((PORT_BASE + 103))
P_CTL=$((PORT_BASE + 104))
P_RINGLB_BUSY=$((PORT_BASE + 105))
P_RINGLB_PIN=$((PORT_BASE + 106))
C_OFF=10 # control port = data port + C_OFF
export RUN BACKEND_BASE PORT_BASE

blog() { echo "[$(basename "$0" .sh) $(date +%H:%M:%S)] $*" >&2; }

alive() { # alive PIDFILE -> 0 if the pid in it is a live process
  [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

listening() { # listening PORT -> 0 if something accepts on 127.0.0.1:PORT
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

wait_port() { # wait_port PORT [tenths]: up to 5 s (or tenths/10 s) for a listener
  local i
  for ((i = 0; i < ${2:-50}; i++)); do
    listening "$1" && return 0
    sleep 0.1
  done
  blog "port $1 did not come up"
  return 1
}

port_free() { # port_free PORT: fail loudly when another process already listens there
  if listening "$1"; then
    blog "127.0.0.1:$1 is already in use (another bench run? set PORT_BASE/BACKEND_BASE)"
    return 1
  fi
}

# The ringlb binary: $RINGLB_BIN, else the workspace's release build.
ringlb_bin() {
  local root
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  echo "${RINGLB_BIN:-$root/target/release/ringlb}"
}

running() { # running PID -> 0 if it exists and is not a zombie waiting to be reaped
  local st
  st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  st="${st##*) }"
  [[ "${st:0:1}" != Z ]]
}

# stop_pidfile FILE: SIGTERM the pid in FILE (if it is still one of ours), wait <= 5 s, SIGKILL.
stop_pidfile() {
  local pf="$1" pid comm
  pid=$(cat "$pf" 2>/dev/null || true)
  if [[ -z "$pid" ]] || ! kill -0 "$pid" 2>/dev/null; then
    rm -f "$pf"
    return 0
  fi
  comm=$(cat "/proc/$pid/comm" 2>/dev/null || true)
  case "$comm" in
    nginx | haproxy | ringlb | python3 | wrk) ;;
    *)
      blog "$pf: pid $pid is '$comm', not ours; leaving it"
      rm -f "$pf"
      return 0
      ;;
  esac
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 50); do
    running "$pid" || break
    sleep 0.1
  done
  if running "$pid"; then
    kill -KILL "$pid" 2>/dev/null || true
    blog "SIGKILL $pid ($pf)"
  fi
  rm -f "$pf"
}

# start_ringlb NAME PORT [extra flags...]: a static-runtime ringlb in front of the three
# backends, pid in $RUN/NAME.pid, log in $RUN/logs/NAME.log. Pinned with SERVER_CPUS if set.
#
# ringlb runs in a session of its own (setsid), as HAProxy and nginx put themselves by
# daemonizing and as a service manager would. With the kernel's autogroup scheduling on
# (/proc/sys/kernel/sched_autogroup_enabled), a session is a scheduling group: a ringlb left in
# the benchmark's session shared one CPU share with wrk, and that alone cost it 3–14 % on ka
# (docs/benchmarks.md, "One scheduling group with wrk"). Without job control (a script), setsid
# does not fork, so $! stays ringlb's pid; start_ringlb checks that it does.
start_ringlb() {
  local name="$1" port="$2" pin=()
  shift 2
  if alive "$RUN/$name.pid"; then
    blog "$name already running (pid $(cat "$RUN/$name.pid"))"
    return 0
  fi
  port_free "$port" || return 1
  port_free $((port + C_OFF)) || return 1
  [[ -n "${SERVER_CPUS:-}" ]] && pin=(taskset -c "$SERVER_CPUS")
  "${pin[@]}" setsid "$(ringlb_bin)" --runtime static \
    --backend "b1=127.0.0.1:$B1" --backend "b2=127.0.0.1:$B2" --backend "b3=127.0.0.1:$B3" \
    --listen "127.0.0.1:$port" --control "127.0.0.1:$((port + C_OFF))" \
    --log warn --drain-timeout 1s "$@" \
    </dev/null >"$RUN/logs/$name.log" 2>&1 &
  echo $! >"$RUN/$name.pid"
  wait_port "$port" || return 1
  if [[ "$(ps -o sid= -p "$(cat "$RUN/$name.pid")" | tr -d ' ')" != "$(cat "$RUN/$name.pid")" ]]; then
    blog "$name: pid $(cat "$RUN/$name.pid") does not lead its own session (job control on?)"
    return 1
  fi
  # ready = the health checks have found a replica up
  for _ in $(seq 50); do
    curl -fsS -o /dev/null "http://127.0.0.1:$((port + C_OFF))/readyz" 2>/dev/null && break
    sleep 0.1
  done
  blog "$name started (pid $(cat "$RUN/$name.pid"), 127.0.0.1:$port)"
}

rss_kib() { # rss_kib PID -> VmRSS in KiB
  awk '/^VmRSS:/{print $2}' "/proc/$1/status"
}

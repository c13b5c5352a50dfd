#!/usr/bin/env bash
# Start what the benchmark measures, all on 127.0.0.1: the nginx backend (three listeners),
# HAProxy and nginx front proxies (one instance each with 1 thread/worker, one with the default
# count), and ringlb (static runtime, in front of the same backends) with default workers, with
# --workers 1, with --splice auto and with --busy-poll 1ms when the binary has those flags. Templates conf/* into $RUN;
# makes the 64 MiB file; checks every target with curl.
# Idempotent: a component whose pid file points at a live process is left alone.
# Stop everything with bench/teardown.sh (pid files only).
#
# Env: RUN (default /tmp/ringlb-bench), PORT_BASE, BACKEND_BASE (see lib.sh), SERVER_CPUS (pin
#      the servers with taskset), BACKEND_WORKERS=1, NO_INSTALL=1 (skip apt-get),
#      NO_RINGLB=1 (leave ringlb out), SETUP_BIG=0 (no 64 MiB file, no check of it per target).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/lib.sh"
CONF="$HERE/conf"
BACKEND_WORKERS="${BACKEND_WORKERS:-1}"
PIN=()
if [[ -n "${SERVER_CPUS:-}" ]]; then PIN=(taskset -c "$SERVER_CPUS"); fi

# ---------------------------------------------------------------- install
if [[ -z "${NO_INSTALL:-}" ]]; then
  need=()
  command -v wrk >/dev/null || need+=(wrk)
  command -v haproxy >/dev/null || need+=(haproxy)
  command -v nginx >/dev/null || need+=(nginx)
  [[ -f /usr/lib/nginx/modules/ngx_stream_module.so ]] || need+=(libnginx-mod-stream)
  command -v strace >/dev/null || need+=(strace) # bench/profile.sh
  command -v setsid >/dev/null || need+=(util-linux) # start_ringlb (bench/lib.sh)
  command -v ps >/dev/null || need+=(procps)         # start_ringlb, measure.sh
  if ((${#need[@]})); then
    blog "apt-get install ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
fi

mkdir -p "$RUN/www" "$RUN/tmp" "$RUN/logs"
chmod 755 "$RUN" "$RUN/www"
chmod 777 "$RUN/tmp" # nginx workers run as nobody

# ---------------------------------------------------------------- 64 MiB file
BIG="$RUN/www/big"
if [[ "${SETUP_BIG:-1}" != 0 ]] && [[ ! -f "$BIG" || $(stat -c %s "$BIG") -ne 67108864 ]]; then
  blog "generating $BIG (64 MiB)"
  head -c 67108864 /dev/urandom >"$BIG"
fi
[[ -f "$BIG" ]] && chmod 644 "$BIG"

tmpl() { # tmpl SRC DST key=value...
  local src="$1" dst="$2"
  shift 2
  local args=(-e "s|@RUN@|$RUN|g" -e "s|@B1@|$B1|g" -e "s|@B2@|$B2|g" -e "s|@B3@|$B3|g")
  for kv in "$@"; do args+=(-e "s|@${kv%%=*}@|${kv#*=}|g"); done
  sed "${args[@]}" "$src" >"$dst"
}
P() { echo $((PORT_BASE + $1)); }

start_nginx() { # start_nginx NAME CONF PIDFILE PORT...
  local name="$1" conf="$2" pf="$3" p
  shift 3
  if alive "$pf"; then
    blog "$name already running (pid $(cat "$pf"))"
    return
  fi
  for p in "$@"; do port_free "$p"; done
  nginx -q -t -c "$conf" -e "$RUN/logs/$name.stderr.log"
  "${PIN[@]}" nginx -c "$conf" -e "$RUN/logs/$name.stderr.log"
  for _ in $(seq 50); do alive "$pf" && break; sleep 0.1; done
  blog "$name started (pid $(cat "$pf"))"
}

start_haproxy() { # start_haproxy NAME CFG PIDFILE PORT...
  local name="$1" cfg="$2" pf="$3" p
  shift 3
  if alive "$pf"; then
    blog "$name already running (pid $(cat "$pf"))"
    return
  fi
  for p in "$@"; do port_free "$p"; done
  haproxy -q -c -f "$cfg"
  "${PIN[@]}" haproxy -f "$cfg" >"$RUN/logs/$name.log" 2>&1
  for _ in $(seq 50); do alive "$pf" && break; sleep 0.1; done
  blog "$name started (pid $(cat "$pf"))"
}

# ---------------------------------------------------------------- backend
tmpl "$CONF/backend.nginx.conf" "$RUN/backend.conf" "WORKERS=$BACKEND_WORKERS"
start_nginx backend "$RUN/backend.conf" "$RUN/backend.pid" "$B1" "$B2" "$B3"
for p in "$B1" "$B2" "$B3"; do wait_port "$p"; done

# ---------------------------------------------------------------- HAProxy
tmpl "$CONF/proxy.haproxy.cfg" "$RUN/haproxy-1t.cfg" NAME=1t "NBTHREAD_LINE=nbthread 1" \
  "P_TCP=$(P 1)" "P_TCP_SPLICE=$(P 2)" "P_HTTP=$(P 3)" "P_HTTP_SPLICE=$(P 4)" "P_TCP_FORCE=$(P 7)"
tmpl "$CONF/proxy.haproxy.cfg" "$RUN/haproxy-def.cfg" NAME=def "NBTHREAD_LINE=# nbthread: default" \
  "P_TCP=$(P 11)" "P_TCP_SPLICE=$(P 12)" "P_HTTP=$(P 13)" "P_HTTP_SPLICE=$(P 14)" "P_TCP_FORCE=$(P 17)"
start_haproxy haproxy-1t "$RUN/haproxy-1t.cfg" "$RUN/haproxy-1t.pid" "$(P 1)" "$(P 2)" "$(P 3)" "$(P 4)" "$(P 7)"
start_haproxy haproxy-def "$RUN/haproxy-def.cfg" "$RUN/haproxy-def.pid" "$(P 11)" "$(P 12)" "$(P 13)" "$(P 14)" "$(P 17)"

# ---------------------------------------------------------------- nginx proxies
tmpl "$CONF/proxy.nginx.conf" "$RUN/nginx-1w.conf" NAME=1w WORKERS=1 "P_STREAM=$(P 5)" "P_HTTP=$(P 6)"
tmpl "$CONF/proxy.nginx.conf" "$RUN/nginx-def.conf" NAME=def WORKERS=auto "P_STREAM=$(P 15)" "P_HTTP=$(P 16)"
start_nginx nginx-1w "$RUN/nginx-1w.conf" "$RUN/nginx-1w.pid" "$(P 5)" "$(P 6)"
start_nginx nginx-def "$RUN/nginx-def.conf" "$RUN/nginx-def.pid" "$(P 15)" "$(P 16)"

# ---------------------------------------------------------------- ringlb
if [[ -z "${NO_RINGLB:-}" ]]; then
  [[ -x "$(ringlb_bin)" ]] || { blog "no ringlb binary at $(ringlb_bin) (cargo build --release -p ringlb-proxy)"; exit 1; }
  start_ringlb ringlb "$P_RINGLB"
  start_ringlb ringlb-w1 "$P_RINGLB_W1" --workers 1
  if "$(ringlb_bin)" --help 2>/dev/null | grep -q -- '--splice <'; then
    start_ringlb ringlb-auto "$P_RINGLB_AUTO" --splice auto
  else
    blog "this ringlb has no --splice flag: no ringlb-auto target"
  fi
  if "$(ringlb_bin)" --help 2>/dev/null | grep -q -- '--busy-poll <'; then
    start_ringlb ringlb-busy "$P_RINGLB_BUSY" --busy-poll 1ms
  else
    blog "this ringlb has no --busy-poll flag: no ringlb-busy target"
  fi
  if "$(ringlb_bin)" --help 2>/dev/null | grep -q -- '--pin-workers'; then
    start_ringlb ringlb-pin "$P_RINGLB_PIN" --pin-workers
  else
    blog "this ringlb has no --pin-workers flag: no ringlb-pin target"
  fi
fi

# ---------------------------------------------------------------- targets + smoke test
tmpl "$CONF/targets.tsv" "$RUN/targets.tsv"
for n in 1 2 3 4 5 6 7 11 12 13 14 15 16 17 100 101 102 105 106; do
  sed -i "s|@P+$n@|$(P "$n")|g" "$RUN/targets.tsv"
done
fail=0
while IFS=$'\t' read -r name port _pf _desc; do
  [[ -z "$name" || "$name" == \#* ]] && continue
  if ! listening "$port"; then
    blog "skip $name: nothing on 127.0.0.1:$port"
    continue
  fi
  # (retried: on a busy machine a full connection-tracking table drops SYNs for a while)
  for _ in 1 2 3; do
    body=$(curl -s --max-time 5 "http://127.0.0.1:$port/smoke?rid=123456" || true)
    [[ "$body" == backend* ]] && break
    sleep 1
  done
  size=67108864
  if [[ "${SETUP_BIG:-1}" != 0 ]]; then
    size=$(curl -s --max-time 20 --retry 2 -o /dev/null -w '%{size_download}' "http://127.0.0.1:$port/big" || true)
  fi
  if [[ "$body" == backend* && "$size" == 67108864 ]]; then
    blog "ok   $name :$port -> ${body%% ok*}"
  else
    blog "FAIL $name :$port body='$body' big=$size"
    fail=1
  fi
done <"$RUN/targets.tsv"
exit $fail

#!/usr/bin/env bash
# Baseline of the data plane: nginx, HAProxy and `turnout proxy` with the
# same 90/10 split over two loopback backends, one worker each, measured
# with wrk in interleaved rounds. Prints requests/s, p50, p99, proxy CPU
# microseconds per request, the ratios turnout/nginx and turnout/direct, a
# split-accuracy count, and failed requests while the weights are
# rewritten 200 times under load.
#
# Everything runs on 127.0.0.1 and stops by itself. Knobs (environment):
#   DURATION  seconds per wrk run (default 5)
#   ROUNDS    interleaved rounds (default 3)
#   CONNS     wrk connections (default 32)
#   TURNOUT_BASE  another turnout binary (say, built from the previous
#             commit) run as "base" in the same interleaved rounds, so the
#             change is compared within one run
#   CALLGRIND=1   also print instructions and allocations per request
#             (bench/callgrind.sh, fixed request count) for turnout and,
#             if given, TURNOUT_BASE
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-32}
HOST=app.localhost

need=()
for tool in nginx haproxy wrk python3; do
  command -v "$tool" >/dev/null 2>&1 || need+=("$tool")
done
if ((${#need[@]})); then
  echo "installing ${need[*]} from apt" >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

echo "building turnout (release)" >&2
cargo build --release -q -p turnout
TURNOUT=$PWD/target/release/turnout

WORK=$(mktemp -d /tmp/turnout-bench.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
B1=$(free_port); B2=$(free_port); NGINX=$(free_port); HAPROXY=$(free_port)

wait_port() {
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on port $1" >&2
  return 1
}

# Two backends: one nginx instance serving "v1" and "v2" (fast and equal for
# every proxy under test).
cat >"$WORK/backends.conf" <<CONF
worker_processes 1;
pid $WORK/backends.pid;
error_log $WORK/backends.err;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$B1; location / { return 200 "v1"; } }
  server { listen 127.0.0.1:$B2; location / { return 200 "v2"; } }
}
CONF
nginx -c "$WORK/backends.conf" -g 'daemon off;' & PIDS+=($!)

cat >"$WORK/nginx.conf" <<CONF
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx.err;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream app { server 127.0.0.1:$B1 weight=9; server 127.0.0.1:$B2 weight=1; keepalive 64; }
  server {
    listen 127.0.0.1:$NGINX;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
CONF
nginx -c "$WORK/nginx.conf" -g 'daemon off;' & NGINX_PID=$!; PIDS+=($NGINX_PID)

cat >"$WORK/haproxy.cfg" <<CONF
global
  nbthread 1
defaults
  mode http
  timeout connect 3s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend web
  bind 127.0.0.1:$HAPROXY
  default_backend app
backend app
  balance roundrobin
  server v1 127.0.0.1:$B1 weight 90
  server v2 127.0.0.1:$B2 weight 10
CONF
haproxy -f "$WORK/haproxy.cfg" -db & HAPROXY_PID=$!; PIDS+=($HAPROXY_PID)

# Written to a temporary file and renamed, so no reader sees half a file.
routes() {
  cat >"$WORK/routes.yaml.tmp" <<CONF
routes:
  - host: $HOST
    sticky: off
    health: { interval_ms: 60000 }
    services:
      - { name: v1, weight: $1, endpoints: ["127.0.0.1:$B1"] }
      - { name: v2, weight: $2, endpoints: ["127.0.0.1:$B2"] }
CONF
  mv "$WORK/routes.yaml.tmp" "$WORK/routes.yaml"
}
routes 90 10
"$TURNOUT" proxy --config "$WORK/routes.yaml" --listen 127.0.0.1:0 --internal-listen 127.0.0.1:0 \
  --admin 127.0.0.1:0 --workers 1 >"$WORK/turnout.out" 2>"$WORK/turnout.err" & TURNOUT_PID=$!; PIDS+=($TURNOUT_PID)
for _ in $(seq 1 100); do grep -q 'turnout listening' "$WORK/turnout.out" && break; sleep 0.05; done
TURNOUT_PORT=$(sed -n 's/.*public=127.0.0.1:\([0-9]*\).*/\1/p' "$WORK/turnout.out")
for port in "$B1" "$B2" "$NGINX" "$HAPROXY" "$TURNOUT_PORT"; do wait_port "$port"; done
order=(direct nginx haproxy turnout)
if [ -n "${TURNOUT_BASE:-}" ]; then
  "$TURNOUT_BASE" proxy --config "$WORK/routes.yaml" --listen 127.0.0.1:0 --internal-listen 127.0.0.1:0 \
    --admin 127.0.0.1:0 --workers 1 >"$WORK/base.out" 2>"$WORK/base.err" & BASE_PID=$!; PIDS+=($BASE_PID)
  for _ in $(seq 1 100); do grep -q 'turnout listening' "$WORK/base.out" && break; sleep 0.05; done
  BASE_PORT=$(sed -n 's/.*public=127.0.0.1:\([0-9]*\).*/\1/p' "$WORK/base.out")
  wait_port "$BASE_PORT"
  order+=(base)
fi

# CPU time (user+system, in clock ticks) of a process and its children.
ticks() {
  local total=0 pid
  for pid in "$1" $(pgrep -P "$1" || true); do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
  done
  echo "$total"
}
HZ=$(getconf CLK_TCK)

# run NAME PORT PID -> appends "rps p50_us p99_us cpu_us_per_req" to $WORK/NAME
run() {
  local name=$1 port=$2 pid=$3 before after out rps reqs p50 p99 cpu
  before=$([ -n "$pid" ] && ticks "$pid" || echo 0)
  out=$(wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -H "Host: $HOST" "http://127.0.0.1:$port/")
  after=$([ -n "$pid" ] && ticks "$pid" || echo 0)
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  cpu=$(python3 -c "print(round(($after-$before)/$HZ*1e6/max($reqs,1),1))")
  echo "$rps $(to_us "$p50") $(to_us "$p99") $cpu" >>"$WORK/$name"
  if grep -q 'Non-2xx\|Socket errors' <<<"$out"; then
    echo "  $name: $(grep 'Non-2xx\|Socket errors' <<<"$out" | tr -s ' ')" >&2
  fi
}
to_us() { python3 -c "
import re,sys; v=sys.argv[1]; m=re.match(r'([0-9.]+)(us|ms|s)',v)
print(round(float(m.group(1))*{'us':1,'ms':1e3,'s':1e6}[m.group(2)],1) if m else 'nan')" "$1"; }

echo "wrk: ${ROUNDS} interleaved rounds x ${DURATION}s, ${CONNS} connections, 1 thread" >&2
for round in $(seq 1 "$ROUNDS"); do
  echo "round $round" >&2
  for i in "${!order[@]}"; do
    name=${order[$(((i + round) % ${#order[@]}))]}
    case $name in
      direct) run direct "$B1" "" ;;
      nginx) run nginx "$NGINX" "$NGINX_PID" ;;
      haproxy) run haproxy "$HAPROXY" "$HAPROXY_PID" ;;
      turnout) run turnout "$TURNOUT_PORT" "$TURNOUT_PID" ;;
      base) run base "$BASE_PORT" "$BASE_PID" ;;
    esac
  done
done

# Split accuracy: count bodies over a bounded run with a wrk Lua script.
cat >"$WORK/count.lua" <<'LUA'
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init() v1 = 0; v2 = 0 end
function response(status, headers, body)
  if body == "v1" then v1 = v1 + 1 elseif body == "v2" then v2 = v2 + 1 end
end
function done()
  local a, b = 0, 0
  for _, t in ipairs(threads) do a = a + t:get("v1"); b = b + t:get("v2") end
  io.write(string.format("SPLIT %d %d\n", a, b))
end
LUA
split() {
  wrk -t1 -c"$CONNS" -d2s -s "$WORK/count.lua" -H "Host: $HOST" "http://127.0.0.1:$1/" | awk '/^SPLIT/ {print $2, $3}'
}

# 200 weight rewrites under load: rewrite the file and SIGHUP, while wrk runs.
reload_run() {
  local out rewrites=0
  wrk -t1 -c"$CONNS" -d"$((DURATION * 2))s" -H "Host: $HOST" "http://127.0.0.1:$TURNOUT_PORT/" >"$WORK/reload.wrk" &
  local wrk_pid=$!
  sleep 0.2
  for i in $(seq 1 200); do
    if ((i % 2)); then routes 10 90; else routes 90 10; fi
    kill -HUP "$TURNOUT_PID"
    rewrites=$((rewrites + 1))
    sleep "$(python3 -c "print(max(0.005, ($DURATION * 2 - 0.5) / 200))")"
  done
  wait "$wrk_pid"
  out=$(cat "$WORK/reload.wrk")
  local total non2xx errors
  total=$(awk '/requests in/ {print $1}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out"); non2xx=${non2xx:-0}
  errors=$(awk -F'[ ,]+' '/Socket errors/ {print $4+$6+$8+$10}' <<<"$out"); errors=${errors:-0}
  echo "$rewrites $(grep -c 'reloaded routes' "$WORK/turnout.err") $total $non2xx $errors"
}

summary() {
  python3 - "$WORK" "$@" <<'PY'
import os, statistics, sys
work = sys.argv[1]
rows = {}
for name in ["direct", "nginx", "haproxy", "turnout", "base"]:
    if name == "base" and not os.path.exists(f"{work}/base"):
        continue
    runs = [list(map(float, l.split())) for l in open(f"{work}/{name}")]
    rows[name] = [statistics.median(c) for c in zip(*runs)]
print(f"{'':9} {'req/s':>10} {'p50 µs':>8} {'p99 µs':>8} {'CPU µs/req':>11}")
for name, (rps, p50, p99, cpu) in rows.items():
    cpu_s = "-" if name == "direct" else f"{cpu:.1f}"
    print(f"{name:9} {rps:10.0f} {p50:8.0f} {p99:8.0f} {cpu_s:>11}")
t, n, d = rows["turnout"][0], rows["nginx"][0], rows["direct"][0]
print(f"ratio turnout/nginx   req/s {t / n:.2f}   CPU/req {rows['turnout'][3] / rows['nginx'][3]:.2f}")
print(f"ratio turnout/direct  req/s {t / d:.2f}")
if "base" in rows:
    b = rows["base"]
    print(f"ratio base/nginx      req/s {b[0] / n:.2f}   CPU/req {b[3] / rows['nginx'][3]:.2f}")
    print(f"ratio turnout/base    req/s {t / b[0]:.2f}   CPU/req {rows['turnout'][3] / b[3]:.2f}   p99 {rows['turnout'][2] / b[2]:.2f}")
PY
}

echo
echo "== throughput and latency (median of $ROUNDS rounds)"
summary
echo
echo "== split accuracy at 90/10 (cookie-less wrk requests, 2 s each)"
for pair in "nginx $NGINX" "haproxy $HAPROXY" "turnout $TURNOUT_PORT"; do
  set -- $pair
  read -r a b <<<"$(split "$2")"
  python3 -c "a,b=$a,$b; print(f'{\"$1\":9} v1={a} v2={b} v1 share={100*a/max(a+b,1):.2f}%')"
done
echo
echo "== 200 weight rewrites (file + SIGHUP) under load, turnout"
read -r rewrites reloads total non2xx errors <<<"$(reload_run)"
echo "rewrites=$rewrites reloads_logged=$reloads requests=$total non_2xx=$non2xx socket_errors=$errors"
if grep -q 'rejected route file' "$WORK/turnout.err"; then grep 'rejected route file' "$WORK/turnout.err" | head -3; fi

if [ "${CALLGRIND:-0}" = 1 ]; then
  echo
  echo "== instructions and allocations per request (valgrind, fixed count; see bench/callgrind.sh)"
  for pair in "turnout $TURNOUT" ${TURNOUT_BASE:+"base $TURNOUT_BASE"}; do
    set -- $pair
    ir=$(bench/callgrind.sh "$2" | awk '/^instructions\/request/ {print $2}')
    allocs=$(TOOL=dhat bench/callgrind.sh "$2" | awk '/^allocations\/request/ {print $2}')
    echo "$1 instructions/request=$ir allocations/request=$allocs"
  done
fi

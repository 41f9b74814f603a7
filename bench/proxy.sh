#!/usr/bin/env bash
# Baseline of the data plane: nginx, HAProxy and `turnout proxy` with the
# same 90/10 split over two loopback backends, one worker each, measured
# with wrk in interleaved rounds. Prints requests/s, p50, p99, proxy CPU
# microseconds per request, the ratios turnout/nginx and turnout/direct, a
# split-accuracy count, and failed requests while the weights are
# rewritten 200 times under load.
#
# "turnout" is the like-for-like setting (`sticky: off`: every request is
# weighted anew, no cookies). The cost of stickiness is measured beside it,
# in the same rounds, by turnout processes whose route is `sticky: version`
# or `sticky: instance`, each loaded two ways:
#   version/new, instance/new    wrk as it is, without cookies: every
#       request is a client's first visit, so every response carries
#       Set-Cookie (position; for instance also the pin) — the most a
#       sticky route costs per request
#   version/cookie, instance/cookie    every request replays the cookies
#       the route set on one first response (fetched before the rounds,
#       sent by wrk as a fixed Cookie header): a returning browser, routed
#       by its position (version) or pin (instance), no Set-Cookie. All
#       connections carry the same cookies, so they all go to one service
#       (and, for instance, one instance).
#
# Everything runs on 127.0.0.1 and stops by itself. Knobs (environment):
#   DURATION  seconds per wrk run (default 5)
#   ROUNDS    interleaved rounds (default 3)
#   CONNS     wrk connections (default 32)
#   STICKY=0  skip the version/instance runs (default 1: run them)
#   WORKERS   turnout --workers (default 1, as nginx and HAProxy)
#   TURNOUT   a turnout binary to test instead of building
#             target/release/turnout from the working tree
#   BASE_REV  a git revision (say HEAD~1): turnout is built at it, in a
#             worktree under /tmp/turnout-base with its own target
#             directory (the binary is cached per commit), and run as
#             "base" in the same interleaved rounds
#   TURNOUT_BASE  the same with a turnout binary you built yourself
#   CALLGRIND=1   also print instructions and allocations per request
#             (bench/callgrind.sh, fixed request count) for turnout, the
#             sticky routes (without and with cookies) and the base
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh

DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-32}
STICKY=${STICKY:-1}
if [ -n "${BASE_REV:-}" ] && [ -n "${TURNOUT_BASE:-}" ]; then
  echo "set BASE_REV or TURNOUT_BASE, not both" >&2
  exit 2
fi

bench_need nginx haproxy wrk python3
build_turnout
BASE_LABEL=
if [ -n "${BASE_REV:-}" ]; then
  # Resolved once: HEAD may move while the base builds.
  BASE_SHA=$(git rev-parse --verify --quiet "$BASE_REV^{commit}") || {
    echo "BASE_REV=$BASE_REV is not a commit" >&2
    exit 2
  }
  TURNOUT_BASE=$(build_base_rev "$BASE_SHA")
  BASE_LABEL="$BASE_REV = ${BASE_SHA:0:10} ($(git log -1 --format=%s "$BASE_SHA" | cut -c1-60))"
elif [ -n "${TURNOUT_BASE:-}" ]; then
  TURNOUT_BASE=$(realpath "$TURNOUT_BASE")
  BASE_LABEL=$TURNOUT_BASE
fi

bench_init bench
B1=$(free_port); B2=$(free_port); NGINX=$(free_port); HAPROXY=$(free_port)
start_backends "$B1" "$B2"
start_nginx_proxy "$NGINX" "$B1" "$B2"
start_haproxy "$HAPROXY" "$B1" "$B2"
for port in "$B1" "$B2" "$NGINX" "$HAPROXY"; do wait_port "$port"; done

# Each measured thing: its port, the process whose CPU is counted, and
# extra wrk arguments.
declare -A PORT=([direct]=$B1 [nginx]=$NGINX [haproxy]=$HAPROXY) PID=([direct]="" [nginx]=$NGINX_PID [haproxy]=$HAPROXY_PID) ARGS=()
order=(direct nginx haproxy turnout)

# The route file of the `sticky: off` turnout is rewritten by the reload run.
routes() { write_routes "$WORK/routes.yaml" off "$1" "$2" "$B1" "$B2"; }
routes 90 10
start_turnout turnout "$TURNOUT" "$WORK/routes.yaml"
PORT[turnout]=$STARTED_PORT PID[turnout]=$STARTED_PID
TURNOUT_PID=$STARTED_PID TURNOUT_PORT=$STARTED_PORT

if [ "$STICKY" = 1 ]; then
  for mode in version instance; do
    write_routes "$WORK/routes-$mode.yaml" "$mode" 90 10 "$B1" "$B2"
    start_turnout "$mode" "$TURNOUT" "$WORK/routes-$mode.yaml"
    cookie=$(response_cookies "$STARTED_PORT")
    [ -n "$cookie" ] || { echo "sticky: $mode set no cookie" >&2; exit 1; }
    again=$(response_cookies "$STARTED_PORT" "$cookie")
    echo "sticky: $mode, first visit sets: $cookie; replayed, sets: ${again:-nothing}" >&2
    PORT[$mode/new]=$STARTED_PORT PID[$mode/new]=$STARTED_PID ARGS[$mode/new]=""
    PORT[$mode/cookie]=$STARTED_PORT PID[$mode/cookie]=$STARTED_PID ARGS[$mode/cookie]="Cookie: $cookie"
    order+=("$mode/new" "$mode/cookie")
  done
fi
if [ -n "${TURNOUT_BASE:-}" ]; then
  # Its own copy: the reload run rewrites only turnout's file.
  write_routes "$WORK/routes-base.yaml" off 90 10 "$B1" "$B2"
  start_turnout base "$TURNOUT_BASE" "$WORK/routes-base.yaml"
  PORT[base]=$STARTED_PORT PID[base]=$STARTED_PID
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

# run NAME -> appends "rps p50_us p99_us cpu_us_per_req" to $WORK/NAME
# (with "/" as "-").
run() {
  local name=$1 port=${PORT[$1]} pid=${PID[$1]} before after out rps reqs p50 p99 cpu
  local extra=()
  if [ -n "${ARGS[$1]:-}" ]; then extra=(-H "${ARGS[$1]}"); fi
  before=$([ -n "$pid" ] && ticks "$pid" || echo 0)
  out=$(wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -H "Host: $HOST" "${extra[@]}" "http://127.0.0.1:$port/")
  after=$([ -n "$pid" ] && ticks "$pid" || echo 0)
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  cpu=$(python3 -c "print(round(($after-$before)/$HZ*1e6/max($reqs,1),1))")
  echo "$rps $(to_us "$p50") $(to_us "$p99") $cpu" >>"$WORK/${name//\//-}"
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
    run "${order[$(((i + round) % ${#order[@]}))]}"
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
  python3 - "$WORK" "$BASE_LABEL" "${order[@]}" <<'PY'
import statistics, sys
work, base_label, names = sys.argv[1], sys.argv[2], sys.argv[3:]
rows = {}
for name in names:
    runs = [list(map(float, l.split())) for l in open(f"{work}/{name.replace('/', '-')}")]
    rows[name] = [statistics.median(c) for c in zip(*runs)]
print(f"{'':16} {'req/s':>10} {'p50 µs':>8} {'p99 µs':>8} {'CPU µs/req':>11}")
for name, (rps, p50, p99, cpu) in rows.items():
    cpu_s = "-" if name == "direct" else f"{cpu:.1f}"
    print(f"{name:16} {rps:10.0f} {p50:8.0f} {p99:8.0f} {cpu_s:>11}")
t, n, d = rows["turnout"], rows["nginx"], rows["direct"]
print(f"ratio turnout/nginx   req/s {t[0] / n[0]:.2f}   CPU/req {t[3] / n[3]:.2f}")
print(f"ratio turnout/direct  req/s {t[0] / d[0]:.2f}")
sticky = [name for name in names if "/" in name]
if sticky:
    print("relative to turnout (sticky: off):")
for name in sticky:
    s = rows[name]
    print(f"  {name:19} req/s {s[0] / t[0]:.2f}   CPU/req {s[3] / t[3]:.2f}   p99 {s[2] / t[2]:.2f}")
if "base" in rows:
    b = rows["base"]
    print(f"base: {base_label}")
    print(f"ratio base/nginx      req/s {b[0] / n[0]:.2f}   CPU/req {b[3] / n[3]:.2f}")
    print(f"ratio turnout/base    req/s {t[0] / b[0]:.2f}   CPU/req {t[3] / b[3]:.2f}   p99 {t[2] / b[2]:.2f}")
PY
}

echo
echo "== throughput and latency (median of $ROUNDS rounds)"
summary
echo
echo "== split accuracy at 90/10 (cookie-less wrk requests, 2 s each)"
for name in nginx haproxy turnout; do
  read -r a b <<<"$(split "${PORT[$name]}")"
  python3 -c "a,b=$a,$b; print(f'{\"$name\":9} v1={a} v2={b} v1 share={100*a/max(a+b,1):.2f}%')"
done
echo
echo "== 200 weight rewrites (file + SIGHUP) under load, turnout"
read -r rewrites reloads total non2xx errors <<<"$(reload_run)"
echo "rewrites=$rewrites reloads_logged=$reloads requests=$total non_2xx=$non2xx socket_errors=$errors"
if grep -q 'rejected route file' "$WORK/turnout.err"; then grep 'rejected route file' "$WORK/turnout.err" | head -3; fi

if [ "${CALLGRIND:-0}" = 1 ]; then
  echo
  echo "== instructions and allocations per request (valgrind, fixed count; see bench/callgrind.sh)"
  # name binary sticky cookies
  cg_runs=("turnout $TURNOUT off none")
  if [ "$STICKY" = 1 ]; then
    for mode in version instance; do
      cg_runs+=("$mode/new $TURNOUT $mode none" "$mode/cookie $TURNOUT $mode replay")
    done
  fi
  if [ -n "${TURNOUT_BASE:-}" ]; then cg_runs+=("base $TURNOUT_BASE off none"); fi
  for cg in "${cg_runs[@]}"; do
    read -r name binary sticky cookies <<<"$cg"
    ir=$(STICKY=$sticky COOKIES=$cookies bench/callgrind.sh "$binary" | awk '/^instructions\/request/ {print $2}')
    allocs=$(STICKY=$sticky COOKIES=$cookies TOOL=dhat bench/callgrind.sh "$binary" | awk '/^allocations\/request/ {print $2}')
    printf '%-16s instructions/request=%s allocations/request=%s\n' "$name" "$ir" "$allocs"
  done
  if [ -n "$BASE_LABEL" ]; then echo "base: $BASE_LABEL"; fi
fi

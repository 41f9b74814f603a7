# shellcheck shell=bash
# Shared by bench/proxy.sh, bench/callgrind.sh and bench/idle.sh (sourced,
# not run): the loopback backends, the route file, the nginx and HAProxy
# proxy configurations, starting turnout, and process bookkeeping.
#
# A script sources this from the repository root, calls `bench_init NAME`
# (a work directory $WORK and an EXIT trap that stops every process in
# $PIDS), and starts what it needs. Everything listens on 127.0.0.1.

# The host every route, proxy and client uses.
HOST=app.localhost

# bench_need TOOL... — installs the missing ones from apt (the package is
# named as the tool for all we use).
bench_need() {
  local need=() tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || need+=("$tool")
  done
  if ((${#need[@]})); then
    echo "installing ${need[*]} from apt" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
}

# bench_init NAME — $WORK (removed at exit), $PIDS (stopped at exit). A
# script that needs more at exit defines bench_at_exit, which runs after
# the processes are stopped and before $WORK is removed.
bench_init() {
  WORK=$(mktemp -d "/tmp/turnout-$1.XXXXXX")
  PIDS=()
  trap bench_cleanup EXIT
}
bench_cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if declare -F bench_at_exit >/dev/null; then bench_at_exit || true; fi
  rm -rf "$WORK"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_port PORT — until something accepts on 127.0.0.1:PORT (5 s at most).
wait_port() {
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on port $1" >&2
  return 1
}

# start_backends B1 B2 [WORKER_CONNECTIONS] — one nginx instance serving
# "v1" on B1 and "v2" on B2 (fast and equal for every proxy under test).
start_backends() {
  cat >"$WORK/backends.conf" <<CONF
worker_processes 1;
pid $WORK/backends.pid;
error_log $WORK/backends.err;
events { worker_connections ${3:-4096}; }
http {
  access_log off;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$1; location / { return 200 "v1"; } }
  server { listen 127.0.0.1:$2; location / { return 200 "v2"; } }
}
CONF
  nginx -c "$WORK/backends.conf" -g 'daemon off;' &
  PIDS+=($!)
}

# write_routes FILE STICKY W1 W2 B1 B2 — a route file for $HOST: services
# v1 (weight W1, backend B1) and v2 (W2, B2); with AB_GOAL set (a path),
# the route has that A/B goal (needs a sticky route). Written to a
# temporary file and renamed, so no reader sees half a file.
write_routes() {
  local goal=
  if [ -n "${AB_GOAL:-}" ]; then goal="    ab_goal: { path: $AB_GOAL }"; fi
  cat >"$1.tmp" <<CONF
routes:
  - host: $HOST
    sticky: $2
$goal
    health: { interval_ms: 60000 }
    services:
      - { name: v1, weight: $3, endpoints: ["127.0.0.1:$5"] }
      - { name: v2, weight: $4, endpoints: ["127.0.0.1:$6"] }
CONF
  mv "$1.tmp" "$1"
}

# start_nginx_proxy PORT B1 B2 [WORKER_CONNECTIONS] — nginx as a proxy with
# the same 90/10 split, one worker, keep-alive upstream connections. Sets
# NGINX_PID (the master; its one worker is its child).
start_nginx_proxy() {
  cat >"$WORK/nginx.conf" <<CONF
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx.err;
events { worker_connections ${4:-4096}; }
http {
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  upstream app { server 127.0.0.1:$2 weight=9; server 127.0.0.1:$3 weight=1; keepalive 64; }
  server {
    listen 127.0.0.1:$1;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
CONF
  nginx -c "$WORK/nginx.conf" -g 'daemon off;' &
  NGINX_PID=$!
  PIDS+=("$NGINX_PID")
}

# start_haproxy PORT B1 B2 [MAXCONN] — HAProxy with the same split, one
# thread, server connections reused. MAXCONN (default: HAProxy's own, from
# the file limit) bounds client connections. HAProxy wants two descriptors
# per connection (client and server) and by default refuses to start when
# the file limit is lower; idle clients hold no server connection, so with
# MAXCONN that check is made a warning (`no strict-limits`). Sets
# HAPROXY_PID.
start_haproxy() {
  local maxconn=${4:+  maxconn $4} limits=${4:+  no strict-limits}
  cat >"$WORK/haproxy.cfg" <<CONF
global
  nbthread 1
$maxconn
$limits
defaults
  mode http
$maxconn
  timeout connect 3s
  timeout client 30s
  timeout server 30s
  timeout http-keep-alive 120s
  http-reuse always
frontend web
  bind 127.0.0.1:$1
  default_backend app
backend app
  balance roundrobin
  server v1 127.0.0.1:$2 weight 90
  server v2 127.0.0.1:$3 weight 10
CONF
  haproxy -f "$WORK/haproxy.cfg" -db >"$WORK/haproxy.log" 2>&1 &
  HAPROXY_PID=$!
  PIDS+=("$HAPROXY_PID")
}

# turnout_port OUTFILE TRIES — waits (TRIES x 0.1 s) for `turnout proxy`
# to print its addresses to OUTFILE and prints the public port.
turnout_port() {
  for _ in $(seq 1 "$2"); do grep -q 'turnout listening' "$1" && break; sleep 0.1; done
  sed -n 's/.*public=127.0.0.1:\([0-9]*\).*/\1/p' "$1"
}

# start_turnout NAME BINARY ROUTES — `turnout proxy --workers ${WORKERS:-1}`
# on free ports; output in $WORK/NAME.out and .err. Sets STARTED_PID and
# STARTED_PORT.
start_turnout() {
  "$2" proxy --config "$3" --listen 127.0.0.1:0 --internal-listen 127.0.0.1:0 \
    --admin 127.0.0.1:0 --workers "${WORKERS:-1}" >"$WORK/$1.out" 2>"$WORK/$1.err" &
  STARTED_PID=$!
  PIDS+=("$STARTED_PID")
  STARTED_PORT=$(turnout_port "$WORK/$1.out" 50)
  if [ -z "$STARTED_PORT" ]; then
    echo "$1 did not start:" >&2
    cat "$WORK/$1.err" >&2
    return 1
  fi
  wait_port "$STARTED_PORT"
}

# build_turnout — builds target/release/turnout unless TURNOUT names a
# binary already; sets TURNOUT.
build_turnout() {
  if [ -n "${TURNOUT:-}" ]; then
    TURNOUT=$(realpath "$TURNOUT")
    return
  fi
  echo "building turnout (release)" >&2
  cargo build --release -q -p turnout
  TURNOUT=$PWD/target/release/turnout
}

# build_base_rev REV — turnout built at git revision REV, in a worktree
# under ${BASE_CACHE:-/tmp/turnout-base} with its own CARGO_TARGET_DIR
# (shared by every base revision, so a new one rebuilds only what
# changed). The binary is kept per commit: the same revision is built
# once. Prints the binary's path.
build_base_rev() {
  local root=${BASE_CACHE:-/tmp/turnout-base} sha bin
  sha=$(git rev-parse --verify --quiet "$1^{commit}") || {
    echo "BASE_REV=$1 is not a commit" >&2
    return 1
  }
  bin=$root/bin/$sha/turnout
  if [ ! -x "$bin" ]; then
    echo "building turnout at $1 (${sha:0:10}) in $root/src" >&2
    mkdir -p "$root"
    if [ -e "$root/src/.git" ]; then
      git -C "$root/src" checkout -q --detach "$sha"
    else
      # -f: a worktree removed from /tmp may still be registered.
      git worktree add -q -f --detach "$root/src" "$sha" >&2
    fi
    (cd "$root/src" && CARGO_TARGET_DIR=$root/target cargo build --release -q -p turnout) >&2
    mkdir -p "$(dirname "$bin")"
    cp "$root/target/release/turnout" "$bin.tmp"
    mv "$bin.tmp" "$bin"
  fi
  echo "$bin"
}

# rss_kib PID — resident set of one process, KiB (VmRSS).
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# response_cookies PORT [COOKIE] — sends one GET for $HOST to
# 127.0.0.1:PORT, with `Cookie: COOKIE` if given, and prints the cookies
# its response sets as a Cookie header value ("a=1; b=2"; empty if none):
# without COOKIE, what a browser sends after its first visit.
response_cookies() {
  python3 - "$1" "$HOST" "${2:-}" <<'PY'
import http.client, sys
port, host, cookie = int(sys.argv[1]), sys.argv[2], sys.argv[3]
c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
c.request("GET", "/", headers={"Host": host, **({"Cookie": cookie} if cookie else {})})
r = c.getresponse(); r.read()
print("; ".join(v.split(";", 1)[0].strip() for v in r.msg.get_all("Set-Cookie") or []))
PY
}

#!/usr/bin/env bash
# Issue 5 item 4: memory of idle keep-alive connections. turnout, nginx and
# HAProxy proxy the same 90/10 route to one loopback nginx backend (as in
# bench/proxy.sh, one worker each); for each proxy in turn a client of our
# own (crates/turnout-proxy/examples/idle_clients.rs) opens CONNECTIONS
# connections through it, one keep-alive GET on each, and holds them idle.
# Printed per proxy: resident set (VmRSS from /proc/PID/status) before,
# with the connections held, and after they are closed; KiB per
# connection; the proxy's open file descriptors while they are held; and
# whether they were really still open (every connection tested for a
# close without sending anything, then one more request on 100 of them).
#
# nginx: the RSS is its worker's (the process holding the connections);
# the master's, which does not change, is printed below the table.
#
# Everything runs on 127.0.0.1, each step is bounded in time, and every
# process is stopped at the end. Knobs (environment):
#   CONNECTIONS  idle connections held (default 10000)
#   CONCURRENCY  connections being opened at once (default 32; also bounds
#                the upstream connections the proxies open meanwhile)
#   HOLD         seconds the connections idle before the RSS is read
#                (default 5; turnout closes idle clients after 60 s)
#   WORKERS      turnout --workers (default 1, as nginx and HAProxy)
#   TURNOUT      a turnout binary instead of building target/release/turnout
#   IDLE_CLIENTS the client binary instead of building the example
#   PROXIES      which to measure, in order (default "turnout nginx haproxy")
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh

CONNECTIONS=${CONNECTIONS:-10000}
CONCURRENCY=${CONCURRENCY:-32}
HOLD=${HOLD:-5}
PROXIES=${PROXIES:-turnout nginx haproxy}
bench_need nginx haproxy python3

# Each proxy holds CONNECTIONS client sockets plus its upstream ones, and
# the client holds CONNECTIONS: raise the file limit as far as allowed.
want=$((CONNECTIONS + 1000))
hard=$(ulimit -Hn)
limit=65536
if [ "$hard" != unlimited ] && ((hard < limit)); then limit=$hard; fi
ulimit -n "$limit"
if (($(ulimit -n) < want)); then
  echo "needs ulimit -n >= $want for $CONNECTIONS connections; the hard limit is $hard" >&2
  exit 1
fi

build_turnout
if [ -n "${IDLE_CLIENTS:-}" ]; then
  CLIENT=$(realpath "$IDLE_CLIENTS")
else
  echo "building the idle_clients example (release)" >&2
  cargo build --release -q -p turnout-proxy --example idle_clients
  CLIENT=$PWD/target/release/examples/idle_clients
fi

bench_init idle
B1=$(free_port); B2=$(free_port); NGINX=$(free_port); HAPROXY=$(free_port)
start_backends "$B1" "$B2"
start_nginx_proxy "$NGINX" "$B1" "$B2" "$want"
start_haproxy "$HAPROXY" "$B1" "$B2" "$want"
write_routes "$WORK/routes.yaml" off 90 10 "$B1" "$B2"
start_turnout turnout "$TURNOUT" "$WORK/routes.yaml"
for port in "$B1" "$B2" "$NGINX" "$HAPROXY"; do wait_port "$port"; done
NGINX_WORKER=
for _ in $(seq 1 50); do
  NGINX_WORKER=$(pgrep -P "$NGINX_PID" | head -1) && break
  sleep 0.1
done
[ -n "$NGINX_WORKER" ] || { echo "no nginx worker" >&2; exit 1; }
declare -A PORT=([turnout]=$STARTED_PORT [nginx]=$NGINX [haproxy]=$HAPROXY)
declare -A PID=([turnout]=$STARTED_PID [nginx]=$NGINX_WORKER [haproxy]=$HAPROXY_PID)

# await FILE PATTERN SECONDS — until a line of FILE matches PATTERN; prints it.
await() {
  local tries=$(($3 * 10))
  for _ in $(seq 1 "$tries"); do
    if grep -q "$2" "$1" 2>/dev/null; then
      grep "$2" "$1" | tail -1
      return 0
    fi
    sleep 0.1
  done
  echo "no '$2' in $1 after $3 s" >&2
  return 1
}

fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

# measure NAME — appends "name before held after fds open closed sample
# sample_ok opened failed secs" to $WORK/results.
measure() {
  local name=$1 port=${PORT[$1]} pid=${PID[$1]} before held after nfds opened check client
  local ctl=$WORK/ctl-$name out=$WORK/client-$name.out
  sleep 1
  before=$(rss_kib "$pid")
  mkfifo "$ctl"
  # Bounded: opening, holding and checking take well under this.
  timeout 300 "$CLIENT" "127.0.0.1:$port" "$HOST" "$CONNECTIONS" "$CONCURRENCY" \
    <"$ctl" >"$out" 2>"$WORK/client-$name.err" &
  client=$!
  PIDS+=("$client")
  exec 4<>"$ctl"
  opened=$(await "$out" '^OPENED' 240)
  echo "  $name: $opened; holding ${HOLD}s" >&2
  sleep "$HOLD"
  held=$(rss_kib "$pid")
  nfds=$(fds "$pid")
  echo check >&4
  check=$(await "$out" '^CHECK' 60)
  echo "  $name: $check" >&2
  echo close >&4
  exec 4>&-
  wait "$client" || echo "  $name: the client exited with an error: $(head -3 "$WORK/client-$name.err")" >&2
  sleep 2
  after=$(rss_kib "$pid")
  python3 - "$name" "$before" "$held" "$after" "$nfds" "$opened" "$check" >>"$WORK/results" <<'PY'
import sys
name, before, held, after, nfds, opened, check = sys.argv[1:]
kv = dict(f.split("=") for f in (opened + " " + check).split() if "=" in f)
n_opened = opened.split()[1]
print(name, before, held, after, nfds, kv["open"], kv["closed"], kv["sample"], kv["sample_ok"],
      n_opened, kv["failed"], kv["secs"])
PY
}

echo "idle keep-alive connections: $CONNECTIONS through each proxy, $CONCURRENCY opening at once, held ${HOLD}s; ulimit -n $(ulimit -n)" >&2
for name in $PROXIES; do
  measure "$name"
done

echo
echo "== RSS with $CONNECTIONS idle keep-alive connections (VmRSS; nginx: the worker)"
python3 - "$WORK/results" "$CONNECTIONS" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1])]
n = int(sys.argv[2])
mib = lambda kib: f"{int(kib) / 1024:.1f}"
print(f"{'proxy':8} {'RSS before':>11} {f'RSS {n} idle':>14} {'KiB/conn':>9} {'RSS closed':>11} {'fds held':>9} {'still open':>11} {'re-request':>11}")
for name, before, held, after, fds, open_, closed, sample, ok, opened, failed, secs in rows:
    per = (int(held) - int(before)) / max(int(opened), 1)
    print(f"{name:8} {mib(before) + ' MiB':>11} {mib(held) + ' MiB':>14} {per:9.2f} {mib(after) + ' MiB':>11} "
          f"{fds:>9} {open_ + '/' + opened:>11} {ok + '/' + sample:>11}")
    if int(failed):
        print(f"  {name}: {failed} connections failed to open")
PY
if [[ " $PROXIES " == *" nginx "* ]]; then echo "nginx master: $(($(rss_kib "$NGINX_PID") / 1024)) MiB (holds no connections)"; fi
echo "target (issue 5): turnout under 40 MiB with 10,000 idle keep-alive connections"

#!/usr/bin/env bash
# Instruction and allocation counts per request of `turnout proxy
# --workers 1`, which are stable on noisy machines where req/s is not.
#
# One loopback nginx backend ("v1"/"v2", 90/10), turnout under valgrind,
# and a small Python keep-alive client that sends a fixed number of GETs
# over CONNS connections (one request in flight on each). Counters are
# zeroed after a warm-up and dumped after REQUESTS requests, so start-up
# costs are not counted.
#
#   bench/callgrind.sh [TURNOUT_BINARY]      (default target/release/turnout)
# Knobs: REQUESTS (default 20000), WARMUP (2000), CONNS (8),
#        TOOL=callgrind|dhat (default callgrind), OUT (directory kept for
#        callgrind_annotate; default a temporary one that is removed),
#        STICKY (the route's stickiness: off (default), version or
#        instance), COOKIES=none|replay (default none: no request carries
#        a cookie, so on a sticky route every request is a first visit
#        and gets Set-Cookie; replay: every request sends the cookies the
#        route set on one first response, as a returning browser),
#        AB_GOAL (a path: the route gets that A/B goal, so every request
#        is reported to the A/B feed; needs STICKY=version or instance).
# Prints "instructions/request N" (callgrind) or "allocations/request N
# bytes/request N" (dhat; start-up included, divided by all requests).
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=bench/lib.sh
. bench/lib.sh

TURNOUT=${1:-$PWD/target/release/turnout}
REQUESTS=${REQUESTS:-20000}
WARMUP=${WARMUP:-2000}
CONNS=${CONNS:-8}
TOOL=${TOOL:-callgrind}
STICKY=${STICKY:-off}
COOKIES=${COOKIES:-none}
bench_need nginx valgrind python3

bench_init cg
KEEP=${OUT:-}
bench_at_exit() {
  if [ -n "$KEEP" ]; then
    mkdir -p "$KEEP"
    cp "$WORK"/*.out.* "$KEEP"/ 2>/dev/null || true
  fi
}

B1=$(free_port); B2=$(free_port)
start_backends "$B1" "$B2" 1024
write_routes "$WORK/routes.yaml" "$STICKY" 90 10 "$B1" "$B2"

case $TOOL in
  callgrind) vg=(--tool=callgrind --compress-strings=no --callgrind-out-file="$WORK/callgrind.out.%p") ;;
  dhat) vg=(--tool=dhat --dhat-out-file="$WORK/dhat.out.%p") ;;
  *) echo "TOOL is callgrind or dhat" >&2; exit 2 ;;
esac
valgrind -q "${vg[@]}" "$TURNOUT" proxy --config "$WORK/routes.yaml" --listen 127.0.0.1:0 \
  --internal-listen 127.0.0.1:0 --admin 127.0.0.1:0 --workers 1 \
  >"$WORK/turnout.out" 2>"$WORK/turnout.err" & VG_PID=$!; PIDS+=("$VG_PID")
PORT=$(turnout_port "$WORK/turnout.out" 600)
[ -n "$PORT" ] || { cat "$WORK/turnout.err" >&2; exit 1; }
COOKIE=
case $COOKIES in
  none) ;;
  replay) COOKIE=$(response_cookies "$PORT") ;;
  *) echo "COOKIES is none or replay" >&2; exit 2 ;;
esac

# N keep-alive GETs over CONNS connections, one in flight on each.
client() {
  python3 - "$PORT" "$1" "$CONNS" "$HOST" "$COOKIE" <<'PY'
import selectors, socket, sys
port, total, conns, host, cookie = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
cookie = f"Cookie: {cookie}\r\n" if cookie else ""
req = f"GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: bench\r\nAccept: */*\r\n{cookie}\r\n".encode()
sel = selectors.DefaultSelector()
sent = done = 0
state = {}
for _ in range(min(conns, total)):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(req); sent += 1
    state[s] = b""
    sel.register(s, selectors.EVENT_READ)
bad = 0
while done < total:
    for key, _ in sel.select(timeout=30):
        s = key.fileobj
        data = s.recv(65536)
        if not data:
            sys.exit("connection closed")
        buf = state[s] + data
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0: break
            head = buf[:end].decode("latin-1").lower()
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name == "content-length": length = int(value)
            if len(buf) < end + 4 + length: break
            if not head.startswith("http/1.1 200"): bad += 1
            buf = buf[end + 4 + length:]
            done += 1
            if sent < total:
                s.sendall(req); sent += 1
        state[s] = buf
if bad: sys.exit(f"{bad} responses were not 200")
PY
}

client "$WARMUP"
if [ "$TOOL" = callgrind ]; then
  callgrind_control -z "$VG_PID" >/dev/null 2>&1
  client "$REQUESTS"
  callgrind_control -d "$VG_PID" >/dev/null 2>&1
  sleep 0.5
  # shellcheck disable=SC2012 # our own file names
  file=$(ls -t "$WORK"/callgrind.out.* | head -1)
  total=$(sed -n 's/^summary: *\([0-9]*\).*/\1/p;s/^totals: *\([0-9]*\).*/\1/p' "$file" | head -1)
  echo "requests $REQUESTS instructions $total"
  python3 -c "print(f'instructions/request {$total/$REQUESTS:.0f}')"
  if [ -n "$KEEP" ]; then
    callgrind_annotate --inclusive=no "$file" 2>/dev/null | head -60 >"$WORK/annotate.out.txt" || true
  fi
else
  client "$REQUESTS"
  kill -INT "$VG_PID"; wait "$VG_PID" 2>/dev/null || true
  file=$(find "$WORK" -name 'dhat.out.*' | head -1)
  python3 - "$file" "$((REQUESTS + WARMUP))" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); n = int(sys.argv[2])
blocks = sum(p["tbk"] for p in d["pps"]); size = sum(p["tb"] for p in d["pps"])
print(f"requests {n} allocations {blocks} bytes {size}")
print(f"allocations/request {blocks/n:.1f} bytes/request {size/n:.0f}")
PY
fi

"""Driver of bench/analysis.sh and bench/analysis-callgrind.sh (issue 12's
targets for the analysis of progressive releases). Prints figures;
asserts nothing. Everything on loopback ports the system picks, bounded.

  analysis.py BIN decision ROUNDS WINDOW_S
      A decision within one window after the evidence is there: on
      examples/hello under steady load, a canary of serviceB-v2 judged
      every WINDOW_S by the router's figures (max_error_rate 5 %); at a
      known time the canary's demo-apps are switched to fail every
      request (POST /control) and the time from the flip to the
      release-failed event is printed, in ms and in windows. Then a
      healthy canary whose pause is one window: the time from its first
      passing check (the evidence) to the promotion (the release-step
      event). Then the same flip with only the Prometheus gate, against a
      fake Prometheus whose value is flipped over max.

  analysis.py BIN callgrind REQUESTS WARMUP
      Instructions per request of `turnout up` under callgrind, for the
      same load in three states: no release; a gray release held at 50 %
      without analysis gates (nothing is judged); the same release with
      gates judged every second. The analysis reads the router's counters
      once per window, off the request path: its cost per request is the
      third figure minus the second.
"""

import http.client
import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from common import ROOT, call

V2 = open(os.path.join(ROOT, "examples/hello/app-frontend-v2.yaml")).read()


class Server:
    """`turnout up examples/hello/app.yaml` (optionally under a wrapper
    such as valgrind) on ephemeral ports, its data dir removed at the end."""

    def __init__(self, bin_, wrapper=(), env=None):
        self.data = tempfile.mkdtemp(prefix="turnout-bench-analysis-")
        self.proc = subprocess.Popen(
            [*wrapper, bin_, "up", "examples/hello/app.yaml", "--data-dir", self.data,
             "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
             "--internal-listen", "127.0.0.1:0"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            env=dict(os.environ, RUST_LOG="off", **(env or {})))
        line = self.proc.stdout.readline()
        fields = dict(w.split("=", 1) for w in line.split()[2:] if "=" in w)
        self.public, self.admin = fields["public"], fields["admin"]
        while "is up" not in self.proc.stdout.readline():
            pass
        # Keep reading stdout so the server never blocks on a full pipe.
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()
        token = open(os.path.join(self.data, "token")).read().strip()
        self.auth = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}

    def api(self, method, path, body=None):
        status, text = call(self.admin, method, path, body, self.auth, timeout=120)
        if status >= 300:
            raise SystemExit(f"{method} {path}: {status} {text}")
        return json.loads(text) if text else None

    def status(self):
        return self.api("GET", "/v1/apps/hello")

    def release(self, plan, template=V2):
        self.api("POST", "/v1/apps/hello/releases",
                 {"template": template, "source_name": "bench.yaml", "plan": plan})

    def wait(self, what, done, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            s = self.status()
            if done(s):
                return s
            time.sleep(0.005)
        raise SystemExit(f"timed out waiting for {what}")

    def events_after(self, after):
        return self.api("GET", f"/v1/events?app=hello&after={after}&limit=10000")["events"]

    def last_event_id(self):
        events = self.events_after(0)
        return events[-1]["id"] if events else 0

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.data, ignore_errors=True)


class Load:
    """GETs to serviceb over keep-alive connections, one in flight on each,
    until stopped (or `total` requests); counts the answers."""

    def __init__(self, public, conns=2, total=None):
        self.public, self.total = public, total
        self.stopped = threading.Event()
        self.lock = threading.Lock()
        self.sent = 0
        self.codes = {}
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(conns)]
        for t in self.threads:
            t.start()

    def run(self):
        host, port = self.public.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        while not self.stopped.is_set():
            with self.lock:
                if self.total is not None and self.sent >= self.total:
                    return
                self.sent += 1
            try:
                conn.request("GET", "/", headers={"Host": "serviceb.localhost"})
                r = conn.getresponse()
                r.read()
                code = r.status
                if r.getheader("connection", "").lower() == "close":
                    conn.close()
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(host, int(port), timeout=60)
                code = "error"
            with self.lock:
                self.codes[code] = self.codes.get(code, 0) + 1

    def wait(self):
        for t in self.threads:
            t.join()

    def stop(self):
        self.stopped.set()
        self.wait()


def new_endpoints(status):
    return [i["endpoint"] for s in status["services"] if s["role"] == "new"
            for i in s["instances"] if i.get("endpoint")]


def flip(status, settings):
    for endpoint in new_endpoints(status):
        code, text = call(endpoint, "POST", "/control", settings,
                          {"Content-Type": "application/json"})
        if code != 200:
            raise SystemExit(f"POST {endpoint}/control: {code} {text}")


def state(s):
    return (s["release"] or {}).get("state")


def event_at(events, kind, since_ms=0):
    for e in events:
        if e["kind"] == kind and e["at"] >= since_ms:
            return e["at"]
    return None


class FakePrometheus:
    """Answers every instant query with one series of `value`."""

    def __init__(self, value):
        self.value = value
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": [
                    {"metric": {}, "value": [time.time(), str(fake.value)]}]}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def stop(self):
        self.httpd.shutdown()


def decision(bin_, rounds, window):
    w_ms = int(window * 1000)
    server = Server(bin_)
    prometheus = FakePrometheus(0.1)
    load = Load(server.public, conns=2)
    try:
        gates = {"window": f"{w_ms}ms", "min_requests": 10, "max_error_rate": "5%"}
        rollbacks, promotes, outside = [], [], []
        for _ in range(rounds):
            # Rollback: a healthy canary, judged; then every request of it
            # fails from a known time.
            after = server.last_event_id()
            server.release({"strategy": "canary", "canary": {"share": 50}, "pause": "3600s",
                            "analysis": gates})
            s = server.wait("a passing check", lambda s: any(
                a["verdict"] == "pass" for a in (s["release"] or {}).get("analysis", [])))
            flipped = time.time() * 1000
            flip(s, {"fail_rate": 1.0})
            server.wait("the rollback", lambda s: state(s) == "rolled-back")
            failed = event_at(server.events_after(after), "release-failed")
            rollbacks.append(failed - flipped)
            # The next release may take these instances up again while
            # they drain: healthy again first.
            try:
                flip(s, {"fail_rate": 0.0})
            except (OSError, SystemExit):
                pass

            # Promote: a healthy canary whose pause is one window; the
            # evidence is its first passing check.
            after = server.last_event_id()
            server.release({"strategy": "canary", "canary": {"share": 50}, "pause": f"{w_ms}ms",
                            "analysis": gates})
            deadline = time.time() + 120
            while True:
                events = server.events_after(after)
                passed = next((e["at"] for e in events if e["kind"] == "analysis"
                               and e["data"]["verdict"] == "pass"), None)
                moved = passed is not None and next(
                    (e["at"] for e in events if e["at"] >= passed and e["kind"] in
                     ("release-promoted", "release-step")), None)
                if moved:
                    promotes.append(moved - passed)
                    break
                if time.time() > deadline:
                    raise SystemExit(f"no promotion: {events}")
                time.sleep(0.01)
            server.api("POST", "/v1/apps/hello/abort", {"reason": "bench"})
            server.wait("the abort", lambda s: state(s) == "rolled-back")

            # The Prometheus gate: the outside value goes over max at a
            # known time.
            prometheus.value = 0.1
            after = server.last_event_id()
            server.release({"strategy": "canary", "canary": {"share": 50}, "pause": "3600s",
                            "analysis": {"window": f"{w_ms}ms", "min_requests": 0,
                                         "prometheus": {"url": prometheus.url,
                                                        "query": "errors", "max": 0.5}}})
            server.wait("a passing check", lambda s: any(
                a["verdict"] == "pass" for a in (s["release"] or {}).get("analysis", [])))
            flipped = time.time() * 1000
            prometheus.value = 0.9
            server.wait("the rollback", lambda s: state(s) == "rolled-back")
            failed = event_at(server.events_after(after), "release-failed")
            outside.append(failed - flipped)
    finally:
        load.stop()
        prometheus.stop()
        server.stop()

    def line(name, xs):
        windows = ", ".join(f"{x / w_ms:.2f}" for x in xs)
        return (f"{name}: " + ", ".join(f"{x:.0f} ms" for x in xs)
                + f"  = {windows} windows (max {max(xs) / w_ms:.2f}; target <= 1)")

    print(f"window {w_ms} ms, rounds {rounds}, load {sum(load.codes.values())} requests {load.codes}")
    print(line("errors flipped on -> release-failed (router figures)", rollbacks))
    print(line("first passing check -> promoted (next step)        ", promotes))
    print(line("prometheus value flipped over max -> release-failed", outside))


def instructions(bin_, requests, warmup, plan):
    work = tempfile.mkdtemp(prefix="turnout-bench-cg-")
    out = os.path.join(work, "callgrind.out")
    server = Server(bin_, wrapper=("valgrind", "-q", "--tool=callgrind",
                                   "--compress-strings=no", f"--callgrind-out-file={out}"))
    try:
        if plan is not None:
            server.release(plan)
            server.wait("the first step", lambda s: state(s) == "progressing", timeout=600)
        Load(server.public, conns=4, total=warmup).wait()
        pid = str(server.proc.pid)
        subprocess.run(["callgrind_control", "-z", pid], check=True, capture_output=True)
        started = time.time()
        load = Load(server.public, conns=4, total=requests)
        load.wait()
        elapsed = time.time() - started
        subprocess.run(["callgrind_control", "-d", pid], check=True, capture_output=True)
        time.sleep(1)
        dumps = sorted((f for f in os.listdir(work) if f.startswith("callgrind.out")),
                       key=lambda f: os.path.getmtime(os.path.join(work, f)))
        total = None
        for text in open(os.path.join(work, dumps[-1])):
            if text.startswith(("summary:", "totals:")):
                total = int(text.split()[1])
                break
        checks = len((server.status()["release"] or {}).get("analysis", []))
        return total / requests, elapsed, load.codes, checks
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


def callgrind(bin_, requests, warmup):
    held = {"strategy": "gray", "steps": [50, 100], "pause": "3600s"}
    judged = dict(held, analysis={"window": "1s", "min_requests": 1, "max_error_rate": "50%",
                                  "max_p99_increase": "10s"})
    rows = []
    for name, plan in [("no release", None), ("gray at 50 %, no analysis", held),
                       ("gray at 50 %, analysis every 1 s", judged)]:
        per, elapsed, codes, checks = instructions(bin_, requests, warmup, plan)
        rows.append((name, per))
        print(f"{name:34} instructions/request {per:,.0f}  ({requests} requests in {elapsed:.1f} s,"
              f" answers {codes}, analysis checks {checks})", flush=True)
    base, judged_per = rows[1][1], rows[2][1]
    print(f"analysis vs the same release without it: {100 * (judged_per - base) / base:+.2f} %"
          f" (target within 3 %); vs no release: {100 * (judged_per - rows[0][1]) / rows[0][1]:+.2f} %")


def main():
    bin_, mode = sys.argv[1], sys.argv[2]
    if mode == "decision":
        decision(bin_, int(sys.argv[3]), float(sys.argv[4]))
    elif mode == "callgrind":
        callgrind(bin_, int(sys.argv[3]), int(sys.argv[4]))
    else:
        raise SystemExit("mode is decision or callgrind")


if __name__ == "__main__":
    main()

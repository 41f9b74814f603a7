"""Driver of bench/release.sh: starts `turnout up examples/hello/app.yaml`
on ephemeral loopback ports and times releases, weight changes and
confirms through the REST API. Prints figures; asserts nothing."""

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from common import ROOT, call

BIN, ROUNDS = sys.argv[1], int(sys.argv[2])


def main():
    data = tempfile.mkdtemp(prefix="turnout-bench-")
    proc = subprocess.Popen(
        [BIN, "up", "examples/hello/app.yaml", "--data-dir", data,
         "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--internal-listen", "127.0.0.1:0"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env=dict(os.environ, RUST_LOG="off"))
    try:
        line = proc.stdout.readline()
        fields = dict(w.split("=", 1) for w in line.split()[2:])
        public, admin = fields["public"], fields["admin"]
        while "is up" not in proc.stdout.readline():
            pass
        # Keep reading the server's stdout so that it never blocks on a
        # full pipe.
        import threading
        threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
        token = open(os.path.join(data, "token")).read().strip()
        auth = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}

        def api(method, path, body=None):
            status, text = call(admin, method, path, body, auth)
            if status >= 300:
                raise SystemExit(f"{method} {path}: {status} {text}")
            return json.loads(text) if text else None

        def get():
            return call(public, "GET", "/", headers={"Host": "serviceb.localhost"})[1]

        def state():
            return (api("GET", "/v1/apps/hello")["release"] or {}).get("state")

        v1 = open(os.path.join(ROOT, "examples/hello/app.yaml")).read()
        v2 = open(os.path.join(ROOT, "examples/hello/app-frontend-v2.yaml")).read()
        release_ms, confirm_ms, weight_ms = [], [], []
        stale = 0
        flips = 0
        for rnd in range(ROUNDS):
            # Release to pending-confirmation: v1 → v2 in odd rounds, back
            # to v1's template in even ones (each is a new version).
            template = v2 if rnd % 2 == 0 else v1
            t0 = time.perf_counter()
            api("POST", "/v1/apps/hello/releases",
                {"template": template, "source_name": "bench.yaml"})
            while state() != "pending-confirmation":
                time.sleep(0.005)
            release_ms.append((time.perf_counter() - t0) * 1000)
            # Weight changes, each checked in the data plane right after
            # the API answered.
            for i in range(100):
                to_v2 = i % 2 == 0
                body = {"weights": {"serviceB-v2": 100, "serviceB-v1": 0}} if to_v2 else \
                       {"weights": {"serviceB-v1": 100, "serviceB-v2": 0}}
                t0 = time.perf_counter()
                api("PUT", "/v1/apps/hello/routes/serviceb/weights", body)
                weight_ms.append((time.perf_counter() - t0) * 1000)
                answer = get()
                flips += 1
                want = "Welcome to the world!" if to_v2 else "Hello world!"
                if answer != want:
                    stale += 1
            # Switch, then confirm; done when the old instances' processes
            # are gone (drain included).
            api("POST", "/v1/apps/hello/routes/serviceb/switch")
            status = api("GET", "/v1/apps/hello")
            old = [i["pid"] for x in status["services"] if x["role"] == "old"
                   for i in x["instances"] if i["pid"]]
            t0 = time.perf_counter()
            api("POST", "/v1/apps/hello/confirm")
            while any(os.path.exists(f"/proc/{pid}") and
                      not open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z"
                      for pid in old):
                time.sleep(0.002)
            confirm_ms.append((time.perf_counter() - t0) * 1000)
        weight_ms.sort()
        p = lambda q: weight_ms[min(len(weight_ms) - 1, int(q * len(weight_ms)))]
        print(f"rounds: {ROUNDS}")
        print(f"release to pending-confirmation: " + ", ".join(f"{x:.0f} ms" for x in release_ms)
              + f"  (median {statistics.median(release_ms):.0f} ms; target < 2000 ms)")
        print(f"confirm, drain included (idle):  " + ", ".join(f"{x:.0f} ms" for x in confirm_ms)
              + f"  (median {statistics.median(confirm_ms):.0f} ms; target < 1000 ms)")
        print(f"weight change via API: n={len(weight_ms)} p50 {p(0.5):.2f} ms  p99 {p(0.99):.2f} ms"
              f"  max {weight_ms[-1]:.2f} ms  (target p99 < 10 ms)")
        print(f"requests right after the API answered that saw the old weights: {stale} of {flips}")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(data, ignore_errors=True)


main()

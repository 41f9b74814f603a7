"""Driver of bench/console.sh: the web console's targets of issue 13,
measured in headless Chromium against the real server on loopback.

  - first paint of the console (the Performance API's `paint` entries),
    over several fresh navigations;
  - input answered while 200 services update once a second: a key typed
    into a weight field through WebDriver (a trusted input, as a user's),
    timed in the page from the event's timestamp to the frame after its
    handler ran (requestAnimationFrame, then a task); p50/p99 over N keys,
    and the Event Timing API's longest entry and the long tasks seen.

The app: 200 services of one `turnout demo-app` each, each on its own
public route, with light traffic spread over all the routes so that every
service's figures change each second. Prints figures; asserts nothing.
Everything listens on 127.0.0.1 and is stopped at exit."""

import http.client
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from common import ROOT, call

BIN, SERVICES, INPUTS, LOADS = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class WebDriver:
    """The few W3C WebDriver commands the bench needs, over plain HTTP."""

    def __init__(self, port):
        self.addr = f"127.0.0.1:{port}"
        caps = {"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1400,1700",
                     "--no-first-run", "--no-default-browser-check"]}}}}
        self.session = self.cmd("POST", "/session", caps)["sessionId"]

    def cmd(self, method, path, body=None):
        status, text = call(self.addr, method, path, body,
                            {"Content-Type": "application/json"}, timeout=120)
        value = json.loads(text)["value"] if text else None
        if status >= 300:
            raise SystemExit(f"webdriver {method} {path}: {status} {text[:500]}")
        return value

    def s(self, method, path, body=None):
        return self.cmd(method, f"/session/{self.session}{path}", body)

    def goto(self, url):
        self.s("POST", "/url", {"url": url})

    def js(self, script, *args):
        return self.s("POST", "/execute/sync", {"script": script, "args": list(args)})

    def wait_js(self, what, script, timeout=60):
        deadline = time.time() + timeout
        while True:
            v = self.js(script)
            if v:
                return v
            if time.time() > deadline:
                raise SystemExit(f"never: {what} (last: {v})")
            time.sleep(0.1)

    def key(self, key):
        self.s("POST", "/actions", {"actions": [{"type": "key", "id": "kbd", "actions": [
            {"type": "keyDown", "value": key}, {"type": "keyUp", "value": key}]}]})

    def quit(self):
        try:
            self.s("DELETE", "")
        except SystemExit:
            pass


def template(n):
    lines = []
    for i in range(1, n + 1):
        name = f"svc{i:03d}"
        lines += [f"{name}:", f"  command: turnout demo-app --text {name}",
                  "  labels:", f"    aliyun.routing.port_5000: {name}"]
    return "\n".join(lines) + "\n"


def traffic(public, n, stop, counts):
    """Requests spread over every route, bounded by LOADS per second."""
    host, port = public.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    pause = 1.0 / LOADS
    while not stop.is_set():
        name = f"svc{random.randint(1, n):03d}"
        try:
            conn.request("GET", "/", headers={"Host": f"{name}.localhost"})
            conn.getresponse().read()
            counts[0] += 1
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = http.client.HTTPConnection(host, int(port), timeout=10)
            counts[1] += 1
        time.sleep(pause)


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


# Installed in the page before the inputs: each keydown on a weight field
# records its delay to the handler and to the frame after it.
PROBE = """
window.__inputs = [];
window.__events = [];
window.__long = [];
new PerformanceObserver((l) => window.__events.push(...l.getEntries().map(e => e.duration)))
  .observe({type: 'event', durationThreshold: 16, buffered: false});
new PerformanceObserver((l) => window.__long.push(...l.getEntries().map(e => e.duration)))
  .observe({type: 'longtask', buffered: false});
document.addEventListener('keydown', (e) => {
  const t0 = e.timeStamp;
  const handler = performance.now() - t0;
  requestAnimationFrame(() => setTimeout(() => {
    window.__inputs.push([handler, performance.now() - t0]);
  }, 0));
}, true);
// Where the page's time goes: the console's render functions, wrapped
// (top-level function declarations are properties of the window).
window.__spent = {};
for (const name of ['renderAll', 'paintMetrics', 'renderApps', 'renderRelease', 'renderServices',
                    'renderRoutes', 'renderLogChoices', 'setActionsEnabled', 'renderHistory']) {
  const f = window[name];
  if (typeof f !== 'function') continue;
  window[name] = function (...args) {
    const t = performance.now();
    try { return f.apply(this, args); } finally {
      const d = performance.now() - t;
      const s = window.__spent[name] || (window.__spent[name] = [0, 0, 0]);
      s[0] += 1; s[1] += d; s[2] = Math.max(s[2], d);
    }
  };
}
window.__paints = 0;
const cards = document.querySelector('#services');
new MutationObserver((m) => { window.__paints += m.length; })
  .observe(cards, {subtree: true, characterData: true, childList: true});
return true;
"""


def main():
    data = tempfile.mkdtemp(prefix="turnout-bench-console-")
    procs = []
    stop = threading.Event()
    wd = None
    try:
        path = os.path.join(data, "app.yaml")
        with open(path, "w") as f:
            f.write(template(SERVICES))
        proc = subprocess.Popen(
            [BIN, "up", path, "--data-dir", data, "--listen", "127.0.0.1:0",
             "--admin", "127.0.0.1:0", "--internal-listen", "127.0.0.1:0"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            env=dict(os.environ, RUST_LOG="off"), start_new_session=True)
        procs.append(proc)
        line = proc.stdout.readline()
        fields = dict(w.split("=", 1) for w in line.split()[2:] if "=" in w)
        public, admin = fields["public"], fields["admin"]
        started = time.time()
        while "is up" not in proc.stdout.readline():
            if proc.poll() is not None:
                raise SystemExit("turnout up exited")
        print(f"app of {SERVICES} services up in {time.time() - started:.1f} s")
        threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
        token = open(os.path.join(data, "token")).read().strip()

        counts = [0, 0]
        threading.Thread(target=traffic, args=(public, SERVICES, stop, counts), daemon=True).start()

        port = free_port()
        driver = subprocess.Popen([DRIVER, f"--port={port}", "--allowed-ips=127.0.0.1"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True)
        procs.append(driver)
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        wd = WebDriver(port)
        url = f"http://{admin}/"

        # First paint: fresh navigations to the console (the login form).
        paints = []
        for i in range(6):
            wd.goto("about:blank")
            wd.goto(url)
            p = wd.wait_js("a paint", "const p = performance.getEntriesByType('paint'); "
                           "return p.length === 2 && Object.fromEntries(p.map(e => [e.name, e.startTime]))")
            if i > 0:  # the first is the browser's own warm-up
                paints.append(p)
        fp = [p["first-paint"] for p in paints]
        fcp = [p["first-contentful-paint"] for p in paints]
        print(f"first paint: median {statistics.median(fp):.0f} ms, max {max(fp):.0f} ms; "
              f"first contentful paint: median {statistics.median(fcp):.0f} ms, "
              f"max {max(fcp):.0f} ms (over {len(paints)} navigations; target < 300 ms)")

        # Logged in: the app's 200 services with their live figures.
        t = time.time()
        wd.js("document.querySelector('#token').value = arguments[0]; "
              "document.querySelector('#login-form').requestSubmit(); return true", token)
        wd.wait_js("every service shown",
                   f"return document.querySelectorAll('#services .card').length === {SERVICES}")
        shown = time.time() - t
        wd.wait_js("live figures", "return [...document.querySelectorAll('#services [data-m=rps]')]"
                   f".filter(n => n.dataset.value && Number(n.dataset.value) > 0).length >= {max(1, SERVICES // 4)}")
        print(f"log in to {SERVICES} service cards shown: {shown * 1000:.0f} ms")

        wd.js(PROBE)
        field = wd.js("const i = document.querySelector('#routes input[data-service]'); i.focus(); "
                      "return document.activeElement === i")
        if not field:
            raise SystemExit("no weight field to type into")
        t = time.time()
        for i in range(INPUTS):
            wd.key("5" if i % 2 == 0 else "\ue003")  # a digit, then Backspace
            time.sleep(random.uniform(0.02, 0.08))
        elapsed = time.time() - t
        wd.wait_js("every input timed", f"return window.__inputs.length >= {INPUTS}")
        inputs, events, longs, mutations, updates = wd.js(
            "return [window.__inputs, window.__events, window.__long, window.__paints, "
            "document.querySelectorAll('#services [data-m=rps]').length]")
        handler = [x[0] for x in inputs]
        frame = [x[1] for x in inputs]
        print(f"input to next frame over {len(inputs)} keys in {elapsed:.1f} s while "
              f"{updates} services update once a second: p50 {pct(frame, 50):.1f} ms, "
              f"p99 {pct(frame, 99):.1f} ms, max {max(frame):.1f} ms (target < 100 ms); "
              f"to the handler: p50 {pct(handler, 50):.1f} ms, p99 {pct(handler, 99):.1f} ms")
        print(f"event timing entries >= 16 ms: {len(events)}"
              + (f", longest {max(events):.0f} ms" if events else "")
              + f"; long tasks (> 50 ms): {len(longs)}"
              + (f", longest {max(longs):.0f} ms" if longs else "")
              + f"; DOM changes to the service cards: {mutations}")
        spent = wd.js("return window.__spent")
        print("page time by function (calls, mean ms, max ms): " + ", ".join(
            f"{k} {v[0]} {v[1] / v[0]:.1f} {v[2]:.1f}" for k, v in sorted(spent.items())))
        print(f"traffic: {counts[0]} requests ({counts[1]} failed) over {SERVICES} routes")
    finally:
        stop.set()
        if wd:
            wd.quit()
        for p in reversed(procs):
            try:
                os.killpg(p.pid, 15)
            except ProcessLookupError:
                pass
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, 9)
                p.wait()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()

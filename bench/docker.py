"""Driver of bench/docker.sh: the docker runtime's issue-11 targets.

(a)-(c): `turnout up --runtime docker` of examples/hello (serviceB scaled
to 5 containers in a temporary copy, serviceA 3) on ephemeral loopback
ports; each round releases the other frontend (5 new containers) and
times it to pending-confirmation, switches and confirms it (timed until
the old frontend's 5 containers are gone from the engine's list, all
states: `docker ps -a`), then releases the other one again and rolls it
back (timed until its 5 containers are gone likewise).

(d): the router's requests/s and latency to container backends against
the same router to process backends: three `turnout up` servers of the
same binary, one per runtime and a third on docker with the router's
connections over the bridge (`TURNOUT_DOCKER_NETNS=off`, row `bridge`;
by default they are made inside the containers' network namespaces),
each running the hello app plus a service `web`
of 2 `turnout demo-app --text 'Hello world!'` instances on a public route;
wrk with bench/proxy.sh's settings (-t1 -c32 keep-alive) straight to one
`web` backend (no router: what the path to a container costs by itself),
on `web` (router -> backend) and on `serviceb` (router -> frontend ->
servicea.local -> backend), interleaved rounds (order rotated), medians;
the docker/process ratio per round and its median (the machine's load
moves between rounds; a ratio within a round is fairer); CPU per request
of each server process (router and control plane; its instances are not
counted) and of dockerd. Each server runs in a session of its own, not
in wrk's: a process shares its session's scheduling group (autogroup),
and a server in the bench's session would put its process instances in
one group with the load generator, which no real client is.

Prints figures; asserts nothing. Everything on loopback or the app's own
containers, every wait bounded.
    python3 bench/docker.py TURNOUT_BINARY IMAGE_TAG ROUNDS DURATION CONNS
"""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

from common import ROOT, call

BIN, TAG = sys.argv[1], sys.argv[2]
ROUNDS, DURATION, CONNS = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
HELLO = os.path.join(ROOT, "examples/hello")
WAIT = 120  # seconds: the bound of every wait below
HZ = os.sysconf("SC_CLK_TCK")
SERVERS = []


def log(*args):
    print(*args, file=sys.stderr, flush=True)


class Engine(http.client.HTTPConnection):
    """The Docker Engine API on its unix socket: listing containers this
    way takes about a millisecond (the docker CLI takes tens), so the
    removal times are not the polling's."""

    def __init__(self, path):
        super().__init__("localhost", timeout=10)
        self.socket_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(self.socket_path)
        self.sock = s


DOCKER_HOST = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")


def container_ids(labels):
    """Ids of the containers with every label of `labels` (k=v), any state."""
    if DOCKER_HOST.startswith("unix://"):
        filters = urllib.parse.quote(json.dumps({"label": labels}))
        conn = Engine(DOCKER_HOST[len("unix://"):])
        conn.request("GET", f"/containers/json?all=1&filters={filters}")
        r = conn.getresponse()
        body = r.read()
        conn.close()
        if r.status != 200:
            raise SystemExit(f"engine: {r.status} {body[:200]!r}")
        return sorted(c["Id"] for c in json.loads(body))
    args = ["docker", "ps", "-aq", "--no-trunc"]
    for label in labels:
        args += ["--filter", f"label={label}"]
    return sorted(subprocess.run(args, capture_output=True, text=True, timeout=30).stdout.split())


class Server:
    """`turnout up` on ephemeral loopback ports, stopped with SIGTERM."""

    def __init__(self, runtime, app, template, env=None):
        self.app = app
        self.data = tempfile.mkdtemp(prefix=f"turnout-bench-docker-{runtime}-")
        self.proc = subprocess.Popen(
            [BIN, "up", "--runtime", runtime, "--name", app, template, "--data-dir", self.data,
             "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
             "--internal-listen", "127.0.0.1:0"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            env=dict(os.environ, RUST_LOG="off", **(env or {})),
            # A session of its own, as under a service manager or in a
            # terminal of its own: in the bench's session the server and its
            # process instances would share one scheduling group (autogroup)
            # with wrk, an advantage no real client gives and no container
            # can share (docs/performance.md, "Docker runtime").
            # SAME_SESSION=1 keeps them in it, to show the difference.
            start_new_session=os.environ.get("SAME_SESSION") != "1")
        SERVERS.append(self)
        lines = []
        # Read stdout on a thread (bounded waits; the pipe never fills).
        self.up = threading.Event()

        def reader():
            for line in self.proc.stdout:
                lines.append(line)
                if " is up" in line:
                    self.up.set()
        threading.Thread(target=reader, daemon=True).start()
        deadline = time.monotonic() + WAIT
        while not lines and time.monotonic() < deadline and self.proc.poll() is None:
            time.sleep(0.01)
        if not lines or not lines[0].startswith("turnout listening"):
            raise SystemExit(f"turnout up --runtime {runtime} did not start: {lines}")
        fields = dict(w.split("=", 1) for w in lines[0].split()[2:])
        self.public, self.admin = fields["public"], fields["admin"]
        if not self.up.wait(WAIT):
            raise SystemExit(f"app {app} not up within {WAIT} s")
        token = open(os.path.join(self.data, "token")).read().strip()
        self.auth = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}
        self.env = dict(os.environ, TURNOUT_DATA_DIR=self.data, NO_COLOR="1")

    def api(self, method, path, body=None):
        status, text = call(self.admin, method, path, body, self.auth)
        if status >= 300:
            raise SystemExit(f"{method} {path}: {status} {text}")
        return json.loads(text) if text else None

    def state(self):
        return (self.api("GET", f"/v1/apps/{self.app}")["release"] or {}).get("state")

    def cli(self, *args):
        """`turnout ARGS --app APP`, as a user runs it."""
        out = subprocess.run([BIN, *args, "--app", self.app], env=self.env, cwd=ROOT,
                             capture_output=True, text=True, timeout=WAIT)
        if out.returncode != 0:
            raise SystemExit(f"turnout {' '.join(args)}: {out.stdout}{out.stderr}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # A server that could not stop its containers leaves them: remove
        # those of this server (its id's label) and nothing else.
        try:
            sid = open(os.path.join(self.data, "server-id")).read().strip()
        except OSError:
            sid = ""
        if sid:
            for c in container_ids([f"turnout.server={sid}"]):
                subprocess.run(["docker", "rm", "-f", "-v", c], capture_output=True, timeout=60)
        shutil.rmtree(self.data, ignore_errors=True)


def wait_until(what, check, poll=0.002):
    deadline = time.monotonic() + WAIT
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"never {what} within {WAIT} s")
        time.sleep(poll)


def template(name, out, extra=""):
    """examples/hello/NAME with this run's image tag and serviceB at 5."""
    text = open(os.path.join(HELLO, name)).read().replace("turnout:dev", f"turnout:{TAG}")
    text = text.replace("aliyun.scale: 2", "aliyun.scale: 5")
    path = os.path.join(out, name)
    with open(path, "w") as f:
        f.write(text + extra)
    return path


def stats(xs):
    return (f"median {statistics.median(xs):.0f} ms, min {min(xs):.0f}, max {max(xs):.0f}  ("
            + ", ".join(f"{x:.0f}" for x in xs) + ")")


def releases(tmp):
    app = f"benchdk{os.getpid()}"
    v1 = template("app-docker.yaml", tmp)
    v2 = template("app-docker-frontend-v2.yaml", tmp)
    log(f"(a)-(c): turnout up --runtime docker of {v1} (serviceA 3, serviceB 5 containers)")
    t0 = time.perf_counter()
    server = Server("docker", app, v1)
    log(f"  up in {(time.perf_counter() - t0) * 1000:.0f} ms")

    def frontend(service):
        return container_ids([f"turnout.app={app}", f"turnout.service={service}"])

    release_ms, confirm_ms, confirm_api_ms, rollback_ms, rollback_api_ms = [], [], [], [], []
    live, other = ("serviceB-v1", v1), ("serviceB-v2", v2)
    for rnd in range(ROUNDS):
        for step in ("confirm", "rollback"):
            name, file = other
            t0 = time.perf_counter()
            server.cli("release", file)
            wait_until("pending-confirmation", lambda: server.state() == "pending-confirmation",
                       poll=0.005)
            release_ms.append((time.perf_counter() - t0) * 1000)
            new = frontend(name)
            if len(new) != 5:
                raise SystemExit(f"{name} has {len(new)} containers, not 5")
            if step == "confirm":
                server.cli("switch", "serviceb.localhost")
                old = frontend(live[0])
                t0 = time.perf_counter()
                server.cli("confirm")
                confirm_api_ms.append((time.perf_counter() - t0) * 1000)
                wait_until(f"{live[0]} removed", lambda: not frontend(live[0]))
                confirm_ms.append((time.perf_counter() - t0) * 1000)
                live, other = other, live
            else:
                t0 = time.perf_counter()
                server.cli("rollback")
                rollback_api_ms.append((time.perf_counter() - t0) * 1000)
                wait_until(f"{name} removed", lambda: not frontend(name))
                rollback_ms.append((time.perf_counter() - t0) * 1000)
            log(f"  round {rnd + 1} {step}: release {release_ms[-1]:.0f} ms, "
                f"{step} {(confirm_ms if step == 'confirm' else rollback_ms)[-1]:.0f} ms")
    server.stop()
    print(f"rounds: {ROUNDS} (each: a release confirmed, a release rolled back)")
    print(f"(a) release to pending-confirmation (5 new containers): {stats(release_ms)}"
          "  target < 5000 ms")
    print(f"(b) confirm until the old 5 are gone (docker ps -a):    {stats(confirm_ms)}"
          "  target < 3000 ms")
    print(f"    of which the confirm command itself:                {stats(confirm_api_ms)}")
    print(f"(c) rollback until the new 5 are gone (docker ps -a):   {stats(rollback_ms)}"
          "  target < 3000 ms")
    print(f"    of which the rollback command itself:               {stats(rollback_api_ms)}")


def ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime


def switches(pid):
    """Context switches (voluntary and not) of every thread of PID."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/status") as f:
                total += sum(int(line.split()[1]) for line in f if "ctxt_switches" in line)
        except OSError:
            pass  # a thread that ended meanwhile
    return total


def to_us(v):
    m = re.match(r"([0-9.]+)(us|ms|s)$", v)
    n, unit = float(m.group(1)), m.group(2)
    return n * {"us": 1, "ms": 1e3, "s": 1e6}[unit]


def dockerd_pid():
    out = subprocess.run(["pgrep", "-x", "dockerd"], capture_output=True, text=True).stdout.split()
    return int(out[0]) if out else None


DOCKERD = dockerd_pid()


def wrk(pid, addr, host, backends):
    """wrk on http://ADDR/ with Host HOST: req/s, p50 µs, p99 µs, CPU µs
    per request of process PID (None: not counted) and of dockerd, and the
    CPU µs and context switches per request of the BACKENDS' processes
    (how often they went to sleep and were woken: the figure that tells
    container backends from process ones, docs/performance.md)."""
    before = ticks(pid) if pid else 0
    engine_before = ticks(DOCKERD) if DOCKERD else 0
    backends_before = (sum(map(ticks, backends)), sum(map(switches, backends)))
    out = subprocess.run(
        ["wrk", "-t1", f"-c{CONNS}", f"-d{DURATION}s", "--latency", "-H", f"Host: {host}",
         f"http://{addr}/"], capture_output=True, text=True,
        timeout=DURATION + 60).stdout
    after = ticks(pid) if pid else 0
    engine_after = ticks(DOCKERD) if DOCKERD else 0
    backends_after = (sum(map(ticks, backends)), sum(map(switches, backends)))
    rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))
    reqs = max(int(re.search(r"(\d+) requests in", out).group(1)), 1)
    p50 = to_us(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
    p99 = to_us(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    errors = re.findall(r"(Non-2xx.*|Socket errors.*)", out)
    if errors:
        log(f"  {addr} {host}: {'; '.join(errors)}")
    return (rps, p50, p99, (after - before) / HZ * 1e6 / reqs,
            (engine_after - engine_before) / HZ * 1e6 / reqs,
            (backends_after[0] - backends_before[0]) / HZ * 1e6 / reqs,
            (backends_after[1] - backends_before[1]) / reqs)


def overhead(tmp):
    web = {
        "process": "web:\n  command: turnout demo-app --text 'Hello world!'\n",
        "docker": ("web:\n  image: turnout:%s\n  command: [\"turnout\", \"demo-app\", \"--listen\", "
                   "\"0.0.0.0:5000\", \"--text\", \"Hello world!\"]\n" % TAG),
    }
    labels = "  labels:\n    aliyun.scale: 2\n    aliyun.routing.port_5000: web\n"
    servers = {}
    # "bridge": the docker runtime with the router's connections to the
    # containers over the bridge (TURNOUT_DOCKER_NETNS=off), as before
    # they were made inside the containers' network namespaces.
    for kind, runtime, name, env in (("process", "process", "app.yaml", None),
                                     ("docker", "docker", "app-docker.yaml", None),
                                     ("bridge", "docker", "app-docker.yaml",
                                      {"TURNOUT_DOCKER_NETNS": "off"})):
        d = os.path.join(tmp, kind)
        os.makedirs(d)
        path = template(name, d, "\n" + web[runtime] + labels)
        servers[kind] = Server(runtime, f"benchw{kind[0]}{os.getpid()}", path, env)
    for s in servers.values():
        for host, want in (("web.localhost", "Hello world!"), ("serviceb.localhost", "Hello world!")):
            status, body = call(s.public, "GET", "/", headers={"Host": host})
            if status != 200 or body.strip() != want:
                raise SystemExit(f"{s.app} {host}: {status} {body!r}, not {want!r}")
    # One backend of each runtime, straight (no router): what the path to
    # a container costs by itself (bridge and veth against loopback).
    direct = {}
    for runtime, s in list(servers.items())[:2]:
        st = s.api("GET", f"/v1/apps/{s.app}")
        direct[runtime] = next((i["endpoint"], i["pid"]) for x in st["services"]
                               if x["name"] == "web" for i in x["instances"] if i.get("endpoint"))
    # The backends' processes (the instances' pids: the process, or the
    # container's main process), per server: web's, and the hello app's
    # (serviceb calls servicea.local).
    pids = {}
    for kind, s in servers.items():
        st = s.api("GET", f"/v1/apps/{s.app}")
        for host, of_web in (("web.localhost", True), ("serviceb.localhost", False)):
            pids[(host, kind)] = [i["pid"] for x in st["services"] if (x["name"] == "web") == of_web
                                  for i in x["instances"] if i.get("pid")]
    rows = [("direct", "process"), ("direct", "docker"), ("web.localhost", "process"),
            ("web.localhost", "docker"), ("web.localhost", "bridge"),
            ("serviceb.localhost", "process"), ("serviceb.localhost", "docker"),
            ("serviceb.localhost", "bridge")]
    results = {k: [] for k in rows}
    for rnd in range(ROUNDS):
        # Order rotated per round, as bench/proxy.sh does.
        for key in rows[rnd % len(rows):] + rows[:rnd % len(rows)]:
            host, runtime = key
            s = servers[runtime]
            if host == "direct":
                endpoint, pid = direct[runtime]
                results[key].append(wrk(None, endpoint, "web.localhost", [pid]))
            else:
                results[key].append(wrk(s.proc.pid, s.public, host, pids[key]))
        log(f"  round {rnd + 1}: " + ", ".join(
            f"{h.split('.')[0]}/{r} {results[(h, r)][-1][0]:.0f}" for h, r in rows) + " req/s")
    for s in servers.values():
        s.stop()
    med = {k: [statistics.median(x[i] for x in v) for i in range(7)] for k, v in results.items()}
    print(f"(d) wrk -t1 -c{CONNS} -d{DURATION}s keep-alive, medians of {ROUNDS} interleaved rounds; "
          "CPU µs per request of the turnout server (router and control plane), of dockerd and "
          "of the backends' processes; the backends' context switches per request")
    print(f"    {'what':<36} {'backends':<8} {'req/s':>8} {'p50 µs':>7} {'p99 µs':>7} "
          f"{'server':>7} {'dockerd':>8} {'backends':>8} {'switches':>8}")
    names = {"direct": "direct to one backend (no router)",
             "web.localhost": "web: router -> backend",
             "serviceb.localhost": "serviceb: -> servicea.local ->"}
    for (host, runtime), (rps, p50, p99, cpu, engine, back, sw) in med.items():
        server_cpu = "" if host == "direct" else f"{cpu:.1f}"
        print(f"    {names[host]:<36} {runtime:<8} {rps:>8.0f} {p50:>7.0f} {p99:>7.0f} "
              f"{server_cpu:>7} {engine:>8.2f} {back:>8.1f} {sw:>8.3f}")
    for host, kind in (("direct", "docker"), ("web.localhost", "docker"),
                       ("web.localhost", "bridge"), ("serviceb.localhost", "docker"),
                       ("serviceb.localhost", "bridge")):
        p, d = med[(host, "process")], med[(host, kind)]
        per_round = [dr[0] / pr[0] for dr, pr in zip(results[(host, kind)],
                                                       results[(host, "process")])]
        print(f"    {host}: {kind}/process req/s, median of the rounds' ratios "
              f"{statistics.median(per_round):.2f} (per round "
              + ", ".join(f"{x:.2f}" for x in per_round) + f"); p99 {d[2] / p[2]:.2f}"
              + ("" if host == "direct" else f", server CPU/req {d[3] / p[3]:.2f}")
              + ("  (target: web within 10 %)" if (host, kind) == ("web.localhost", "docker")
                 else ""))


def main():
    what = os.environ.get("PARTS", "releases,overhead").split(",")
    tmp = tempfile.mkdtemp(prefix="turnout-bench-docker-")
    try:
        if "releases" in what:
            releases(tmp)
        if "overhead" in what:
            overhead(tmp)
    finally:
        for s in SERVERS:
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)


main()

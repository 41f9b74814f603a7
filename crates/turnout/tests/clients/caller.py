"""An instance that calls another service with a real HTTP client.

Run by the process runtime (tests/real_clients.rs): it serves HTTP on
$PORT and, for each GET, calls the URL in the `target` query parameter
with the client named on the command line, answering "<status> <body>"
of that call. Proxy settings come from the instance's environment
(HTTP_PROXY, NO_PROXY) as turnout sets them, exactly as any program would
read them; only `bare` strips the credentials from the proxy URL.
"""

import http.server
import os
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request

CLIENT = sys.argv[1]


def with_urllib(url, opener=None):
    try:
        with (opener or urllib.request.build_opener()).open(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def with_requests(url):
    import requests

    r = requests.get(url, timeout=10)
    return r.status_code, r.text


def with_curl(url):
    out = subprocess.run(
        ["curl", "-sS", "--max-time", "10", "-w", "\n%{http_code}", url],
        capture_output=True,
        text=True,
        check=False,
    )
    body, _, code = out.stdout.rpartition("\n")
    return int(code or 0), body or out.stderr


def bare(url):
    # The proxy without the instance's credentials: an unknown caller.
    proxy = urllib.parse.urlsplit(os.environ["HTTP_PROXY"])
    plain = "http://%s:%d" % (proxy.hostname, proxy.port)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": plain}))
    return with_urllib(url, opener)


CLIENTS = {"urllib": with_urllib, "requests": with_requests, "curl": with_curl, "bare": bare}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        target = query.get("target", ["http://api.local/"])[0]
        try:
            status, body = CLIENTS[CLIENT](target)
            answer = "%d %s" % (status, body)
        except Exception as e:  # the test shows what went wrong
            answer = "error %r" % e
        data = answer.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()

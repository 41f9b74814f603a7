"""What the bench drivers (bench/*.py) share: the project's root and one
JSON-over-HTTP call to a turnout server's API or router."""

import http.client
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def call(addr, method, path, body=None, headers=None, timeout=30):
    """`method path` at `addr` ("host:port"), `body` sent as JSON: the
    status and the body's text."""
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    data = json.dumps(body) if body is not None else None
    conn.request(method, path, body=data, headers=headers or {})
    r = conn.getresponse()
    text = r.read().decode()
    conn.close()
    return r.status, text

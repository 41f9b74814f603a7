"""The seed article's demo services in Python, as their authors wrote them:
serviceA answers a text; serviceB calls serviceA with `requests` through
the `dep_endpoint` URL (http://servicea.local) and answers a prefix plus
serviceA's answer. turnout gives every instance HTTP_PROXY with its proxy
credentials; `requests` reads it like any other program would, so nothing
here knows about turnout. Listens on $PORT.

    python3 service.py --text 'world!'
    dep_endpoint=http://servicea.local python3 service.py --prefix 'Hello '
"""

import argparse
import http.server
import os

parser = argparse.ArgumentParser()
parser.add_argument("--text", help="answer this (serviceA)")
parser.add_argument("--prefix", help="answer this plus dep_endpoint's answer (serviceB)")
args = parser.parse_args()


def answer():
    if args.text is not None:
        return 200, args.text
    import requests

    try:
        r = requests.get(os.environ["dep_endpoint"], timeout=10)
    except requests.RequestException as e:
        return 502, "dep_endpoint failed: %s" % e
    if not r.ok:
        return 502, "dep_endpoint answered %d: %s" % (r.status_code, r.text)
    return 200, args.prefix + r.text


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        status, body = answer()
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()

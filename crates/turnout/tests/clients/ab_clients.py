"""Sticky A/B clients with a real HTTP client (tests/ab_test.rs).

Usage: ab_clients.py ADDR HOST CLIENTS GOAL RATES
  RATES: `FIRSTWORD=TENTHS,...`, e.g. `Hello=1,Welcome=3`: of the clients a
  variant (told by the first word of its answer) serves, every 10 in a row
  has TENTHS that go on to GOAL. The choice is by the client's rank among
  its variant's clients, not random, so the rates are exact.

Each client is its own `requests.Session` (its own cookie jar, as a
browser profile would be): it GETs `/`, keeps the `turnout_pos` cookie the
router gives it, and the converting ones GET GOAL with it. Prints one JSON
object: per variant, its clients and conversions; and the clients whose
second answer came from another variant (stickiness broken).
"""

import json
import sys

import requests

addr, host, clients, goal, rates = sys.argv[1:6]
tenths = dict((k, int(v)) for k, v in (p.split("=") for p in rates.split(",")))
seen = {}
converted = {}
moved = 0
for _ in range(int(clients)):
    with requests.Session() as s:
        r = s.get(f"http://{addr}/", headers={"Host": host}, timeout=10)
        r.raise_for_status()
        variant = r.text.split()[0]
        rank = seen.get(variant, 0)
        seen[variant] = rank + 1
        if "turnout_pos" not in s.cookies:
            sys.exit(f"no turnout_pos cookie in {r.headers}")
        if rank % 10 < tenths.get(variant, 0):
            r = s.get(f"http://{addr}{goal}", headers={"Host": host}, timeout=10)
            r.raise_for_status()
            if r.text.split()[0] != variant:
                moved += 1
            converted[variant] = converted.get(variant, 0) + 1
print(json.dumps({"clients": seen, "converted": converted, "moved": moved}))

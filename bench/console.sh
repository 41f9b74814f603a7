#!/usr/bin/env bash
# The web console's targets (issue 13), in headless Chromium against the
# real server on loopback with an app of SERVICES services (one
# `turnout demo-app` each, each on its own route, light traffic over all):
#   - first paint under 300 ms
#   - input answered under 100 ms while the services update once a second
# Prints figures; asserts nothing. Needs Debian's chromium and
# chromium-driver (.ci/run installs them).
#   bench/console.sh [SERVICES] [INPUTS] [REQUESTS_PER_SECOND]
set -euo pipefail
cd "$(dirname "$0")/.."
services=${1:-200}
inputs=${2:-200}
load=${3:-300}
cargo build --release -q -p turnout
exec python3 bench/console.py target/release/turnout "$services" "$inputs" "$load"

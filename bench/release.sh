#!/usr/bin/env bash
# Release timings of the control plane on examples/hello (issue 4 targets):
#   - release to pending-confirmation < 2 s
#   - confirm (drain included, idle traffic) < 1 s
#   - a weight change through the API is in the data plane before the API
#     answers; p99 of that call < 10 ms
# Prints figures; asserts nothing. Everything on loopback, bounded.
#   bench/release.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
cargo build --release -q -p turnout
exec python3 bench/release.py target/release/turnout "$rounds"

#!/usr/bin/env bash
# Issue 12's decision target: a progressive release is promoted or rolled
# back within one analysis window after the evidence is there. On
# examples/hello under steady load: the time from switching a canary's
# demo-apps to failing (POST /control) to its release-failed event, from
# a healthy canary's first passing check to its promotion, and from a
# fake Prometheus's value going over max to the release-failed event,
# each in ms and in windows. Prints figures; asserts nothing.
#   bench/analysis.sh [ROUNDS] [WINDOW_SECONDS]      (defaults 3, 1)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p turnout
exec python3 bench/analysis.py target/release/turnout decision "${1:-3}" "${2:-1}"

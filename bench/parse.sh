#!/usr/bin/env bash
# Parse speed of large templates (issue 2's goal: a 5,000-service template
# parses in under 200 ms in release mode). Prints figures; asserts nothing.
#   bench/parse.sh [SERVICES] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
services=${1:-5000}
rounds=${2:-11}
cargo build --release -q -p turnout-spec --example parse_bench
echo "== parse_bench (release), goal: 5000 services < 200 ms"
target/release/examples/parse_bench "$services" "$rounds"

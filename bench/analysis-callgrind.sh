#!/usr/bin/env bash
# Issue 12's cost target: the analysis costs the request path no lock and
# no allocation (instructions per request within 3 % of the same setup
# without it). `turnout up examples/hello/app.yaml` under callgrind (the
# whole server process: router and control plane; the demo-apps it starts
# are not traced), the same keep-alive load to serviceb in three states:
# no release, a gray release held at 50 % without analysis gates, and the
# same release with its gates judged every second. Counters are zeroed
# after a warm-up. Prints instructions per request of each; asserts
# nothing.
#   bench/analysis-callgrind.sh [REQUESTS] [WARMUP]      (defaults 6000, 600)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
bench_need valgrind python3
cargo build --release -q -p turnout
exec python3 bench/analysis.py target/release/turnout callgrind "${1:-6000}" "${2:-600}"

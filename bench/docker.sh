#!/usr/bin/env bash
# The docker runtime's targets (issue 11) on this machine, with local
# images (no registry):
#   (a) release of examples/hello on docker to pending-confirmation, the
#       release starting 5 containers (serviceB scaled to 5 in a temporary
#       copy; serviceA 3): from `turnout release` starting to the state
#       pending-confirmation — target < 5 s
#   (b) confirm, until the old 5 containers are gone from `docker ps -a`
#       — target < 3 s
#   (c) rollback, until the new 5 containers are gone likewise — < 3 s
#   (d) the router's requests/s and latency to container backends beside
#       the same router to process backends (and to container backends
#       over the bridge, TURNOUT_DOCKER_NETNS=off) (same demo-app answer, wrk
#       with bench/proxy.sh's settings) — target: within 10 %
# Each over ROUNDS rounds (median, min, max). Prints figures; asserts
# nothing. Everything on loopback or the app's own containers, bounded;
# what it starts is stopped and removed at exit (its containers by their
# server's id label, its image tag).
#   bench/docker.sh [ROUNDS]
# Knobs (environment): DURATION (s per wrk run, default 5), CONNS (wrk
# connections, default 32), PARTS (releases,overhead: both by default),
# TURNOUT (a turnout binary instead of building target/release/turnout),
# SAME_SESSION=1 (the servers in the bench's session, with wrk: the
# arrangement before session 10, which favours process backends).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh

ROUNDS=${1:-3}
DURATION=${DURATION:-5}
CONNS=${CONNS:-32}

bench_need wrk python3
echo "load tool: $(command -v wrk) ($(wrk -v 2>&1 | head -1 | cut -c1-40))" >&2
docker version --format '{{.Server.APIVersion}}' >/dev/null ||
  { echo "no Docker engine answers at ${DOCKER_HOST:-unix:///var/run/docker.sock}" >&2; exit 1; }
build_turnout
bench_init docker
# An image tag of this run's own, untagged at exit (a shared tag such as
# dev could be retagged by another build meanwhile).
TAG=bench-$$
bench_at_exit() { docker rmi "turnout:$TAG" >/dev/null 2>&1; }
# --release: the label says which profile; TURNOUT may be any build.
case $TURNOUT in */release/turnout) profile=(--release) ;; *) profile=() ;; esac
images/build.sh --tag "$TAG" "${profile[@]}" --binary "$TURNOUT" turnout >&2
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)," \
  "$(docker ps -q | wc -l) containers running, docker $(docker version --format '{{.Server.Version}}')" >&2
PARTS=${PARTS:-releases,overhead} python3 bench/docker.py "$TURNOUT" "$TAG" "$ROUNDS" "$DURATION" "$CONNS"

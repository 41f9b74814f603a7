#!/usr/bin/env bash
# Builds the local images of the docker runtime, its tests and examples.
# There is no image registry here: nothing is pulled. See --help.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: images/build.sh [OPTIONS] [all|debian|turnout]

Builds local Docker images without a registry (nothing is pulled):

  turnout-debian:TAG  a minimal Debian root filesystem (debootstrap
                      --variant=minbase) with python3 and python3-requests,
                      imported with `docker import`. The rootfs tarball is
                      cached in the cache directory, keyed by what goes into
                      it (suite, mirror, packages, debootstrap version, this
                      script's recipe); the image is re-imported only when it
                      is missing or was made from another tarball.
  turnout:TAG         FROM scratch: the turnout binary at /usr/local/bin/turnout
                      and exactly the shared libraries `ldd` lists for it (the
                      dynamic loader included); default command
                      `turnout demo-app`. Rebuilt only when the binary (or a
                      library) changed: the image carries the binary's
                      SHA-256 as label turnout.binary-sha256.

A second run with nothing changed takes seconds.

Options:
  --tag TAG          tag of both images (default: dev)
  --release          put the release binary in turnout:TAG (default: debug)
  --binary PATH      use this turnout binary; cargo is not run
  --no-cargo         use the binary already in the target directory
  --no-strip         keep the binary's debug info (default: strip it, which
                     makes a debug image about 5x smaller; symbols are kept)
  --suite SUITE      Debian suite (default: bookworm)
  --mirror URL       Debian mirror (default: the first one of
                     /etc/apt/sources.list and /etc/apt/sources.list.d/*
                     that serves SUITE, else http://deb.debian.org/debian)
  --cache-dir DIR    where rootfs tarballs are kept (default: $TURNOUT_CACHE_DIR,
                     else ${XDG_CACHE_HOME:-$HOME/.cache}/turnout)
  --timeout SECONDS  bound of each long step: debootstrap, cargo build,
                     docker import, docker build (default: 900)
  --force            rebuild the rootfs tarball and both images
  -h, --help         this help

Needs: docker (engine reachable at $DOCKER_HOST, default
unix:///var/run/docker.sock), and for turnout-debian, debootstrap and root
(apt-get install debootstrap). Environment: TURNOUT_CACHE_DIR, DOCKER_HOST,
CARGO_TARGET_DIR.

Examples:
  images/build.sh                    # both images, tag dev, debug binary
  images/build.sh --release turnout  # turnout:dev from a release build
  docker run --rm turnout:dev        # demo-app on port 8080
EOF
}

repo=$(cd "$(dirname "$0")/.." && pwd)
tag=dev
profile=debug
binary=
run_cargo=1
strip=1
suite=bookworm
mirror=
cache_dir=${TURNOUT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/turnout}
timeout_s=900
force=0
what=all
# Packages on top of minbase. python3: a standard-library client (urllib)
# for tests; python3-requests: examples/hello-python's serviceB imports it.
packages=(python3 python3-requests)

# Errors go to the script's own stderr (fd 8), also from inside a step
# whose output is filtered.
exec 8>&2
fail_log=
die() {
  if [ -n "$fail_log" ] && [ -f "$fail_log" ]; then
    echo "--- last lines of $fail_log:" >&8
    tail -20 "$fail_log" >&8
  fi
  echo "images/build.sh: error: $*" >&8
  exit 1
}

while [ $# -gt 0 ]; do
  case $1 in
  -h | --help) usage; exit 0 ;;
  --tag) tag=${2:?--tag needs a value}; shift ;;
  --release) profile=release ;;
  --binary) binary=${2:?--binary needs a path}; run_cargo=0; shift ;;
  --no-cargo) run_cargo=0 ;;
  --no-strip) strip=0 ;;
  --suite) suite=${2:?--suite needs a value}; shift ;;
  --mirror) mirror=${2:?--mirror needs a URL}; shift ;;
  --cache-dir) cache_dir=${2:?--cache-dir needs a directory}; shift ;;
  --timeout) timeout_s=${2:?--timeout needs seconds}; shift ;;
  --force) force=1 ;;
  all | debian | turnout) what=$1 ;;
  *) echo "images/build.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[[ $timeout_s =~ ^[1-9][0-9]*$ ]] || { echo "images/build.sh: --timeout wants a number of seconds, not $timeout_s" >&2; exit 2; }
[[ $tag =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || { echo "images/build.sh: --tag $tag is not a valid Docker tag" >&2; exit 2; }

started=$SECONDS
say() { printf '==> [%3ds] %s\n' $((SECONDS - started)) "$*"; }

# Long steps run in the background under timeout(1), so that a signal to
# this script reaches them (the trap below) and every wait is bounded.
child=
work=
on_signal() {
  trap - INT TERM
  if [ -n "$child" ]; then
    kill -TERM "$child" 2>/dev/null || true
    wait "$child" 2>/dev/null || true
  fi
  echo "images/build.sh: interrupted" >&8
  exit 130
}
cleanup() {
  if [ -n "$work" ] && [ -d "$work" ]; then
    # debootstrap mounts proc and sys in the target; an interrupted run can
    # leave them. Unmount (deepest first), then remove without crossing
    # into any mount that is left.
    awk -v w="$work/" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r |
      while read -r m; do umount -l "$m" 2>/dev/null || true; done
    rm -rf --one-file-system "$work" 2>/dev/null || true
  fi
}
trap on_signal INT TERM
trap cleanup EXIT

# bounded WHAT COMMAND...: runs COMMAND for at most --timeout seconds;
# on failure returns 1 with the reason in $bounded_error (for `|| die`,
# outside any redirection of the command's output).
bounded_error=
bounded() {
  local what=$1 rc=0
  shift
  timeout -k 10 "$timeout_s" "$@" &
  child=$!
  wait "$child" || rc=$?
  child=
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    bounded_error="$what did not finish within ${timeout_s}s (raise --timeout, or look at the output above)"
  elif [ "$rc" -ne 0 ]; then
    bounded_error="$what failed (exit $rc; see the output above)"
  fi
  [ "$rc" -eq 0 ]
}

need() { command -v "$1" >/dev/null || die "$1 not found: $2"; }

check_docker() {
  need docker "install the docker CLI (the engine must be reachable too)"
  local host=${DOCKER_HOST:-unix:///var/run/docker.sock} out
  if ! out=$(timeout 20 docker version --format '{{.Server.APIVersion}}' 2>&1); then
    die "docker is not reachable at ${host#unix://}: start the engine (systemctl start docker, or dockerd &) or set DOCKER_HOST (docker said: $(echo "$out" | tail -1))"
  fi
  say "docker engine at $host (API $out)"
}

# The Docker label of an image, empty when the image or label is missing.
label() {
  timeout 30 docker image inspect --format "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null || true
}
image_id() { timeout 30 docker image inspect --format '{{.Id}}' "$1" 2>/dev/null || true; }

# Removes the image a tag pointed at before a rebuild, if nothing else uses it.
drop_old() {
  local old=$1 new
  new=$(image_id "$2")
  if [ -n "$old" ] && [ "$old" != "$new" ]; then
    timeout 30 docker image rm "$old" >/dev/null 2>&1 || true
  fi
}

# Serialise builds that share the cache (CI and a developer, two worktrees).
lock() {
  mkdir -p "$cache_dir"
  exec 9>"$cache_dir/build.lock"
  if ! flock -n 9; then
    say "waiting for another images/build.sh ($cache_dir/build.lock, at most ${timeout_s}s)"
    flock -w "$timeout_s" 9 || die "$cache_dir/build.lock stayed locked for ${timeout_s}s: is another images/build.sh stuck? (see ps)"
  fi
}

# ---------------------------------------------------------------- debian

# The first mirror of the machine's apt sources that serves $suite: deb822
# (*.sources) and one-line (*.list) formats.
apt_mirror() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    case $f in
    *.sources)
      awk -v s="$suite" '
        function flush() { if (uris != "" && (" " suites " ") ~ (" " s " ") && types ~ /(^| )deb( |$)/) { split(uris, u, " "); print u[1]; found = 1; exit } uris = suites = types = "" }
        /^[ \t]*#/ { next }
        /^[ \t]*$/ { flush(); next }
        tolower($1) == "types:" { $1 = ""; types = $0 }
        tolower($1) == "uris:" { $1 = ""; uris = $0; sub(/^ +/, "", uris) }
        tolower($1) == "suites:" { $1 = ""; suites = $0 }
        END { if (!found) flush() }' "$f"
      ;;
    *)
      awk -v s="$suite" '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ } if ($(i+1) == s) { print $i; exit } }' "$f"
      ;;
    esac
  done | head -1
}

# What is removed from the root filesystem (part of the cache key: edit it
# and the next run makes a new tarball).
slim_rootfs() {
  local r=$1
  find "$r/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
  find "$r/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$r"/usr/share/man/* "$r"/usr/share/info/* "$r"/usr/share/lintian/* "$r"/usr/share/linda/*
  find "$r/usr/share/locale" -mindepth 1 -maxdepth 1 -type d -exec rm -rf {} +
  rm -rf "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/*.bin "$r"/var/cache/apt/archives/*.deb
  rm -f "$r"/var/cache/debconf/*-old "$r"/var/lib/dpkg/*-old
  find "$r/var/log" -type f -delete
  # Docker provides these per container; the builder's must not leak in.
  rm -f "$r/etc/hostname" "$r/etc/resolv.conf"
  : >"$r/etc/hosts"
  # Later `apt-get install`s in images made from this one stay small too.
  mkdir -p "$r/etc/dpkg/dpkg.cfg.d"
  cat >"$r/etc/dpkg/dpkg.cfg.d/turnout-slim" <<'EOS'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOS
}

build_debian() {
  local image=turnout-debian:$tag arch dbver key tarball log
  [ -n "$mirror" ] || mirror=$(apt_mirror)
  [ -n "$mirror" ] || mirror=http://deb.debian.org/debian
  mirror=${mirror%/}
  arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
  dbver=$(debootstrap --version 2>/dev/null || echo none)
  key=$(
    {
      echo "suite=$suite mirror=$mirror arch=$arch variant=minbase packages=${packages[*]} $dbver"
      declare -f slim_rootfs
    } | sha256sum | cut -c1-16
  )
  tarball=$cache_dir/debian-$suite-$arch-$key.tar.gz

  if [ "$force" = 0 ] && [ -f "$tarball" ]; then
    say "rootfs tarball cached: $tarball ($(du -h "$tarball" | cut -f1))"
  else
    need debootstrap "install it with: apt-get install debootstrap"
    [ "$(id -u)" = 0 ] || die "debootstrap needs root (chroot, mknod): run images/build.sh as root or with sudo"
    say "debootstrap --variant=minbase $suite from $mirror with ${packages[*]} (a cold build takes a few minutes)"
    work=$(mktemp -d "$cache_dir/work.XXXXXX")
    log=$work/debootstrap.out
    # On failure, debootstrap's own log says what went wrong.
    fail_log=$work/rootfs/debootstrap/debootstrap.log
    # The full output goes to a log; the terminal gets the first and every
    # 25th line of each kind (Retrieving, Extracting, Unpacking, ...).
    bounded "debootstrap" debootstrap --variant=minbase --arch="$arch" \
      --include="$(
        IFS=,
        echo "${packages[*]}"
      )" "$suite" "$work/rootfs" "$mirror" \
      > >(tee "$log" | awk '
        $1 != "I:" { print "    " $0; fflush(); next }
        $2 == "Validating" { next }
        { c = ++count[$2]; if (c == 1 || c % 25 == 0) { print "    " $0; fflush() } }') 2>&1 ||
      die "$bounded_error"
    fail_log=
    say "slimming the rootfs ($(du -sh "$work/rootfs" | cut -f1) before)"
    slim_rootfs "$work/rootfs"
    chroot "$work/rootfs" python3 -c 'import urllib.request, requests' ||
      die "python3 with urllib and requests does not run in the new rootfs"
    # shellcheck disable=SC2016 # dpkg-query expands these
    chroot "$work/rootfs" dpkg-query -W -f '${Package} ${Version}\n' >"$work/packages.txt"
    say "packing $(du -sh "$work/rootfs" | cut -f1) into $tarball"
    tar --numeric-owner --sort=name -C "$work/rootfs" -cf - . | gzip -1 >"$work/rootfs.tar.gz"
    mv "$work/packages.txt" "${tarball%.tar.gz}.packages"
    mv "$work/rootfs.tar.gz" "$tarball"
    cleanup
    work=
    say "rootfs tarball: $tarball ($(du -h "$tarball" | cut -f1), $(wc -l <"${tarball%.tar.gz}.packages") packages)"
  fi

  if [ "$force" = 0 ] && [ "$(label "$image" turnout.rootfs)" = "$key" ]; then
    say "$image is up to date ($(label "$image" turnout.rootfs))"
    return
  fi
  local old
  old=$(image_id "$image")
  say "docker import $tarball as $image"
  bounded "docker import" docker import \
    --change "LABEL turnout.rootfs=$key turnout.suite=$suite" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8' \
    --change 'CMD ["bash"]' \
    "$tarball" "$image" >/dev/null || die "$bounded_error"
  drop_old "$old" "$image"
  say "$image: $(timeout 30 docker image inspect --format '{{.Size}}' "$image" | awk '{ printf "%.0f MB", $1 / 1e6 }')"
}

# --------------------------------------------------------------- turnout

build_turnout() {
  local image=turnout:$tag bin_sha key ctx lib libs=() old
  if [ -z "$binary" ]; then
    binary=${CARGO_TARGET_DIR:-$repo/target}/$profile/turnout
    if [ "$run_cargo" = 1 ]; then
      need cargo "install a Rust toolchain (https://rustup.rs), or pass --binary PATH"
      say "cargo build ($profile) of the turnout binary"
      local flags=(build --locked --manifest-path "$repo/Cargo.toml" -p turnout --bin turnout)
      [ "$profile" = release ] && flags+=(--release)
      bounded "cargo build" cargo "${flags[@]}" || die "$bounded_error"
    fi
  fi
  [ -x "$binary" ] || die "no turnout binary at $binary: build it (cargo build) or pass --binary PATH"
  bin_sha=$(sha256sum "$binary" | cut -d' ' -f1)

  # Every library ldd names, by the path the loader will look for.
  local out
  out=$(ldd "$binary" 2>&1) || die "ldd $binary failed: $out"
  if grep -q 'not found' <<<"$out"; then
    die "$binary needs libraries this machine lacks: $(grep 'not found' <<<"$out" | tr -s ' \t' ' ')"
  fi
  while read -r lib; do libs+=("$lib"); done < <(
    awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$out" | sort -u
  )
  [ ${#libs[@]} -gt 0 ] || die "ldd found no libraries in $binary (a static binary? then build FROM scratch by hand)"
  key=$(
    {
      echo "binary=$bin_sha strip=$strip"
      sha256sum "${libs[@]}"
      declare -f dockerfile
    } | sha256sum | cut -c1-16
  )
  if [ "$force" = 0 ] && [ "$(label "$image" turnout.image-key)" = "$key" ]; then
    say "$image is up to date (binary sha256 ${bin_sha:0:12})"
    return
  fi

  work=$(mktemp -d "${TMPDIR:-/tmp}/turnout-image.XXXXXX")
  ctx=$work
  mkdir -p "$ctx/rootfs/usr/local/bin" "$ctx/rootfs/tmp"
  # The context is the Dockerfile and rootfs/ only.
  chmod 1777 "$ctx/rootfs/tmp"
  if [ "$strip" = 1 ]; then
    objcopy --strip-debug "$binary" "$ctx/rootfs/usr/local/bin/turnout" ||
      die "objcopy --strip-debug failed (install binutils, or pass --no-strip)"
  else
    cp "$binary" "$ctx/rootfs/usr/local/bin/turnout"
  fi
  for lib in "${libs[@]}"; do
    mkdir -p "$ctx/rootfs$(dirname "$lib")"
    cp -L "$lib" "$ctx/rootfs$lib"
  done
  dockerfile "$bin_sha" "$key" "$profile" >"$ctx/Dockerfile"
  old=$(image_id "$image")
  say "docker build $image: $(du -sh "$ctx/rootfs" | cut -f1) (turnout $profile$([ "$strip" = 1 ] && echo ", debug info stripped"), ${libs[*]})"
  # The classic builder (no buildx here); its stderr (a deprecation notice
  # on every run) is shown only when the build fails.
  fail_log=$work/build.err
  DOCKER_BUILDKIT=0 bounded "docker build" docker build --force-rm -q -t "$image" "$ctx" >/dev/null 2>"$fail_log" ||
    die "$bounded_error"
  fail_log=
  drop_old "$old" "$image"
  cleanup
  work=
  say "$image: $(timeout 30 docker image inspect --format '{{.Size}}' "$image" | awk '{ printf "%.0f MB", $1 / 1e6 }'), binary sha256 ${bin_sha:0:12}"
}

dockerfile() {
  cat <<EOF
FROM scratch
COPY rootfs/ /
ENV PATH=/usr/local/bin:/usr/bin:/bin
LABEL turnout.binary-sha256="$1" turnout.image-key="$2" turnout.binary-profile="$3"
EXPOSE 8080
CMD ["turnout", "demo-app"]
EOF
}

check_docker
lock
case $what in
all) build_debian; build_turnout ;;
debian) build_debian ;;
turnout) build_turnout ;;
esac
say "done"

#!/usr/bin/env bash
# The embedded deployment's containers: a Docker engine and the platform's two
# built-in images, made by `make run` and `make test` (images/README.md).
#
# Usage: scripts/containers.sh [STEP] [PYTHON]
#   all (default)  engine, base, then images
#   engine         install docker.io (apt) when dockerd is missing; start dockerd
#                  when no engine answers (a running engine is left alone)
#   base           flightbase/debian:bookworm, from `debootstrap --variant=minbase
#                  bookworm` and `docker import`, when the engine does not have it
#   images         flightbase/training-base:0.1.0 and flightbase/notebook:0.1.0 from
#                  images/embedded/: each is built only when the digest of what goes
#                  into it differs from its ai.flightbase.content-hash label
#   digest DIR     print the digest of a folder (paths, modes, contents), as above
# PYTHON: the project venv's interpreter (default .venv/bin/python); its pip, with
# this machine's pip configuration, collects the wheels the images install.
#
# Not root: says that containers are off and exits 0 (the platform then runs jobs
# and notebooks as local processes). Root: any failure stops with an error.
#
# Environment:
#   FLIGHTBASE_CACHE            cache root (default ~/.cache/flightbase); the collected
#                               wheels, build contexts and logs are in its images/
#   FLIGHTBASE_DOCKERD_TIMEOUT  seconds to wait for a started dockerd (default 90)
#   FLIGHTBASE_DOCKERD_LOG      the log of a dockerd started here (default /var/log/flightbase-dockerd.log)
#   FLIGHTBASE_DEBIAN_MIRROR    debootstrap's mirror (default http://deb.debian.org/debian)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
step="${1:-all}"

BASE_REF=flightbase/debian:bookworm
TRAINING_REF=flightbase/training-base:0.1.0   # as services/registry/flightbase_registry/builtin.py names them
NOTEBOOK_REF=flightbase/notebook:0.1.0
HASH_LABEL=ai.flightbase.content-hash
TORCH_VERSION=2.13.0      # scripts/install-ml.sh caches Horovod's wheel under this torch
HOROVOD_VERSION=0.28.1
# Fixed timestamps in the wheels built here: the same sources give the same bytes.
export SOURCE_DATE_EPOCH=315532800

cache="${FLIGHTBASE_CACHE:-$HOME/.cache/flightbase}"
work="$cache/images"
logs="$work/logs"

NAME=containers
# say, die, digest_dir, digest_text, project_python, pip_, keyed_wheels, stage_sources, build_image
. "$here/lib/images.sh"
py="$(project_python "${2:-}")"

if [ "$step" = digest ]; then
  [ $# -ge 2 ] || die "usage: scripts/containers.sh digest DIR"
  digest_dir "$2"
  exit 0
fi

case "$step" in all|engine|base|images) ;; *) die "unknown step '$step' (all, engine, base, images, digest DIR)" ;; esac

if [ "$(id -u)" != 0 ]; then
  say "not root (uid $(id -u)): containers are off; the platform runs jobs and notebooks as local processes"
  exit 0
fi

apt_install() {
  say "installing Debian packages: $*"
  apt-get update -qq || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
    || die "apt-get install $* failed"
}

engine_answers() { timeout 20 docker info >/dev/null 2>&1; }

# ---- 1. the engine ---------------------------------------------------------------
ensure_engine() {
  if command -v docker >/dev/null 2>&1 && engine_answers; then
    say "a Docker engine answers: left as it is"
    return
  fi
  if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
    apt_install docker.io
    # docker.io's own scripts may have started it already
    if engine_answers; then say "a Docker engine answers"; return; fi
  fi
  local log="${FLIGHTBASE_DOCKERD_LOG:-/var/log/flightbase-dockerd.log}" timeout="${FLIGHTBASE_DOCKERD_TIMEOUT:-90}"
  say "no Docker engine answers: starting dockerd (state in Docker's default /var/lib/docker, log $log)"
  # its own session: it outlives this make, and make's Ctrl-C does not reach it; without
  # descriptor 9, the build lock, which it would otherwise hold for as long as it runs
  setsid nohup dockerd >>"$log" 2>&1 </dev/null 9>&- &
  local pid=$! start=$SECONDS
  until engine_answers; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 "$log" >&2 || true
      die "dockerd exited before it answered (log: $log)"
    fi
    if [ $((SECONDS - start)) -ge "$timeout" ]; then
      tail -n 20 "$log" >&2 || true
      die "dockerd (pid $pid) did not answer 'docker info' within ${timeout}s (log: $log; FLIGHTBASE_DOCKERD_TIMEOUT)"
    fi
    sleep 1
  done
  say "dockerd answers (pid $pid, after $((SECONDS - start))s)"
}

# ---- 2. the Debian 12 base image ------------------------------------------------
# Unmount whatever debootstrap left mounted under $1 (it may bind the host's /dev),
# then remove it without crossing into another file system.
remove_tree() {
  local dir="$1" m
  [ -d "$dir" ] || return 0
  for m in $(awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" || true
  done
  if awk -v d="$dir/" 'index($2, d) == 1 { found = 1 } END { exit !found }' /proc/mounts; then
    die "something is still mounted under $dir: not removing it"
  fi
  rm -rf --one-file-system "$dir"
}

ensure_base() {
  if docker image inspect "$BASE_REF" >/dev/null 2>&1; then
    say "$BASE_REF is there"
    return
  fi
  command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap
  local mirror="${FLIGHTBASE_DEBIAN_MIRROR:-http://deb.debian.org/debian}" root log="$logs/debootstrap.log" start=$SECONDS
  mkdir -p "$logs"
  root="$(mktemp -d /var/tmp/flightbase-debian.XXXXXX)"
  trap 'remove_tree "'"$root"'"' EXIT
  say "making $BASE_REF: debootstrap --variant=minbase bookworm from $mirror (log: $log)"
  if ! debootstrap --variant=minbase bookworm "$root" "$mirror" >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    die "debootstrap failed (log: $log)"
  fi
  # The suites this machine uses: point-release updates and security fixes too.
  rm -f "$root/etc/apt/sources.list"
  cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${mirror%/debian}/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/*.log
  tar --numeric-owner --one-file-system -C "$root" -c . \
    | docker import --change 'CMD ["/bin/bash"]' --message "debootstrap --variant=minbase bookworm $mirror" - "$BASE_REF" >/dev/null \
    || die "docker import of the debootstrap tree failed"
  remove_tree "$root"
  trap - EXIT
  say "made $BASE_REF in $((SECONDS - start))s"
}

# ---- 3. the images ------------------------------------------------------------------
# collect NAME KEY PIP-WHEEL-ARGS...: $work/wheels/NAME holds the wheels of those
# requirements (and of their dependencies), collected again only when KEY changes
# (keyed_wheels appends the folder, after -w).
collect() {
  local name="$1" key="$2"; shift 2
  keyed_wheels "$name" "$key" pip_ wheel --prefer-binary "$@" -w
}

# build_wheel NAME SOURCE-DIR KEY PIP-WHEEL-ARGS...: one wheel of our own in $work/wheels/NAME.
build_wheel() {
  local name="$1" src="$2" key="$3"; shift 3
  keyed_wheels "$name" "$key" pip_ wheel --no-deps "$@" "$src" -w
}

# The path of Horovod's cached wheel (on stdout; everything else on stderr).
horovod_wheel() {
  local dir="$cache/wheels/torch-$TORCH_VERSION" pytag
  pytag="$("$py" -c 'import sys; print("cp%d%d" % sys.version_info[:2])')"
  local found
  found="$(ls -1 "$dir"/horovod-"$HOROVOD_VERSION"-"$pytag"-*.whl 2>/dev/null | head -n1 || true)"
  if [ -z "$found" ]; then
    # install-ml.sh builds it (10-15 min) and caches it; forced, since the venv may
    # already have a Horovod whose wheel is gone
    say "no cached Horovod $HOROVOD_VERSION wheel in $dir: scripts/install-ml.sh builds it" >&2
    FLIGHTBASE_REBUILD_HOROVOD=1 "$here/install-ml.sh" "$py" >&2 || die "scripts/install-ml.sh failed"
    found="$(ls -1 "$dir"/horovod-"$HOROVOD_VERSION"-"$pytag"-*.whl 2>/dev/null | head -n1 || true)"
    [ -n "$found" ] || die "scripts/install-ml.sh left no Horovod wheel in $dir"
  fi
  echo "$found"
}

ensure_images() {
  [ -x "$py" ] || die "python '$py' not found (make install makes the venv)"
  docker image inspect "$BASE_REF" >/dev/null 2>&1 || die "$BASE_REF is missing (scripts/containers.sh base makes it)"
  mkdir -p "$work/wheels" "$logs"
  local hvd tb="$repo/images/embedded/training-base" nb="$repo/images/embedded/notebook"
  hvd="$(horovod_wheel)"

  # third-party wheels, keyed by their requirements (and Horovod's wheel)
  collect ml "$(digest_text "$(sha256sum <"$tb/requirements.txt")" "$(sha256sum <"$hvd")")" \
    --find-links "$(dirname "$hvd")" -r "$tb/requirements.txt"
  collect client "$(sha256sum <"$tb/client-requirements.txt")" -r "$tb/client-requirements.txt"
  collect notebook "$(sha256sum <"$nb/requirements.txt")" -r "$nb/requirements.txt"

  # Flightbase's client wheel (client/: all a job or a notebook needs of Flightbase), from a
  # clean copy of its sources (no stale build/ of setuptools), keyed by those sources
  local src="$work/src/client"
  stage_sources "$src" client
  build_wheel flightbase "$src/client" "$(digest_dir "$src")" --no-build-isolation

  # the JupyterLab extension's wheel, with the front end `make` built
  # ($(VENV)/.labext-installed); keyed by its package's files
  local lab="$repo/flightbase_labext"
  if [ ! -f "$lab/flightbase_labext/labextension/static/style.js" ]; then
    say "the extension's front end is not built: make .venv/.labext-installed"
    make -C "$repo" .venv/.labext-installed >&2 || die "building the JupyterLab extension failed"
  fi
  local labsrc="$work/src/labext"
  stage_sources "$labsrc" flightbase_labext/pyproject.toml flightbase_labext/package.json flightbase_labext/install.json \
    flightbase_labext/README.md flightbase_labext/jupyter-config flightbase_labext/flightbase_labext
  build_wheel labext "$lab" "$(digest_dir "$labsrc")"

  # training-base: its folder, the ML wheels, and the client's wheel with its requirements
  local ctx="$work/context/training-base"
  rm -rf "$ctx"
  mkdir -p "$ctx/wheels/app"
  cp -a "$tb/." "$ctx/"
  cp -al "$work/wheels/ml" "$ctx/wheels/ml"
  cp -l "$work/wheels/client/"*.whl "$work/wheels/flightbase/"*.whl "$ctx/wheels/app/"
  cp -a "$tb/client-requirements.txt" "$ctx/wheels/app/"
  find "$ctx" -name __pycache__ -prune -exec rm -rf {} +
  build_image "$TRAINING_REF" "$ctx" "$BASE_REF"

  # notebook: its folder, the notebook wheels and the extension's
  ctx="$work/context/notebook"
  rm -rf "$ctx"
  mkdir -p "$ctx"
  cp -a "$nb/." "$ctx/"
  cp -al "$work/wheels/notebook" "$ctx/wheels"
  cp -l "$work/wheels/labext/"*.whl "$ctx/wheels/"
  find "$ctx" -name __pycache__ -prune -exec rm -rf {} +
  build_image "$NOTEBOOK_REF" "$ctx" "$TRAINING_REF"
}

# One run at a time (`make run` and `make test` started together): the second waits.
mkdir -p "$work"
exec 9>"$work/.lock"
if ! flock -n 9; then
  say "another scripts/containers.sh holds $work/.lock; waiting"
  flock 9
fi

case "$step" in
  engine) ensure_engine ;;
  base) ensure_engine; ensure_base ;;
  images) ensure_engine; ensure_images ;;
  all) ensure_engine; ensure_base; ensure_images ;;
esac

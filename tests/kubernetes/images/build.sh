#!/usr/bin/env bash
# The local stand-ins of the images tests/kubernetes/test_deployment.py runs where the
# chart's own cannot be pulled (each Dockerfile says what it stands in for), built on this
# machine and cached by content as scripts/containers.sh builds the embedded images
# (scripts/lib/images.sh: a build only when the digest of the context and of the base image
# differs from the image's ai.flightbase.content-hash label).
#
# The cluster's own training and notebook images (images/training-base, images/notebook)
# are built here too, in their CPU flavour (build arguments; images/README.md): the same
# Dockerfiles as a cluster's, on Debian 12 with CPU torch and pip pointed at wheels
# collected on the host (the project venv's pip and this machine's pip configuration).
#
# Usage: tests/kubernetes/images/build.sh [IMAGE...]   (default: the first three)
#   postgres      flightbase-test/postgres:16            on flightbase/debian:bookworm
#   oci-registry  flightbase-test/oci-registry:2.8       on flightbase/debian:bookworm
#   chp           flightbase-test/chp:4.6.3              on flightbase/debian:bookworm (+ npm, on the host)
#   training-base flightbase-test/training-base-cluster:cpu  images/training-base, CPU flavour (compiles
#                 Horovod with MPI: 15 to 30 minutes on 2 cores the first time)
#   notebook      flightbase-test/notebook-cluster:cpu   images/notebook on the image above (builds it first)
# Environment: FLIGHTBASE_CACHE (default ~/.cache/flightbase): contexts and logs in its deployment-test/;
# PYTHON (default the project's .venv/bin/python): the pip that collects the wheels.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
cache="${FLIGHTBASE_CACHE:-$HOME/.cache/flightbase}"
work="$cache/deployment-test"
logs="$work/logs"
NAME=deployment-test-images
HASH_LABEL=ai.flightbase.content-hash
CHP_VERSION=4.6.3
HOROVOD_VERSION=0.28.1
TRAINING_REF=flightbase-test/training-base-cluster:cpu
NOTEBOOK_REF=flightbase-test/notebook-cluster:cpu
DEBIAN_REF=flightbase/debian:bookworm
py="${PYTHON:-$repo/.venv/bin/python}"
# fixed timestamps in the wheels built here: the same sources give the same bytes
export SOURCE_DATE_EPOCH=315532800
# say, die, digest_dir, digest_text, keyed_wheels, stage_sources, build_image
. "$repo/scripts/lib/images.sh"

command -v docker >/dev/null 2>&1 || die "no docker client"
mkdir -p "$logs"
exec 9>"$work/.lock"
flock 9

context() {  # context NAME: a fresh copy of the image's folder
  local ctx="$work/context/$1"
  rm -rf "$ctx"
  mkdir -p "$ctx"
  cp -a "$here/$1/." "$ctx/"
  echo "$ctx"
}

# normalize a context's modes (the digest covers them; a checkout's depend on the umask)
normalize_modes() {
  find "$1" -type d -exec chmod 755 {} +
  find "$1" -type f ! -name '*.sh' -exec chmod 644 {} +
  find "$1" -type f -name '*.sh' -exec chmod 755 {} +
}

collect_training_wheels() {  # the CPU requirements' wheels and Horovod's sdist
  "$py" -m pip wheel --prefer-binary -w "$3" -r "$1" \
    && "$py" -m pip download --no-deps --no-binary :all: -d "$3" "horovod==$2"
}

# the notebook's own wheels: Flightbase's client (from a clean copy of its sources) and the extension's
build_own_wheels() {
  local src="$work/src/flightbase" lab="$repo/flightbase_labext"
  stage_sources "$src" client
  [ -f "$lab/flightbase_labext/labextension/static/style.js" ] || make -C "$repo" .venv/.labext-installed
  "$py" -m pip wheel --no-deps --no-build-isolation -w "$1" "$src/client" && "$py" -m pip wheel --no-deps -w "$1" "$lab"
}

# every dependency of the notebook's requirements and of those two wheels (not the two themselves)
collect_notebook_deps() {
  "$py" -m pip wheel --prefer-binary -w "$3" -r "$1" "$2"/flightbase_client-*.whl "$2"/flightbase_labext-*.whl \
    && rm -f "$3"/flightbase_client-*.whl "$3"/flightbase_labext-*.whl
}

# the sources of the two wheels: their digest is the own wheels' key
own_sources_key() {
  (cd "$repo" && find client flightbase_labext/pyproject.toml \
      flightbase_labext/flightbase_labext -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 \
    | LC_ALL=C sort -z | xargs -0 sha256sum) | sha256sum | cut -d' ' -f1
}

build_training_base() {
  local tb="$repo/images/training-base" ctx="$work/context/training-base"
  keyed_wheels training-base "$(digest_text "$(sha256sum <"$tb/requirements-cpu.txt")" "$HOROVOD_VERSION")" \
    collect_training_wheels "$tb/requirements-cpu.txt" "$HOROVOD_VERSION"
  rm -rf "$ctx" && mkdir -p "$ctx"
  cp -a "$tb/." "$ctx/"
  cp -a "$repo/scripts/cxx17-wrapper.sh" "$ctx/"
  cp -al "$work/wheels/training-base" "$ctx/wheels"
  normalize_modes "$ctx"
  # the CPU flavour: Debian 12 for both stages, CPU torch, no NCCL, TensorFlow or gloo; pip offline
  build_image "$TRAINING_REF" "$ctx" "$DEBIAN_REF" RUNTIME_BASE="$DEBIAN_REF" REQUIREMENTS=requirements-cpu.txt \
    PIP_NO_INDEX=1 PIP_FIND_LINKS=/tmp/build/wheels HOROVOD_GPU_OPERATIONS= HOROVOD_WITH_GLOO= \
    HOROVOD_WITHOUT_GLOO=1 HOROVOD_WITH_TENSORFLOW= HOROVOD_WITHOUT_TENSORFLOW=1 MAKEFLAGS=-j2
}

build_notebook() {
  local nb="$repo/images/notebook" ctx="$work/context/notebook"
  keyed_wheels notebook-own "$(own_sources_key)" build_own_wheels
  # the dependencies again only when a list of them changes (or this machine's pip constraints)
  keyed_wheels notebook-deps "$(cat "$repo/client/pyproject.toml" "$repo/flightbase_labext/pyproject.toml" "$nb/requirements.txt" \
      /etc/xdg/pip/constraints.txt 2>/dev/null | sha256sum | cut -d' ' -f1)" \
    collect_notebook_deps "$nb/requirements.txt" "$work/wheels/notebook-own"
  rm -rf "$ctx" && mkdir -p "$ctx"
  cp -a "$nb/." "$ctx/"
  cp -al "$work/wheels/notebook-deps" "$ctx/wheels"
  cp -l "$work/wheels/notebook-own/"*.whl "$ctx/wheels/"
  normalize_modes "$ctx"
  build_image "$NOTEBOOK_REF" "$ctx" "$TRAINING_REF" PIP_NO_INDEX=1 PIP_FIND_LINKS=/tmp/build/wheels
}

built_training=
build() {
  local ctx
  case "$1" in
    training-base) [ -n "$built_training" ] || build_training_base; built_training=1 ;;
    notebook) [ -n "$built_training" ] || build_training_base; built_training=1; build_notebook ;;
    postgres) build_image flightbase-test/postgres:16 "$(context postgres)" flightbase/debian:bookworm ;;
    oci-registry) build_image flightbase-test/oci-registry:2.8 "$(context oci-registry)" flightbase/debian:bookworm ;;
    chp)
      local npm_dir="$work/npm/chp-$CHP_VERSION"
      if [ ! -d "$npm_dir/node_modules/configurable-http-proxy" ]; then
        command -v npm >/dev/null 2>&1 || die "npm is needed to fetch configurable-http-proxy $CHP_VERSION"
        say "installing configurable-http-proxy $CHP_VERSION with npm (log: $logs/npm-chp.log)"
        rm -rf "$npm_dir.new"
        mkdir -p "$npm_dir.new"
        npm install --prefix "$npm_dir.new" --no-save --omit=dev --no-audit --no-fund --no-package-lock \
          "configurable-http-proxy@$CHP_VERSION" >"$logs/npm-chp.log" 2>&1 || { tail -n 20 "$logs/npm-chp.log" >&2; die "npm install failed"; }
        rm -rf "$npm_dir"
        mv "$npm_dir.new" "$npm_dir"
      fi
      ctx="$(context chp)"
      cp -a "$npm_dir/node_modules" "$ctx/node_modules"
      build_image "flightbase-test/chp:$CHP_VERSION" "$ctx" flightbase/debian:bookworm ;;
    *) die "unknown image '$1' (postgres, oci-registry, chp, training-base, notebook)" ;;
  esac
}

for image in "${@:-postgres oci-registry chp}"; do
  for one in $image; do build "$one"; done
done

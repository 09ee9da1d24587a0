#!/usr/bin/env bash
# Install the ML stack the launchers need into the project venv:
#   torch==2.13.0 (CPU build; this machine's pip config finds it on local disk)
#   horovod==0.28.1 (PyTorch + gloo, no MPI, no TF/MXNet), from a cached wheel.
#
# Usage: scripts/install-ml.sh [PYTHON]        (default: .venv/bin/python)
#
# Horovod has no wheels on PyPI, so it is built from the sdist once (10-15 min
# on 2 cores) and the wheel is cached OUTSIDE the repo:
#   ${FLIGHTBASE_CACHE:-$HOME/.cache/flightbase}/wheels/torch-<torch>/horovod-0.28.1-*.whl
# (keyed by the torch version: the extension is ABI-bound to the torch it was
# built against). Later runs install from that wheel; when horovod.torch already
# imports, nothing is done. Force a rebuild with FLIGHTBASE_REBUILD_HOROVOD=1
# (or delete the wheel). See docs/horovod.md.
#
# Environment knobs:
#   FLIGHTBASE_CACHE            cache root (default ~/.cache/flightbase)
#   FLIGHTBASE_REBUILD_HOROVOD  1: ignore the cached wheel, rebuild and reinstall
#   FLIGHTBASE_BUILD_JOBS       parallel compile jobs (default: nproc)
#   FLIGHTBASE_BUILD_LOG        build log file (default: <cache>/horovod-build.log)
set -euo pipefail

TORCH_VERSION=2.13.0
HOROVOD_VERSION=0.28.1

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"

step() { echo "install-ml: $*"; }
die() { echo "install-ml: ERROR: $*" >&2; exit 1; }

py="${1:-.venv/bin/python}"
case "$py" in /*) ;; */*) [ -e "$py" ] || py="$repo/$py" ;; esac
[ -x "$py" ] || command -v "$py" >/dev/null 2>&1 || die "python '$py' not found (create the venv first: make install)"
py="$(command -v "$py" 2>/dev/null || echo "$py")"
pybin="$(dirname "$py")"

cache="${FLIGHTBASE_CACHE:-$HOME/.cache/flightbase}"
wheeldir="$cache/wheels/torch-$TORCH_VERSION"
log="${FLIGHTBASE_BUILD_LOG:-$cache/horovod-build.log}"

pip() { "$py" -m pip "$@"; }

# One run at a time per cache (e.g. `make test` and `make run` started together):
# the second waits instead of building the same wheel twice or racing pip.
mkdir -p "$cache" || die "cannot create cache dir $cache"
if command -v flock >/dev/null 2>&1; then
  exec 9>"$cache/.install-ml.lock"
  if ! flock -n 9; then
    step "another install-ml.sh holds $cache/.install-ml.lock; waiting"
    flock 9 || die "could not lock $cache/.install-ml.lock"
  fi
fi

# --- 1. torch --------------------------------------------------------------
have_torch="$("$py" -c 'import torch; print(torch.__version__.split("+")[0])' 2>/dev/null || true)"
if [ "$have_torch" = "$TORCH_VERSION" ]; then
  step "torch $TORCH_VERSION already installed"
else
  step "installing torch==$TORCH_VERSION (found: ${have_torch:-none})"
  pip install -q "torch==$TORCH_VERSION" \
    || die "pip install torch==$TORCH_VERSION failed (a CPU wheel is expected in pip's find-links/index)"
  have_torch="$("$py" -c 'import torch; print(torch.__version__.split("+")[0])' 2>/dev/null || true)"
  [ "$have_torch" = "$TORCH_VERSION" ] || die "torch import after install gave '${have_torch:-nothing}', want $TORCH_VERSION"
fi

# numpy is not a torch dependency, but without it every `import torch` warns
# "Failed to initialize NumPy" and tensor.numpy() fails.
if ! "$py" -c 'import numpy' >/dev/null 2>&1; then
  step "installing numpy"
  pip install -q numpy || die "pip install numpy failed"
fi

# --- 2. horovod: already usable? -------------------------------------------
hvd_ok() {
  "$py" - <<EOF >/dev/null 2>&1
import horovod, horovod.torch as hvd
assert horovod.__version__ == "$HOROVOD_VERSION", horovod.__version__
assert hvd.gloo_built()
EOF
}
if [ "${FLIGHTBASE_REBUILD_HOROVOD:-0}" != 1 ] && hvd_ok; then
  step "horovod $HOROVOD_VERSION (torch, gloo) already installed"
  exit 0
fi

# --- 3. horovod: build the wheel if not cached -----------------------------
pytag="$("$py" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
find_wheel() { ls -1 "$wheeldir"/horovod-"$HOROVOD_VERSION"-"$pytag"-*.whl 2>/dev/null | head -n1; }
wheel="$(find_wheel || true)"
if [ "${FLIGHTBASE_REBUILD_HOROVOD:-0}" = 1 ] && [ -n "$wheel" ]; then
  step "FLIGHTBASE_REBUILD_HOROVOD=1: discarding cached $wheel"
  rm -f "$wheel"; wheel=""
fi

if [ -n "$wheel" ]; then
  step "using cached wheel $wheel"
else
  # Debian build deps (cmake < 4 from Debian, a C++ compiler, make).
  want=()
  command -v cmake >/dev/null 2>&1 || want+=(cmake)
  command -v g++ >/dev/null 2>&1 || want+=(g++)
  command -v make >/dev/null 2>&1 || want+=(make)
  inc="$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
  if [ ! -f "$inc/Python.h" ]; then
    want+=("$("$py" -c 'import sys; print("python%d.%d-dev" % sys.version_info[:2])')")
  fi
  if [ ${#want[@]} -gt 0 ]; then
    command -v apt-get >/dev/null 2>&1 || die "missing build tools: ${want[*]} (no apt-get; install them by hand)"
    [ "$(id -u)" = 0 ] || die "missing Debian packages: ${want[*]} (run as root, or install them)"
    step "installing Debian build deps: ${want[*]}"
    apt-get update -qq || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null \
      || die "apt-get install ${want[*]} failed"
  fi

  step "installing Python build deps (setuptools, wheel, packaging, cloudpickle, psutil, pyyaml)"
  pip install -q "setuptools>=61,<81" wheel packaging cloudpickle psutil pyyaml \
    || die "pip install of horovod build deps failed"

  # --no-cache-dir below: pip's own wheel cache is keyed by the sdist, not by
  # the torch it was built against, and would hand back a stale build.
  # Temp bin dir first on PATH: the C++17 wrapper as c++/g++, and Debian's
  # cmake (< 4) ahead of any pip-installed cmake>=4 that might be on PATH.
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  realcxx="$(command -v g++)"
  ln -s "$here/cxx17-wrapper.sh" "$tmp/c++"
  ln -s "$here/cxx17-wrapper.sh" "$tmp/g++"
  [ -x /usr/bin/cmake ] && ln -s /usr/bin/cmake "$tmp/cmake"

  mkdir -p "$wheeldir" "$(dirname "$log")"
  jobs="${FLIGHTBASE_BUILD_JOBS:-$(nproc 2>/dev/null || echo 2)}"
  step "building horovod $HOROVOD_VERSION wheel (10-15 min on 2 cores; log: $log)"
  start=$(date +%s)
  if ! env -u HOROVOD_GPU_OPERATIONS -u HOROVOD_GPU -u HOROVOD_WITH_MPI -u HOROVOD_WITH_TENSORFLOW -u HOROVOD_WITH_MXNET \
      PATH="$tmp:$pybin:$PATH" \
      CC="$(command -v gcc || echo cc)" CXX="$tmp/g++" FLIGHTBASE_REAL_CXX="$realcxx" \
      CMAKE_POLICY_VERSION_MINIMUM=3.5 MAKEFLAGS="-j$jobs" \
      HOROVOD_WITH_PYTORCH=1 HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_MXNET=1 \
      HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 HOROVOD_CPU_OPERATIONS=gloo \
      "$py" -m pip wheel -v --no-cache-dir --no-deps --no-build-isolation --no-binary horovod \
        -w "$tmp/out" "horovod==$HOROVOD_VERSION" >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    die "horovod wheel build failed after $(( $(date +%s) - start ))s; full log: $log"
  fi
  built="$(ls -1 "$tmp"/out/horovod-"$HOROVOD_VERSION"-*.whl 2>/dev/null | head -n1)"
  [ -n "$built" ] || die "horovod build produced no wheel; log: $log"
  # Atomic move into the cache so a concurrent or interrupted run never sees half a wheel.
  cp "$built" "$wheeldir/.$(basename "$built").part"
  mv -f "$wheeldir/.$(basename "$built").part" "$wheeldir/$(basename "$built")"
  wheel="$wheeldir/$(basename "$built")"
  step "built and cached $wheel in $(( $(date +%s) - start ))s"
fi

# --- 4. horovod: install the wheel -----------------------------------------
step "installing $(basename "$wheel")"
pip install -q --force-reinstall --no-deps "$wheel" || die "pip install $wheel failed"
# then its declared runtime deps (cloudpickle, psutil, pyyaml, packaging, cffi)
pip install -q "$wheel" || die "pip install of horovod's runtime dependencies failed"
if ! hvd_ok; then
  "$py" -c 'import horovod.torch as hvd; print("gloo_built:", hvd.gloo_built())' >&2 || true
  die "horovod installed but 'import horovod.torch' fails or gloo is not built (stale wheel? rerun with FLIGHTBASE_REBUILD_HOROVOD=1)"
fi
[ -x "$pybin/horovodrun" ] || die "horovodrun not found in $pybin"
step "horovod $HOROVOD_VERSION ready ($pybin/horovodrun)"

#!/usr/bin/env bash
# Install the Debian packages the platform or its tests need, if missing.
# Usage: scripts/system-deps.sh run|test
set -euo pipefail
want=()
need() { dpkg -s "$1" >/dev/null 2>&1 || want+=("$1"); }
need nodejs
need docker-registry   # the OCI registry uploaded images are pushed to
command -v npm >/dev/null 2>&1 || need npm
if [ "${1:-run}" = "test" ]; then
  need postgresql
  need apache2-utils   # ab, for benchmarks/submit_bench.py
  need chromium        # the browser tests (tests/labext), driven by playwright-core
fi
if [ ${#want[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing Debian packages: ${want[*]} (run as root, or install them)" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${want[@]}"
fi

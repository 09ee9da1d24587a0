#!/usr/bin/env bash
# The local stand-ins of the images tests/kubernetes/test_deployment.py runs where the
# chart's own cannot be pulled (each Dockerfile says what it stands in for), built on this
# machine and cached by content as scripts/containers.sh builds the embedded images
# (scripts/lib/images.sh: a build only when the digest of the context and of the base image
# differs from the image's ai.flightbase.content-hash label).
#
# Usage: tests/kubernetes/images/build.sh [IMAGE...]   (default: all three)
#   postgres      flightbase-test/postgres:16            on flightbase/debian:bookworm
#   oci-registry  flightbase-test/oci-registry:2.8       on flightbase/debian:bookworm
#   chp           flightbase-test/chp:4.6.3              on flightbase/debian:bookworm (+ npm, on the host)
# Environment: FLIGHTBASE_CACHE (default ~/.cache/flightbase): contexts and logs in its deployment-test/.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
cache="${FLIGHTBASE_CACHE:-$HOME/.cache/flightbase}"
work="$cache/deployment-test"
logs="$work/logs"
NAME=deployment-test-images
HASH_LABEL=ai.flightbase.content-hash
CHP_VERSION=4.6.3
# say, die, digest_dir, digest_text, build_image
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

build() {
  local ctx
  case "$1" in
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
    *) die "unknown image '$1' (postgres, oci-registry, chp)" ;;
  esac
}

for image in "${@:-postgres oci-registry chp}"; do
  for one in $image; do build "$one"; done
done

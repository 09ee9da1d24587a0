#!/bin/sh
# Build (and with PUSH=1 push) Flightbase's images, the cluster flavour (images/README.md).
# Needs a Docker engine that can pull NVIDIA's CUDA images and reach PyPI; run from
# anywhere. REGISTRY and TAG match the chart's images.* values.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REGISTRY=${REGISTRY:-ghcr.io/flightbase}
TAG=${TAG:-0.1.0}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# training-base's context: its folder, the C++17 compiler wrapper Horovod's build uses,
# and an empty wheels/ (pip installs from the index: the Dockerfile's defaults)
mkdir -p "$work/training-base/wheels"
cp -R "$ROOT/images/training-base/." "$ROOT/scripts/cxx17-wrapper.sh" "$work/training-base/"
docker build -t "$REGISTRY/training-base:$TAG" "$work/training-base"
# notebook's context: its folder and, in wheels/, Flightbase's client wheel (from a clean
# copy of client/) and the JupyterLab extension's with its built front end (Node runs here,
# not in the image)
mkdir -p "$work/notebook/wheels" "$work/src"
cp -R "$ROOT/images/notebook/." "$work/notebook/"
(cd "$ROOT" && tar --exclude=__pycache__ --exclude='*.pyc' --exclude='*.egg-info' --exclude=build --exclude=dist \
    -cf - client) | tar -C "$work/src" -xf -
(cd "$ROOT" && make .venv/.labext-installed \
    && .venv/bin/python -m pip wheel -q --no-deps -w "$work/notebook/wheels" "$work/src/client" ./flightbase_labext)
docker build -t "$REGISTRY/notebook:$TAG" --build-arg "BASE=$REGISTRY/training-base:$TAG" "$work/notebook"
# the services and the hub (jobqueue, registry-service, hub): scripts/service-images.sh, on Debian 12's image
# (BASE_IMAGE; on the machine the tests run on, flightbase/debian:bookworm made by scripts/containers.sh)
BASE_IMAGE=${BASE_IMAGE:-debian:bookworm}
BASE_IMAGE=$BASE_IMAGE REGISTRY=$REGISTRY TAG=$TAG "$ROOT/scripts/service-images.sh" build
if [ "${PUSH:-0}" = 1 ]; then
    for image in training-base notebook hub jobqueue registry-service; do docker push "$REGISTRY/$image:$TAG"; done
fi

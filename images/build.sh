#!/bin/sh
# Build (and with PUSH=1 push) Flightbase's images. Needs a Docker engine with
# BuildKit; run from anywhere. REGISTRY and TAG match the chart's images.* values.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REGISTRY=${REGISTRY:-ghcr.io/flightbase}
TAG=${TAG:-0.1.0}
# the JupyterLab extension's wheel, with its built front end (Node runs here, not in the image)
(cd "$ROOT" && make .venv/.labext-installed && .venv/bin/python -m pip wheel -q --no-deps -w dist ./flightbase_labext)
docker build -t "$REGISTRY/training-base:$TAG" "$ROOT/images/training-base"
docker build -t "$REGISTRY/notebook:$TAG" --build-arg "BASE=$REGISTRY/training-base:$TAG" -f "$ROOT/images/notebook/Dockerfile" "$ROOT"
# the services and the hub (jobqueue, registry-service, hub): scripts/service-images.sh, on Debian 12's image
# (BASE_IMAGE; on the machine the tests run on, flightbase/debian:bookworm made by scripts/containers.sh)
BASE_IMAGE=${BASE_IMAGE:-debian:bookworm}
BASE_IMAGE=$BASE_IMAGE REGISTRY=$REGISTRY TAG=$TAG "$ROOT/scripts/service-images.sh" build
if [ "${PUSH:-0}" = 1 ]; then
    for image in training-base notebook hub jobqueue registry-service; do docker push "$REGISTRY/$image:$TAG"; done
fi

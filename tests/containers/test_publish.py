"""The built-in images are published to the platform's OCI registry, where uploaded images go.

The real platform with the docker backend copies the engine's built-in images
into its own OCI registry at start-up; the registry then holds each one under
the name the catalogue gives it, as the same image (its config digest is the
engine's image id), and only the services' account can read it.
"""

from __future__ import annotations

import json
import os
import time

import httpx
import pytest

from flightbase_server.secrets import OCI_REGISTRY_USER
from flightbase_registry.builtin import BUILTIN_IMAGES
from tests.containers.engine import engine_or_skip, image_or_skip
from tests.helpers.platforms import running_platform

pytestmark = [pytest.mark.slow, pytest.mark.skipif(os.geteuid() != 0, reason="the images are built as root")]
ACCEPT = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"


def test_the_built_in_images_are_in_the_platforms_registry(tmp_path_factory):
    client = engine_or_skip()
    for image in BUILTIN_IMAGES:
        image_or_skip(client, image.reference)
    with running_platform(tmp_path_factory, "publish", gpus="1",
                          extra_env={"FLIGHTBASE_BACKEND": "docker", "FLIGHTBASE_REGISTRY_PUBLISH_BUILTIN_IMAGES": "1"}) as p:
        url = "http://" + json.loads((p.data_dir / "oci" / "config.yml").read_text())["http"]["addr"]
        auth = (OCI_REGISTRY_USER, json.loads((p.data_dir / "secrets.json").read_text())["oci_registry_password"])
        wanted = {i.reference.rsplit(":", 1)[0]: (i.reference.rsplit(":", 1)[1], client.images.get(i.reference).id)
                  for i in BUILTIN_IMAGES}
        deadline = time.monotonic() + 600
        found = {}
        while set(found) != set(wanted):
            assert time.monotonic() < deadline, (found, p.log_tail())
            for repository, (tag, image_id) in wanted.items():
                resp = httpx.get(f"{url}/v2/{repository}/manifests/{tag}", auth=auth, headers={"Accept": ACCEPT})
                if resp.status_code == 200 and resp.json()["config"]["digest"] == image_id:
                    found[repository] = image_id
            time.sleep(2)
        repository, (tag, _) = next(iter(wanted.items()))
        assert httpx.get(f"{url}/v2/{repository}/manifests/{tag}", headers={"Accept": ACCEPT}).status_code == 401
        assert "built-in image flightbase/training-base:0.1.0: published" in p.log_tail(200_000)

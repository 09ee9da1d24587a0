"""The built-in images, published to the platform's OCI registry, where uploaded images go.

``make run`` builds the built-in images into the machine's Docker engine
(``scripts/containers.sh``). When the platform runs its work in containers
(the docker backend), the registry service copies each one into its OCI
registry at start-up, in the background, under the name the registry lists it
by (``flightbase/training-base:0.1.0``): the same store, and the same digests,
as the images people upload, for whatever pulls from the registry (people
building on the training base with the registry's account, a second machine).
An image the registry already has (the same image id) is not sent again.

Off with ``FLIGHTBASE_REGISTRY_PUBLISH_BUILTIN_IMAGES=0`` (the registry's
settings): the jobs of this machine run the engine's own copies either way.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from pathlib import Path

from flightbase_registry.builtin import BUILTIN_IMAGES
from flightbase_registry.oci import ArchiveError, OciRegistry, PushError

log = logging.getLogger("flightbase.registry.publish")
STAGED_PREFIX = "builtin-"  # how a built-in image's archive is named in the staging area while it is pushed


def publish(oci: OciRegistry, client, staging: Path) -> dict[str, str]:
    """Copy each built-in image the engine has into the registry; {reference: what was done}."""
    import docker.errors

    from flightbase_registry.api.image_uploads import _push

    done = {}
    for builtin in BUILTIN_IMAGES:
        reference = builtin.reference
        repository, tag = reference.rsplit(":", 1)
        try:
            image = client.images.get(reference)
        except docker.errors.ImageNotFound:
            done[reference] = "not built on this machine"
            continue
        if oci.config_digest(repository, tag) == image.id:
            done[reference] = "up to date"
            continue
        staging.mkdir(parents=True, exist_ok=True)
        path = staging / f"{STAGED_PREFIX}{uuid.uuid4().hex}.tar"
        try:
            with open(path, "wb") as f:
                for chunk in image.save(named=True):
                    f.write(chunk)
            _push(oci, path, repository, tag)
            done[reference] = "published"
        finally:
            path.unlink(missing_ok=True)
    return done


def publish_in_background(oci: OciRegistry, staging: Path, wait_seconds: float = 120.0) -> threading.Thread:
    def run():
        try:
            import docker

            _wait_for(oci, wait_seconds)
            for reference, what in publish(oci, docker.from_env(timeout=600), staging).items():
                log.info("built-in image %s: %s", reference, what)
        except (PushError, ArchiveError, OSError) as exc:
            log.warning("publishing the built-in images to the OCI registry failed: %s", exc)
        except Exception:
            log.exception("publishing the built-in images to the OCI registry failed")

    thread = threading.Thread(target=run, name="publish-builtin-images", daemon=True)
    thread.start()
    return thread


def _wait_for(oci: OciRegistry, seconds: float) -> None:
    """The hub starts the OCI registry beside this service: give it the time to answer."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            oci.config_digest("flightbase/probe", "none")
            return
        except PushError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)

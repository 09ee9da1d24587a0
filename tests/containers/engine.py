"""What the container tests need from this machine: a Docker engine and the built images.

Each helper skips the calling test with the reason when something is missing
(``make test`` installs and starts the engine and builds the images as root).
"""

from __future__ import annotations

import pytest


def engine_or_skip():
    """A Docker SDK client of an engine that answers."""
    try:
        import docker

        client = docker.from_env(timeout=600)
        client.ping()
        return client
    except Exception as exc:  # no SDK, no socket, no permission
        pytest.skip(f"no Docker engine answers here ({exc.__class__.__name__}); `make test` starts one as root")


def image_or_skip(client, reference: str) -> str:
    """``reference`` when the local engine has that image."""
    import docker.errors

    try:
        client.images.get(reference)
    except docker.errors.ImageNotFound:
        pytest.skip(f"image {reference} is not built here (`make test` builds it as root)")
    return reference

"""What the container tests need from this machine: a Docker engine and the built images.

Each helper skips the calling test with the reason when something is missing
(``make test`` installs and starts the engine and builds the images as root).
"""

from __future__ import annotations

import io
import uuid

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


def upload_bare_image(platform, client, tmp_path, workspace: str, user: str, tag_name: str):
    """Build a bare image (Debian, no Python packages: no launcher, no JupyterLab), upload it to
    ``workspace`` as ``user`` under the name "bare", and return the registry's answer."""
    base = image_or_skip(client, "flightbase/debian:bookworm")
    context = tmp_path / "bare"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {base}\nRUN true\n")
    tag = f"flightbase-test/{tag_name}:{uuid.uuid4().hex[:8]}"
    client.images.build(path=str(context), tag=tag, rm=True)
    buf = io.BytesIO()
    for chunk in client.images.get(tag).save(named=True):
        buf.write(chunk)
    client.images.remove(tag, force=True)
    return platform.api("registry", "POST", f"workspaces/{workspace}/images/upload", platform.tokens[user],
                        params={"name": "bare"}, content=buf.getvalue(),
                        headers={"Content-Type": "application/x-tar"})

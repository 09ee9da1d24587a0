"""Fixtures of the registry tests: a real OCI registry and a platform that pushes to it.

The OCI registry is Debian's ``docker-registry`` (the CNCF distribution
registry) on a free loopback port with a temporary storage folder; the
platform is the real one (tests.platform.harness) configured to use it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import httpx
import pytest

from tests.platform.harness import free_port, new_platform
from tests.registry.people import make_world

DOCKER_REGISTRY = "/usr/bin/docker-registry"

# Small limits so that the tests can exceed them cheaply.
LIMITS = {"max_file_bytes": 64_000_000, "max_files": 1000, "max_compression_ratio": 200}


@pytest.fixture(scope="session")
def oci_registry(tmp_path_factory):
    """URL of a running docker-registry, stopped at the end of the session."""
    binary = shutil.which("docker-registry") or (DOCKER_REGISTRY if shutil.os.path.exists(DOCKER_REGISTRY) else None)
    if binary is None:
        pytest.fail("the OCI registry for these tests is missing: install the Debian package `docker-registry` "
                    "(apt-get install docker-registry; `make test` does it through scripts/system-deps.sh)")
    root = tmp_path_factory.mktemp("oci-registry")
    port = free_port()
    config = root / "config.yml"
    config.write_text(json.dumps({  # YAML is a superset of JSON
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(root / "data")}, "delete": {"enabled": True}},
        "http": {"addr": f"127.0.0.1:{port}"},
    }))
    log = open(root / "registry.log", "wb")
    proc = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            pytest.fail(f"docker-registry exited with {proc.returncode}: {(root / 'registry.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/v2/", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"docker-registry did not answer on {url}: {(root / 'registry.log').read_text()[-2000:]}")
        time.sleep(0.2)
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="session")
def platform(tmp_path_factory, oci_registry):
    """The platform of the registry tests: pushes image uploads to ``oci_registry``, small limits.

    The registry service reads FLIGHTBASE_OCI_REGISTRY_URL; as the hub passes
    only its own settings to services, the test also writes the same settings
    to ``<data_dir>/registry.json``, which the service reads at start-up.
    """
    p = new_platform(tmp_path_factory.mktemp("registry-platform"),
                     extra_env={"FLIGHTBASE_OCI_REGISTRY_URL": oci_registry})
    p.data_dir.mkdir(parents=True, exist_ok=True)
    (p.data_dir / "registry.json").write_text(json.dumps({"oci_registry_url": oci_registry, **LIMITS}))
    p.start()
    yield p
    p.stop()


@pytest.fixture
def world(platform):
    """A fresh workspace with a manager, an owner, a member, and an outsider (see people.py)."""
    return make_world(platform)

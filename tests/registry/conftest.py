"""Fixtures of the registry tests: a real OCI registry and a platform that pushes to it.

The OCI registry is Debian's ``docker-registry`` (the CNCF distribution
registry) on a free loopback port with a temporary storage folder and htpasswd
auth; the platform is the real one (tests.platform.harness) configured to use
it with that account.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from flightbase_server.hub.config import oci_registry_config
from flightbase_server.secrets import OCI_REGISTRY_USER
from flightbase_server.settings import PlatformSettings
from tests.platform.harness import free_port, new_platform
from tests.helpers.dataset_uploads import open_uploads, staged_uploads
from tests.registry.people import make_world

DOCKER_REGISTRY = "/usr/bin/docker-registry"

# Small limits so that the tests can exceed them cheaply.
LIMITS = {"max_file_bytes": 64_000_000, "max_files": 1000, "max_compression_ratio": 200}


@dataclass(frozen=True)
class OciRegistryUnderTest:
    """A running docker-registry that answers its one account only."""

    url: str
    user: str
    password: str
    password_file: Path  # the password, one line, mode 0600: what the service is given

    @property
    def host(self) -> str:
        return self.url.split("://", 1)[1]

    def get(self, path: str, **kw) -> httpx.Response:
        """GET as the account the registry service pushes with."""
        kw.setdefault("timeout", 30)
        return httpx.get(f"{self.url}{path}", auth=(self.user, self.password), **kw)


@pytest.fixture(scope="session")
def oci_registry(tmp_path_factory):
    """A running docker-registry with htpasswd auth, stopped at the end of the session.

    Its config is written by the platform's own ``oci_registry_config``, so these
    tests push through the same authenticated path as the registry that
    ``flightbase up`` starts; the platform below reaches it as an operator's
    registry (FLIGHTBASE_OCI_REGISTRY_URL with a user name and a password file).
    """
    binary = shutil.which("docker-registry") or (DOCKER_REGISTRY if shutil.os.path.exists(DOCKER_REGISTRY) else None)
    if binary is None:
        pytest.fail("the OCI registry for these tests is missing: install the Debian package `docker-registry` "
                    "(apt-get install docker-registry; `make test` does it through scripts/system-deps.sh)")
    root = tmp_path_factory.mktemp("oci-registry")
    port = free_port()
    password = secrets.token_hex(32)
    config = oci_registry_config(PlatformSettings(data_dir=root, oci_registry_port=port),
                                 {"oci_registry_password": password})
    password_file = root / "password"
    password_file.touch(mode=0o600)
    password_file.write_text(password + "\n")
    log = open(root / "registry.log", "wb")
    proc = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    registry = OciRegistryUnderTest(f"http://127.0.0.1:{port}", OCI_REGISTRY_USER, password, password_file)
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            pytest.fail(f"docker-registry exited with {proc.returncode}: {(root / 'registry.log').read_text()[-2000:]}")
        try:
            if registry.get("/v2/", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"docker-registry did not answer on {registry.url}: {(root / 'registry.log').read_text()[-2000:]}")
        time.sleep(0.2)
    yield registry
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


# Not tests.helpers.platforms.running_platform: registry.json must be in the data folder before the start.
@pytest.fixture(scope="session")
def platform(tmp_path_factory, oci_registry):
    """The platform of the registry tests: pushes image uploads to ``oci_registry``, small limits.

    The registry service reads FLIGHTBASE_OCI_REGISTRY_URL and the registry's
    account (FLIGHTBASE_OCI_REGISTRY_USERNAME, FLIGHTBASE_OCI_REGISTRY_PASSWORD_FILE),
    which the hub passes on to it; the limits, which the hub does not pass on,
    go to ``<data_dir>/registry.json``, which the service reads at start-up.
    """
    p = new_platform(tmp_path_factory.mktemp("registry-platform"), extra_env={
        "FLIGHTBASE_OCI_REGISTRY_URL": oci_registry.url,
        "FLIGHTBASE_OCI_REGISTRY_USERNAME": oci_registry.user,
        "FLIGHTBASE_OCI_REGISTRY_PASSWORD_FILE": str(oci_registry.password_file),
    })
    p.data_dir.mkdir(parents=True, exist_ok=True)
    (p.data_dir / "registry.json").write_text(json.dumps({"oci_registry_url": oci_registry.url, **LIMITS}))
    p.start()
    yield p
    p.remove()  # stop, kill its jobs, delete its data (as the other platforms of the tests do)


@pytest.fixture
def world(platform):
    """A fresh workspace with a manager, an owner, a member, and an outsider (see people.py)."""
    return make_world(platform)


@pytest.fixture(autouse=True)
def staging_before(request):
    """The staging folders there were when the test began; after it, none of its own may be left
    but those of uploads still in progress.

    The registry tests share one platform, so a folder one test leaves behind used to fail every
    later test that checked for an empty staging area (nine of them, in one CI run), and the test
    that left it passed. Now the leak fails its own test (at teardown; the test itself may not
    look at the staging area), the folder is then removed so that no later test inherits it, and
    the tests that check for an empty staging area look only at folders made since they began
    (``staging_entries`` in test_datasets.py)."""
    if "platform" not in request.fixturenames:  # the unit tests of this folder start no platform
        yield frozenset()
        return
    data_dir = request.getfixturevalue("platform").data_dir
    before = frozenset(staged_uploads(data_dir))
    yield before
    deadline = time.monotonic() + 5  # a chunk still answering, or a cancel still removing, may lag the test
    while (left := staged_uploads(data_dir) - before - open_uploads(data_dir)) and time.monotonic() < deadline:
        time.sleep(0.2)
    for name in left:
        shutil.rmtree(data_dir / "uploads" / name, ignore_errors=True)
    assert not left, f"staging folders of no upload in progress left behind: {sorted(left)}"

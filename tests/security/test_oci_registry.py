"""Issue #14, finding 5: the embedded OCI registry answers the services' account only.

``flightbase up`` starts Debian's docker-registry on a loopback port, which every
job and notebook on the machine can reach. These tests start the real platform
(which starts the registry itself), upload an image through the registry API,
and then act as a job would: anonymous and with wrong credentials, they try to
list, pull, push and delete, and are refused with 401; the image is still there
afterwards, and the platform still uploads and deletes images. The account's
password and its htpasswd hash stay in root's 0600 files, out of the platform's
log and out of every process's environment and command line.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from flightbase_server.hub.config import DOCKER_REGISTRY
from flightbase_server.secrets import OCI_REGISTRY_USER
from tests.helpers.platforms import running_platform
from tests.platform.harness import free_port
from tests.registry.images import ACCEPT, oci_layout, sha256_digest, upload
from tests.registry.people import make_world

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    """The real platform with the OCI registry it starts itself (no operator's registry)."""
    if not os.path.exists(DOCKER_REGISTRY):
        pytest.skip(f"{DOCKER_REGISTRY} is not installed (apt-get install docker-registry): "
                    "the platform starts no OCI registry without it")
    # empty: whatever the environment running the tests says, the platform starts its own
    with running_platform(tmp_path_factory, "oci-security", extra_env={
            "FLIGHTBASE_OCI_REGISTRY_URL": "", "FLIGHTBASE_OCI_REGISTRY_USERNAME": "",
            "FLIGHTBASE_OCI_REGISTRY_PASSWORD_FILE": ""}) as p:
        yield p


def registry_url(platform) -> str:
    """Where the platform's OCI registry listens, from its config file (readable by root only)."""
    config = json.loads((platform.data_dir / "oci" / "config.yml").read_text())
    return f"http://{config['http']['addr']}"


def password(platform) -> str:
    return json.loads((platform.data_dir / "secrets.json").read_text())["oci_registry_password"]


def _owner_and_mode(path: Path) -> tuple[int, str]:
    st = path.stat()
    return st.st_uid, oct(stat.S_IMODE(st.st_mode))


def test_finding5_registry_refuses_anonymous_list_pull_and_delete(platform):
    url = registry_url(platform)
    world = make_world(platform)
    ws = world.workspace
    body, digest = oci_layout({})
    resp = upload(platform, world.tokens["member"], ws, body, name="private", tag="1")
    assert resp.status_code == 201, resp.text
    assert resp.json()["reference"] == f"{url.split('://', 1)[1]}/{ws}/private:1@{digest}"
    manifest, by_digest = f"{url}/v2/{ws}/private/manifests/1", f"{url}/v2/{ws}/private/manifests/{digest}"
    account = (OCI_REGISTRY_USER, password(platform))

    # the services' account reads it all back: the refusals below are not absences
    assert OCI_REGISTRY_USER == "flightbase"
    pulled = httpx.get(manifest, headers={"Accept": ACCEPT}, auth=account)
    assert pulled.status_code == 200 and sha256_digest(pulled.content) == digest
    layer = pulled.json()["layers"][0]["digest"]
    catalog = httpx.get(f"{url}/v2/_catalog", auth=account)
    assert catalog.status_code == 200 and f"{ws}/private" in catalog.json()["repositories"]

    for who, auth in [
        ("anonymous", None),
        ("wrong password", (OCI_REGISTRY_USER, "not-the-password")),
        ("empty password", (OCI_REGISTRY_USER, "")),
        ("another user with the password", ("admin", account[1])),
    ]:
        attempts = {
            "list": httpx.get(f"{url}/v2/_catalog", auth=auth),
            "tags": httpx.get(f"{url}/v2/{ws}/private/tags/list", auth=auth),
            "pull": httpx.get(manifest, headers={"Accept": ACCEPT}, auth=auth),
            "pull blob": httpx.get(f"{url}/v2/{ws}/private/blobs/{layer}", auth=auth),
            "push": httpx.post(f"{url}/v2/{ws}/private/blobs/uploads/", auth=auth),
            "overwrite tag": httpx.put(manifest, content=pulled.content, auth=auth,
                                       headers={"Content-Type": pulled.headers["content-type"]}),
            "delete": httpx.delete(by_digest, auth=auth),
        }
        assert {what: r.status_code for what, r in attempts.items()} == dict.fromkeys(attempts, 401), who
    # nothing was deleted or replaced
    still = httpx.get(manifest, headers={"Accept": ACCEPT}, auth=account)
    assert still.status_code == 200 and still.content == pulled.content

    # the service still deletes through the API, with its account
    assert platform.api("registry", "DELETE", f"workspaces/{ws}/images/private", world.tokens["manager"]).status_code == 204
    assert httpx.get(by_digest, headers={"Accept": ACCEPT}, auth=account).status_code == 404
    assert httpx.get(f"{platform.url}/services/registry/health", timeout=10).status_code == 200


def test_finding5_registry_account_is_kept_by_root_and_never_shown(platform):
    secret = password(platform)
    htpasswd = platform.data_dir / "oci" / "htpasswd"
    user, _, entry = htpasswd.read_text().strip().partition(":")
    assert user == OCI_REGISTRY_USER and entry.startswith("$2")  # bcrypt: docker-registry accepts nothing else
    assert _owner_and_mode(platform.data_dir / "secrets.json") == (0, "0o600")
    assert _owner_and_mode(htpasswd) == (0, "0o600")
    assert _owner_and_mode(platform.data_dir / "oci") == (0, "0o700")

    # exercised once, so that the log holds whatever a push would log
    world = make_world(platform)
    assert upload(platform, world.tokens["member"], world.workspace, oci_layout({})[0], name="logged").status_code == 201
    basic = base64.b64encode(f"{OCI_REGISTRY_USER}:{secret}".encode()).decode()
    log = platform.log_path.read_text(errors="replace")
    for shown in (secret, entry, basic):
        assert shown not in log

    # in no process's environment or command line (jobs run as other accounts, but a
    # child inherits its parent's environment, and /proc/<pid>/cmdline is public)
    leaks = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        for part in ("environ", "cmdline"):
            try:
                if secret.encode() in Path(f"/proc/{pid}/{part}").read_bytes():
                    leaks.append((pid, part))
            except OSError:  # gone, or a kernel thread
                pass
    assert leaks == []


def test_finding5_an_installation_from_before_gets_an_account_at_its_next_start(platform):
    """secrets.json without the registry's password (as written before it existed): the next
    start generates one, the registry requires it, and uploads go on."""
    platform.stop()
    path = platform.data_dir / "secrets.json"
    values = json.loads(path.read_text())
    old = values.pop("oci_registry_password")
    path.write_text(json.dumps(values))
    platform.start()
    new = password(platform)
    assert new and new != old
    url = registry_url(platform)
    assert httpx.get(f"{url}/v2/_catalog", auth=(OCI_REGISTRY_USER, old)).status_code == 401
    assert httpx.get(f"{url}/v2/_catalog", auth=(OCI_REGISTRY_USER, new)).status_code == 200
    world = make_world(platform)
    assert upload(platform, world.tokens["member"], world.workspace, oci_layout({})[0], name="after").status_code == 201
    assert _owner_and_mode(path) == (0, "0o600")


def test_finding5_chart_registry_answers_the_services_account_only(tmp_path):
    """The Helm chart's in-cluster registry: rendered by Helm, then its env and the htpasswd of its
    Secret served by docker-registry here (the same distribution 2.8 as the chart's image; only
    the htpasswd path differs, as /auth is the pod's mount)."""
    chart = pytest.importorskip("tests.kubernetes.test_chart", reason="the chart tests' Helm engine is missing")
    if not os.path.exists(DOCKER_REGISTRY):
        pytest.skip(f"{DOCKER_REGISTRY} is not installed (apt-get install docker-registry)")
    manifest, _ = chart.render(tmp_path / "render")
    objects = {(d["kind"], d["metadata"]["name"]): d for d in manifest}
    account = {k: base64.b64decode(v).decode() for k, v in objects["Secret", "flightbase-oci-auth"]["data"].items()}
    assert account["username"] == OCI_REGISTRY_USER and len(account["password"]) >= 32
    assert account["htpasswd"].startswith(f"{OCI_REGISTRY_USER}:$2")

    # only the registry service gets the password (as a file), only the OCI registry the htpasswd
    users = {}
    for (kind, name), obj in objects.items():
        if kind == "Deployment":
            pod = obj["spec"]["template"]["spec"]
            for volume in pod.get("volumes", []):
                if volume.get("secret", {}).get("secretName") == "flightbase-oci-auth":
                    users[name] = [item["key"] for item in volume["secret"]["items"]]
            for env in (e for c in pod["containers"] for e in c.get("env", [])):
                ref = env.get("valueFrom", {}).get("secretKeyRef", {})
                assert ref.get("name") != "flightbase-oci-auth" or ref["key"] == "username", (name, env)
    assert users == {"flightbase-oci": ["htpasswd"], "flightbase-registry": ["password"]}
    service = objects["Deployment", "flightbase-registry"]["spec"]["template"]["spec"]["containers"][0]
    service_env = {e["name"]: e.get("value") for e in service["env"]}
    assert service_env["FLIGHTBASE_OCI_REGISTRY_PASSWORD_FILE"] == "/etc/flightbase/oci-registry/password"

    oci = objects["Deployment", "flightbase-oci"]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in oci["env"]}
    assert "httpGet" not in oci["readinessProbe"]  # it would get 401 and never be ready
    (tmp_path / "htpasswd").write_text(account["htpasswd"])
    port = free_port()
    (tmp_path / "config.yml").write_text(json.dumps({
        "version": 0.1, "log": {"level": "warn"},
        "storage": {"filesystem": {"rootdirectory": str(tmp_path / "data")}},
        "http": {"addr": f"127.0.0.1:{port}"},
    }))
    env["REGISTRY_AUTH_HTPASSWD_PATH"] = str(tmp_path / "htpasswd")
    proc = subprocess.Popen([DOCKER_REGISTRY, "serve", str(tmp_path / "config.yml")], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 30
        while True:
            try:
                anonymous = httpx.get(f"{url}/v2/_catalog", timeout=2)
                break
            except httpx.HTTPError:
                assert proc.poll() is None and time.monotonic() < deadline, "docker-registry did not start"
                time.sleep(0.2)
        assert anonymous.status_code == 401
        assert httpx.get(f"{url}/v2/_catalog", auth=(OCI_REGISTRY_USER, "wrong")).status_code == 401
        assert httpx.get(f"{url}/v2/_catalog", auth=(account["username"], account["password"])).status_code == 200
    finally:
        proc.kill()
        proc.wait(10)

"""Jupyter trainings in containers: the real hub, proxy and services with ``FLIGHTBASE_BACKEND=docker``,
a real Docker engine and the built notebook image.

Servers are started through the hub's REST API (what the spawn form posts);
code runs in their real kernels. The platform has two CPU "GPU slots". Each
server is a container of its image, run by ``FlightbaseDockerSpawner`` as its
person's account. Skipped, with the reason, where no Docker engine answers,
where the tests do not run as root, or where ``make test`` has not built the
notebook image.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import time

import pytest

from tests.containers.engine import engine_or_skip, image_or_skip, upload_bare_image
from tests.helpers.platforms import running_platform
from tests.helpers.servers import (lease_of, leases, run_in_kernel, server_model, spawn, upload_dataset,
                                   wait_for, wait_gone, wait_ready)

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="servers run as their owners' accounts only under root")]

NOTEBOOK = "flightbase/notebook:0.1.0"
MEMORY_GB = 1.5  # the workspace's memory_gb_per_gpu: the server's whole memory limit (one slot)
GiB = 1 << 30


@pytest.fixture(scope="module")
def client():
    return engine_or_skip()


@pytest.fixture(scope="module")
def platform(tmp_path_factory, client):
    image_or_skip(client, NOTEBOOK)
    with running_platform(tmp_path_factory, "docker-notebooks", gpus="2",
                          extra_env={"FLIGHTBASE_BACKEND": "docker", "FLIGHTBASE_SPAWNER_POLL_SECONDS": "2"}) as p:
        p.tokens = {"ann": p.create_user("ann")}
        settings = {"memory_gb_per_gpu": MEMORY_GB}
        assert p.api("jobqueue", "POST", "workspaces", p.admin_token,
                     json={"name": "lab", "settings": settings}).status_code == 201
        assert p.api("jobqueue", "PUT", "workspaces/lab/members/ann", p.admin_token).status_code == 200
        yield p
        for server in p.hub("GET", "users/ann").json().get("servers", {}):
            p.hub("DELETE", f"users/ann/servers/{server}")
    for c in client.containers.list(all=True, filters={"label": "flightbase.workspace=lab"}):
        c.remove(force=True)


def containers_of(client, user: str, server: str) -> list:
    return client.containers.list(all=True, filters={"label": [f"flightbase.user={user}",
                                                               f"flightbase.server={server}"]})


PROBE = """
import errno, json, os
seen = {"uid": os.getuid(), "gid": os.getgid(), "groups": sorted(os.getgroups()), "cwd": os.getcwd(),
        "home": os.environ.get("HOME"), "docker": os.path.exists("/.dockerenv"),
        "cats": open("/datasets/cats/a.txt").read().strip(), "datasets": sorted(os.listdir("/datasets"))}
for name in ("/datasets/cats/a.txt", "/datasets/cats/new.txt"):
    try:
        open(name, "a").write("x")
        seen[name] = "written"
    except OSError as e:
        seen[name] = errno.errorcode[e.errno]
open("from-the-container.txt", "w").write("kept")
for limit in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
    if os.path.exists(limit):
        seen["memory"] = int(open(limit).read())
seen["env"] = {k: os.environ.get(k) for k in ("FLIGHTBASE_WORKSPACE", "FLIGHTBASE_LEASE_ID", "FLIGHTBASE_CPU_SLOTS",
                                              "CUDA_VISIBLE_DEVICES", "FLIGHTBASE_DATASETS_DIR", "USER")}
seen["secrets"] = [k for k, v in os.environ.items() if "oci" in k.lower() or "password" in k.lower()]
print(json.dumps(seen))
"""


def test_a_notebook_runs_in_its_image_as_its_person_with_its_datasets_read_only_and_its_memory(platform, client,
                                                                                                tmp_path):
    upload_dataset(platform, "ann", "lab", "cats", {"a.txt": b"meow\n"}, tmp_path)
    spawn(platform, "ann", "box", workspace="lab", image="notebook", gpus=1, datasets=["cats"])
    wait_ready(platform, "ann", "box", timeout=180)
    lease = lease_of(platform, "ann", "box")
    assert lease["state"] == "granted" and lease["gpu_kind"] == "cpu-slot" and len(lease["gpus"]) == 1

    out = run_in_kernel(platform, "ann", "box", PROBE, timeout=120)
    seen = json.loads(out.strip().splitlines()[-1])
    account = pwd.getpwnam("ann")
    assert seen["uid"] == account.pw_uid != 0 and seen["gid"] == account.pw_gid
    assert seen["docker"] is True and seen["home"] == "/home/ann" and seen["cwd"] == "/home/ann/lab"
    assert seen["cats"] == "meow" and seen["datasets"] == ["cats"]
    # a new file: the mount is read-only (the dataset's own files are read-only by their mode already)
    assert seen["/datasets/cats/new.txt"] == "EROFS" and seen["/datasets/cats/a.txt"] in ("EROFS", "EACCES"), seen
    assert seen["memory"] == int(MEMORY_GB * GiB)
    assert seen["env"] == {"FLIGHTBASE_WORKSPACE": "lab", "FLIGHTBASE_LEASE_ID": lease["id"],
                           "FLIGHTBASE_CPU_SLOTS": str(lease["gpus"][0]), "CUDA_VISIBLE_DEVICES": "",
                           "FLIGHTBASE_DATASETS_DIR": "/datasets", "USER": "ann"}
    assert seen["secrets"] == []
    # what the cell wrote in ~/lab is in the person's home on the host, theirs
    written = platform.data_dir / "home" / "ann" / "lab" / "from-the-container.txt"
    assert written.read_text() == "kept" and written.stat().st_uid == account.pw_uid

    # the container: labelled, the person's account, nothing more, the slot's core, the setting's memory
    [container] = containers_of(client, "ann", "box")
    attrs = container.attrs
    assert container.labels["flightbase.workspace"] == "lab" and container.labels["flightbase.lease"] == lease["id"]
    assert attrs["Config"]["Image"] == NOTEBOOK
    assert attrs["Config"]["User"] == f"{account.pw_uid}:{account.pw_gid}"
    host = attrs["HostConfig"]
    assert host["CapDrop"] == ["ALL"] and host["SecurityOpt"] == ["no-new-privileges"] and host["PidsLimit"] == 4096
    assert not host["Privileged"] and not host.get("CapAdd")
    assert host["Memory"] == host["MemorySwap"] == int(MEMORY_GB * GiB)
    assert host["CpusetCpus"] == str(lease["gpus"][0] % (os.cpu_count() or 1))
    assert host["NetworkMode"] == "host"
    workspace_gid = grp.getgrnam("fbws-lab").gr_gid  # the workspace's group, its only extra group
    assert host["GroupAdd"] == [str(workspace_gid)]
    assert seen["groups"] == sorted({account.pw_gid, workspace_gid}), seen  # not the account's other groups
    mounts = {m["Destination"]: (m["Source"], m["RW"]) for m in attrs["Mounts"]}
    assert mounts == {"/home/ann": (str(platform.data_dir / "home" / "ann"), True),
                      "/datasets/cats": (lease["datasets"][0]["path"], False)}
    # the registry's password went nowhere near it
    password = json.loads((platform.data_dir / "secrets.json").read_text())["oci_registry_password"]
    assert password not in json.dumps(attrs)

    platform.hub("DELETE", "users/ann/servers/box")
    wait_gone(platform, "ann", "box")
    wait_for("the container removed", lambda: not containers_of(client, "ann", "box"), timeout=30)
    assert lease_of(platform, "ann", "box")["state"] == "released"


def test_an_uploaded_image_is_pulled_with_the_platforms_account_and_one_without_jupyter_is_refused_at_once(
        platform, client, tmp_path):
    """A small image uploaded to the workspace (no JupyterLab in it): the spawner pulls it from the
    platform's registry, which refuses anonymous pulls, finds that it cannot serve JupyterLab and
    refuses the server with the reason, before asking for a GPU."""
    resp = upload_bare_image(platform, client, tmp_path, "lab", "ann", "bare-notebook")
    assert resp.status_code == 201, resp.text
    reference = resp.json()["reference"]
    assert resp.json()["runs_as"] == "a container of the image (Docker, on this machine)"

    began = time.monotonic()
    resp = platform.hub("POST", "users/ann/servers/bare", json={"workspace": "lab", "image": "bare", "gpus": 1})
    assert resp.status_code == 422 and "'jupyterhub-singleuser' is not on its PATH" in resp.json()["message"], resp.text
    assert time.monotonic() - began < 60
    client.images.get(reference)  # pulled (with the services' account: anonymous pulls are refused)
    client.images.remove(reference, force=True)
    assert [x for x in leases(platform, "ann") if x["server"] == "bare"] == []  # refused before it asked for a GPU
    assert not containers_of(client, "ann", "bare")
    wait_for("the failed server gone", lambda: not (s := server_model(platform, "ann", "bare")) or not s["pending"])


def test_a_server_that_dies_gives_its_slot_back_and_its_container_goes(platform, client):
    spawn(platform, "ann", "dies", workspace="lab", gpus=1)
    wait_ready(platform, "ann", "dies", timeout=180)
    assert lease_of(platform, "ann", "dies")["state"] == "granted"
    try:  # the server's own process ends (the init process passes the signal on)
        run_in_kernel(platform, "ann", "dies", "import os, signal\nos.kill(1, signal.SIGTERM)\n", timeout=20)
    except Exception:
        pass  # the kernel went with it
    wait_gone(platform, "ann", "dies", timeout=60)
    wait_for("the container removed", lambda: not containers_of(client, "ann", "dies"), timeout=30)
    wait_for("the lease released", lambda: lease_of(platform, "ann", "dies")["state"] == "released", timeout=30)

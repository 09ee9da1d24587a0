"""Jupyter trainings end to end: the real hub, proxy, services and the local spawner.

Servers are started the way the hub's REST API starts them (the spawn form
posts the same user options); code runs in the servers' real kernels over the
Jupyter websocket protocol. The platform has two CPU "GPU slots" (no GPU
here); tests/gpu checks a real GPU where there is one.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

import httpx
import pytest

from tests.helpers.servers import (assert_a_training_waits_for_the_quota, lease_of, leases, progress_events, run_in_kernel,
                                   server_model, spawn, upload_dataset, wait_for, wait_gone, wait_ready, workspace)
from tests.helpers.platforms import running_platform

pytestmark = pytest.mark.slow

CHECK_SECONDS = "1"


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    with running_platform(tmp_path_factory, "jupyter", gpus="2",
                          extra_env={"FLIGHTBASE_LEASE_CHECK_SECONDS": CHECK_SECONDS,
                                     "FLIGHTBASE_SPAWNER_POLL_SECONDS": "2"}) as p:
        p.tokens = {name: p.create_user(name) for name in ("ann", "ben", "cat")}
        yield p
        for name in p.tokens:
            for server in p.hub("GET", f"users/{name}").json().get("servers", {}):
                p.hub("DELETE", f"users/{name}/servers/{server}")


ENV_PROBE = ("import os, getpass, json\n"
             "print(json.dumps({k: os.environ.get(k) for k in ('CUDA_VISIBLE_DEVICES', 'FLIGHTBASE_CPU_SLOTS', "
             "'FLIGHTBASE_GPU_KIND', 'FLIGHTBASE_WORKSPACE', 'FLIGHTBASE_LEASE_ID', 'FLIGHTBASE_DATASETS_DIR')} | "
             "{'uid': os.getuid(), 'user': getpass.getuser(), 'cwd': os.getcwd()}))\n")


def test_a_server_gets_its_slot_its_datasets_read_only_and_keeps_its_files(platform, tmp_path):
    ws = workspace(platform, ["ann"])
    upload_dataset(platform, "ann", ws, "cats", {"a.txt": b"meow\n"}, tmp_path)
    spawn(platform, "ann", "exp", workspace=ws, gpus=1, datasets=["cats"])
    wait_ready(platform, "ann", "exp")
    lease = lease_of(platform, "ann", "exp")
    assert lease["state"] == "granted" and lease["gpu_kind"] == "cpu-slot" and len(lease["gpus"]) == 1
    assert [d["name"] for d in lease["datasets"]] == ["cats"]

    seen = json.loads(run_in_kernel(platform, "ann", "exp", ENV_PROBE).strip().splitlines()[-1])
    assert seen["CUDA_VISIBLE_DEVICES"] == ""  # a CPU slot: no GPU visible
    assert seen["FLIGHTBASE_CPU_SLOTS"] == str(lease["gpus"][0])
    assert seen["FLIGHTBASE_WORKSPACE"] == ws and seen["FLIGHTBASE_LEASE_ID"] == lease["id"]
    assert seen["cwd"].endswith(f"/{ws}") and seen["FLIGHTBASE_DATASETS_DIR"] == seen["cwd"] + "/datasets"
    # the JupyterLab extension of the server knows its workspace and lease (for the idle warning)
    config = httpx.get(f"{platform.url}/user/ann/exp/flightbase/config",
                       headers={"Authorization": f"token {platform.tokens['ann']}"}, timeout=30)
    assert config.status_code == 200, config.text
    assert config.json()["workspace"] == ws and config.json()["lease"] == lease["id"]
    if os.geteuid() == 0:  # the platform runs it as ann's own unprivileged account
        assert seen["user"] == "ann" and seen["uid"] >= 1000

    result = run_in_kernel(platform, "ann", "exp", (
        "print(open('datasets/cats/a.txt').read().strip())\n"
        "try:\n    open('datasets/cats/a.txt', 'a').write('x')\nexcept OSError as e:\n    print('refused', type(e).__name__)\n"
        "try:\n    open('datasets/cats/new.txt', 'w').write('x')\nexcept OSError as e:\n    print('refused', type(e).__name__)\n"
        "open('notes.txt', 'w').write('kept')\nprint('wrote')\n"))
    if os.geteuid() == 0:
        assert result.split() == ["meow", "refused", "PermissionError", "refused", "PermissionError", "wrote"]
    else:  # one account for everything: the dataset's files are read-only by mode only
        assert result.split()[0] == "meow" and result.split()[-1] == "wrote"

    platform.hub("DELETE", "users/ann/servers/exp")
    wait_gone(platform, "ann", "exp")
    assert lease_of(platform, "ann", "exp")["state"] == "released"
    spawn(platform, "ann", "exp", workspace=ws, gpus=1)
    wait_ready(platform, "ann", "exp")
    assert run_in_kernel(platform, "ann", "exp", "print(open('notes.txt').read())").strip() == "kept"
    platform.hub("DELETE", "users/ann/servers/exp")
    wait_gone(platform, "ann", "exp")


def test_a_second_notebook_waits_for_the_quota_shows_its_place_and_starts_when_the_first_stops(platform):
    """Quotas count notebooks: with a quota of 1 (no borrowing) the second member's notebook
    waits, the progress page says why, a training waits too, and the notebook starts once
    the first one stops."""
    ws = workspace(platform, ["ann", "ben"], gpu_quota=1, allow_borrowing=False)
    spawn(platform, "ann", "one", workspace=ws, gpus=1)
    wait_ready(platform, "ann", "one")
    spawn(platform, "ben", "two", workspace=ws, gpus=1)
    events = progress_events(platform, "ben", "two", until=lambda e: "Waiting for a GPU" in e.get("message", ""))
    assert "quota 1/1 in use" in events[-1]["message"], events
    assert lease_of(platform, "ben", "two")["state"] == "queued"
    assert server_model(platform, "ben", "two")["pending"] == "spawn"

    assert_a_training_waits_for_the_quota(platform, "ben", ws)

    platform.hub("DELETE", "users/ann/servers/one")
    wait_ready(platform, "ben", "two")
    assert lease_of(platform, "ben", "two")["state"] == "granted"
    assert lease_of(platform, "ann", "one")["state"] == "released"
    platform.hub("DELETE", "users/ben/servers/two")
    wait_gone(platform, "ben", "two")


def test_when_every_gpu_is_taken_a_notebook_waits_and_starts_when_one_frees(platform):
    """No quota at all: two notebooks of other workspaces hold both slots; a third waits
    (the progress page says what it needs and when a GPU should free up) and starts as soon as one of them stops."""
    first, second, third = (workspace(platform, [u]) for u in ("ann", "cat", "ben"))
    spawn(platform, "ann", "full1", workspace=first, gpus=1)
    spawn(platform, "cat", "full2", workspace=second, gpus=1)
    wait_ready(platform, "ann", "full1")
    wait_ready(platform, "cat", "full2")
    spawn(platform, "ben", "full3", workspace=third, gpus=1)
    events = progress_events(platform, "ben", "full3", until=lambda e: "Waiting for a GPU" in e.get("message", ""))
    assert "needs 1 GPU on one node" in events[-1]["message"] and "ends" in events[-1]["message"], events
    platform.hub("DELETE", "users/cat/servers/full2")
    wait_ready(platform, "ben", "full3")
    held = {x["server"]: x["gpus"] for x in leases(platform, "ann") + leases(platform, "ben") if x["state"] == "granted"}
    assert set(held) == {"full1", "full3"} and held["full1"] != held["full3"]
    for user, server in (("ann", "full1"), ("ben", "full3")):
        platform.hub("DELETE", f"users/{user}/servers/{server}")
        wait_gone(platform, user, server)


def test_a_queued_spawn_can_be_cancelled_and_gives_its_place_back(platform):
    ws = workspace(platform, ["ann", "ben"], gpu_quota=1, allow_borrowing=False)
    spawn(platform, "ann", "hold", workspace=ws, gpus=1)
    wait_ready(platform, "ann", "hold")
    spawn(platform, "ben", "wait", workspace=ws, gpus=1)
    wait_for("ben's lease queued", lambda: any(x["server"] == "wait" and x["state"] == "queued"
                                               for x in leases(platform, "ben")))
    r = platform.hub("DELETE", "users/ben/servers/wait")
    assert r.status_code in (202, 204), r.text
    wait_gone(platform, "ben", "wait")
    wait_for("ben's lease cancelled", lambda: lease_of(platform, "ben", "wait")["state"] == "cancelled", 15)
    platform.hub("DELETE", "users/ann/servers/hold")
    wait_gone(platform, "ann", "hold")


def test_a_crashed_server_frees_its_lease(platform):
    ws = workspace(platform, ["cat"])
    spawn(platform, "cat", "crash", workspace=ws, gpus=1)
    pid = wait_ready(platform, "cat", "crash")["state"]["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_for("the lease released", lambda: lease_of(platform, "cat", "crash")["state"] == "released", 30)
    assert lease_of(platform, "cat", "crash")["reason"] == "its server stopped"
    wait_gone(platform, "cat", "crash")


def test_an_idle_notebook_is_warned_then_stopped_but_a_busy_kernel_is_not(platform):
    ws = workspace(platform, ["cat"], idle_timeout_minutes=0.2)  # 12 s; warned at 9.6 s
    spawn(platform, "cat", "idle", workspace=ws, gpus=1)
    wait_ready(platform, "cat", "idle")
    # a kernel busy for 20 s (longer than the timeout) keeps it alive
    busy = run_in_kernel(platform, "cat", "idle", "import time\ntime.sleep(20)\nprint('done')", timeout=60)
    assert busy.strip() == "done"
    assert server_model(platform, "cat", "idle")["ready"]
    assert lease_of(platform, "cat", "idle")["state"] == "granted"
    # then idle: first a warning on the lease, then the server is stopped and the GPU freed
    warned = wait_for("the idle warning",
                      lambda: (x := lease_of(platform, "cat", "idle"))["reason"] and "will be stopped" in x["reason"]
                      and x, 30, 0.2)
    assert warned["state"] == "granted" and server_model(platform, "cat", "idle") is not None
    wait_gone(platform, "cat", "idle", 30)
    ended = lease_of(platform, "cat", "idle")
    assert ended["state"] == "released" and "idle" in ended["reason"]


def test_bad_options_fail_the_spawn_with_the_field_named(platform):
    ws = workspace(platform, ["ann"])
    other = workspace(platform, ["ben"])
    for server, options, expected in (
        ("bad1", {"workspace": ws, "gpus": 2}, "gpus: a Jupyter training has 0 or 1 GPU"),
        ("bad2", {"workspace": other, "gpus": 1}, f"workspace: you are not a member of a workspace named '{other}'"),
        ("bad3", {"workspace": ws, "image": "not-there"}, "image: 'not-there' is not an image of workspace"),
    ):
        r = platform.hub("POST", f"users/ann/servers/{server}", json=options)
        assert r.status_code == 400 and expected in r.json()["message"], r.text
        assert not [x for x in leases(platform, "ann") if x["server"] == server]
    # the jobqueue refuses the lease (the workspace's end date has passed): its status and reason
    ended = workspace(platform, ["ann"], end_date="2020-01-01")
    r = platform.hub("POST", "users/ann/servers/late", json={"workspace": ended, "gpus": 1})
    assert r.status_code == 409 and "cannot run work" in r.json()["message"], r.text


def test_a_server_without_gpu_starts_without_a_lease(platform):
    ws = workspace(platform, ["ben"])
    spawn(platform, "ben", "cpu", workspace=ws, gpus=0)
    wait_ready(platform, "ben", "cpu")
    assert not [x for x in leases(platform, "ben") if x["server"] == "cpu"]
    seen = json.loads(run_in_kernel(platform, "ben", "cpu", ENV_PROBE).strip().splitlines()[-1])
    assert seen["CUDA_VISIBLE_DEVICES"] == "" and seen["FLIGHTBASE_LEASE_ID"] is None
    platform.hub("DELETE", "users/ben/servers/cpu")
    wait_gone(platform, "ben", "cpu")


def test_outsiders_cannot_see_or_release_a_lease(platform):
    ws = workspace(platform, ["ann"])
    spawn(platform, "ann", "mine", workspace=ws, gpus=1)
    wait_ready(platform, "ann", "mine")
    lease = lease_of(platform, "ann", "mine")
    for method in ("GET", "DELETE"):
        r = platform.api("jobqueue", method, f"leases/{lease['id']}", platform.tokens["ben"])
        assert r.status_code == 404, r.text
    assert lease_of(platform, "ann", "mine")["state"] == "granted"
    platform.hub("DELETE", "users/ann/servers/mine")
    wait_gone(platform, "ann", "mine")


def test_a_granted_lease_survives_a_killed_jobqueue_and_is_still_released(platform):
    """SIGKILL of the jobqueue while a notebook holds its GPU: the hub restarts the service,
    which adopts the lease (the server keeps running with its GPU, the quota still counts
    it); stopping the server afterwards releases it."""
    ws = workspace(platform, ["cat"], gpu_quota=1, allow_borrowing=False)
    spawn(platform, "cat", "keep", workspace=ws, gpus=1)
    wait_ready(platform, "cat", "keep")
    lease = lease_of(platform, "cat", "keep")
    pid = platform.service_pid("jobqueue")
    os.kill(pid, signal.SIGKILL)
    wait_for("the jobqueue back", lambda: _alive(platform) and platform.service_pid("jobqueue") != pid, 60)
    time.sleep(3 * float(CHECK_SECONDS))  # a few reconciler checks: the server is there, the lease stays
    again = lease_of(platform, "cat", "keep")
    assert again["state"] == "granted" and again["gpus"] == lease["gpus"]
    assert server_model(platform, "cat", "keep")["ready"]
    assert_a_training_waits_for_the_quota(platform, "cat", ws)
    platform.hub("DELETE", "users/cat/servers/keep")
    wait_gone(platform, "cat", "keep")
    wait_for("the lease released", lambda: lease_of(platform, "cat", "keep")["state"] == "released", 15)


def test_the_spawn_form_offers_the_workspaces_things_and_starts_what_was_chosen(platform, tmp_path):
    """As a person in a browser: sign up, be approved, open the spawn form of a named server,
    see only their workspaces' images and datasets, post the form, get the server."""
    from tests.helpers.hub_login import login
    from tests.platform.harness import form as _form

    name, password = "dee", "correct-horse-battery-7"
    with httpx.Client(base_url=platform.url, follow_redirects=True, timeout=30) as anon:
        _form(anon, "/hub/signup", {"username": name, "signup_password": password,
                                     "signup_password_confirmation": password})
    with login(platform, "admin", platform.admin_password) as admin:
        assert admin.get(f"/hub/authorize/{name}").status_code == 200
    platform.tokens[name] = platform.create_user(name)
    mine, theirs = workspace(platform, [name]), workspace(platform, ["ann"])
    upload_dataset(platform, name, mine, "birds", {"b.txt": b"tweet\n"}, tmp_path)
    r = platform.api("registry", "POST", f"workspaces/{theirs}/images", platform.tokens["ann"],
                     json={"name": "secret-img", "reference": "example.org/secret:1"})
    assert r.status_code == 201, r.text
    with login(platform, name, password) as browser:
        form = browser.get(f"/hub/spawn/{name}/lab")
        assert form.status_code == 200
        page = form.text
        assert f'<option value="{mine}" selected>{mine}</option>' in page and theirs not in page
        assert f'name="image.{mine}"' in page and "secret-img" not in page
        assert f'name="datasets.{mine}" value="birds"' in page
        assert "host Python environment (jobs and notebooks run as local processes" in page
        resp = browser.post(f"/hub/spawn/{name}/lab", data={
            "_xsrf": browser.cookies.get("_xsrf"), "workspace": mine, f"image.{mine}": "notebook",
            f"datasets.{mine}": "birds", "gpu": "1"})
        assert resp.status_code == 200
    wait_ready(platform, name, "lab")
    lease = lease_of(platform, name, "lab")
    assert lease["state"] == "granted" and [d["name"] for d in lease["datasets"]] == ["birds"]
    assert run_in_kernel(platform, name, "lab", "print(open('datasets/birds/b.txt').read())").strip() == "tweet"
    platform.hub("DELETE", f"users/{name}/servers/lab")
    wait_gone(platform, name, "lab")


def _alive(platform) -> bool:
    try:
        return httpx.get(f"{platform.url}/services/jobqueue/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))

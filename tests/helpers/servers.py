"""Helpers for tests that spawn Jupyter servers through the real hub and talk to them.

Shared by tests/spawner, tests/security and tests/containers (#19: shared helpers
live here rather than in another suite's test module). ``platform`` is a running
tests/platform/harness.py platform whose ``tokens`` maps user names to API tokens.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid

import httpx
from websockets.sync.client import connect

from tests.helpers.scheduler import wait_scheduler_passes
from tests.platform.harness import FLIGHTBASE


def workspace(platform, members, **settings) -> str:
    name = f"ws-{uuid.uuid4().hex[:6]}"
    r = platform.api("jobqueue", "POST", "workspaces", platform.admin_token, json={"name": name, "settings": settings})
    assert r.status_code == 201, r.text
    for m in members:
        assert platform.api("jobqueue", "PUT", f"workspaces/{name}/members/{m}", platform.admin_token).status_code == 200
    return name


def spawn(platform, user, server, **options):
    r = platform.hub("POST", f"users/{user}/servers/{server}", json=options)
    assert r.status_code in (201, 202), r.text
    return r


def server_model(platform, user, server) -> dict | None:
    return platform.hub("GET", f"users/{user}").json()["servers"].get(server)


def wait_for(what, check, timeout=60.0, interval=0.3):
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def wait_ready(platform, user, server, timeout=60.0) -> dict:
    return wait_for(f"{user}/{server} ready", lambda: (s := server_model(platform, user, server)) and s["ready"] and s,
                    timeout)


def wait_gone(platform, user, server, timeout=60.0) -> None:
    wait_for(f"{user}/{server} gone", lambda: server_model(platform, user, server) is None, timeout)


def leases(platform, user, **params) -> list[dict]:
    r = platform.api("jobqueue", "GET", "leases", platform.tokens[user], params={"all": True, **params})
    assert r.status_code == 200, r.text
    return r.json()


def lease_of(platform, user, server) -> dict:
    return next(x for x in leases(platform, user) if x["server"] == server)


def progress_events(platform, user, server, until, timeout=30.0) -> list[dict]:
    """The hub's progress stream of a pending spawn (what its progress page shows)."""
    events = []
    url = f"{platform.url}/hub/api/users/{user}/servers/{server}/progress"
    with httpx.stream("GET", url, headers={"Authorization": f"token {platform.admin_token}"}, timeout=timeout) as resp:
        for line in resp.iter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line[5:]))
                if until(events[-1]):
                    break
    return events


def run_in_kernel(platform, user, server, code: str, timeout=60.0) -> str:
    """Start a kernel in the user's server, run ``code`` and return what it printed."""
    token = platform.tokens[user]
    base = f"{platform.url}/user/{user}/{server}/api"
    headers = {"Authorization": f"token {token}"}
    kernel = httpx.post(f"{base}/kernels", headers=headers, json={"name": "python3", "path": "probe.ipynb"}, timeout=30)
    assert kernel.status_code == 201, kernel.text
    kid = kernel.json()["id"]
    msg_id = uuid.uuid4().hex
    ws_url = f"ws://127.0.0.1:{platform.port}/user/{user}/{server}/api/kernels/{kid}/channels"
    out = []
    try:
        with connect(ws_url, additional_headers=headers, open_timeout=30) as ws:
            ws.send(json.dumps({
                "header": {"msg_id": msg_id, "username": user, "session": uuid.uuid4().hex, "msg_type": "execute_request",
                           "version": "5.3"},
                "parent_header": {}, "metadata": {}, "channel": "shell",
                "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                            "allow_stdin": False, "stop_on_error": True}}))
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                msg = json.loads(ws.recv(timeout=deadline - time.monotonic()))
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind = msg["header"]["msg_type"]
                if kind == "stream":
                    out.append(msg["content"]["text"])
                elif kind == "error":
                    out.append("ERROR " + msg["content"]["ename"] + ": " + msg["content"]["evalue"])
                elif kind == "status" and msg["content"]["execution_state"] == "idle":
                    break
    finally:
        httpx.delete(f"{base}/kernels/{kid}", headers=headers, timeout=30)
    return "".join(out)


def upload_dataset(platform, user, ws, name, files: dict[str, bytes], tmp_path) -> None:
    folder = tmp_path / name
    folder.mkdir()
    for rel, data in files.items():
        (folder / rel).write_bytes(data)
    env = dict(os.environ, FLIGHTBASE_URL=platform.url, FLIGHTBASE_TOKEN=platform.tokens[user])
    subprocess.run([str(FLIGHTBASE), "datasets", "upload", "-w", ws, "--quiet", str(folder)], env=env, check=True,
                   capture_output=True, timeout=60)


def assert_a_training_waits_for_the_quota(platform, user, ws) -> None:
    """A one-GPU training in ``ws`` stays queued, its reason the quota (a notebook holds it)."""
    training = platform.api("jobqueue", "POST", "trainings", platform.tokens[user],
                            json={"workspace": ws, "name": "t", "entrypoint": "x.py", "gpus": 1})
    assert training.status_code == 201, training.text
    job = training.json()["jobs"][0]["id"]
    wait_scheduler_passes(platform)  # a whole pass after the submission left it queued
    found = platform.api("jobqueue", "GET", f"jobs/{job}", platform.tokens[user]).json()
    assert found["state"] == "queued" and "workspace quota" in found["queue"]["reason"], found
    platform.api("jobqueue", "POST", f"jobs/{job}/cancel", platform.tokens[user])

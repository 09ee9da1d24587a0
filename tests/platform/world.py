"""A small world of people and things in a fresh workspace, made through the real APIs."""

from __future__ import annotations

import itertools
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

_counter = itertools.count()

SLEEPER = b"import time\nprint('sleeping', flush=True)\ntime.sleep(600)\n"


@dataclass
class World:
    workspace: str
    other_workspace: str
    tokens: dict[str, str]  # role -> token
    names: dict[str, str]  # role -> user name
    training_id: str  # a live training: its one job sleeps (or waits for a slot)
    failed_training_id: str  # its one job failed at once
    job_id: str  # the live training's job
    dataset: str
    image: str


def users(platform) -> dict[str, tuple[str, str]]:
    """The same four people for every world: role -> (name, token)."""
    cache = getattr(platform, "_people", None)
    if cache is None:
        cache = {role: (f"{role}-u", platform.create_user(f"{role}-u")) for role in ("manager", "owner", "member", "outsider")}
        platform._people = cache
    return cache


def upload_code(platform, token: str, workspace: str, filename: str, content: bytes) -> str:
    resp = platform.api("jobqueue", "POST", "code", token, params={"workspace": workspace, "filename": filename}, content=content)
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


def submit(platform, token: str, workspace: str, name: str, entrypoint: str, code_id: str | None = None, **extra) -> dict:
    body = {"workspace": workspace, "name": name, "entrypoint": entrypoint, **extra}
    if code_id:
        body["code_id"] = code_id
    resp = platform.api("jobqueue", "POST", "trainings", token, json=body)
    assert resp.status_code == 201, resp.text
    return resp.json()


ENDED = ("succeeded", "failed", "cancelled")
JOBS = Path(__file__).parent / "jobs"  # the job scripts the platform tests upload


def wait_state(platform, token: str, path: str, states=ENDED, timeout=60) -> dict:
    """Poll a jobqueue resource (``jobs/ID``, ``trainings/ID``) until its state is one of ``states``."""
    deadline = time.monotonic() + timeout
    while True:
        found = platform.api("jobqueue", "GET", path, token).json()
        if found["state"] in states:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} stayed {found['state']}: {found}")
        time.sleep(0.2)


def wait_training(platform, token: str, training_id: str, states=ENDED, timeout=60) -> dict:
    return wait_state(platform, token, f"trainings/{training_id}", states, timeout)


def make_world(platform) -> World:
    people = users(platform)
    n = next(_counter)
    ws, other = f"ws{n}", f"other{n}"
    admin = platform.admin_token
    for name, managers in ((ws, [people["manager"][0]]), (other, [])):
        resp = platform.api("jobqueue", "POST", "workspaces", admin, json={"name": name, "settings": {"managers": managers, "gpu_quota": 4}})
        assert resp.status_code == 201, resp.text
    for role in ("manager", "owner", "member"):
        assert platform.api("jobqueue", "PUT", f"workspaces/{ws}/members/{people[role][0]}", admin).status_code == 200
    assert platform.api("jobqueue", "PUT", f"workspaces/{other}/members/{people['outsider'][0]}", admin).status_code == 200
    owner = people["owner"][1]
    code = upload_code(platform, owner, ws, "sleep.py", SLEEPER)
    live = submit(platform, owner, ws, "t", "sleep.py", code, gpus=1)
    failed = submit(platform, owner, ws, "f", "missing.py", gpus=1)
    d = platform.api("registry", "POST", f"workspaces/{ws}/datasets", owner, json={"name": "d"})
    assert d.status_code == 201, d.text
    i = platform.api("registry", "POST", f"workspaces/{ws}/images", owner, json={"name": "img", "reference": "example.org/team/img:1"})
    assert i.status_code == 201, i.text
    tokens = {role: tok for role, (_, tok) in people.items()}
    tokens["admin"] = admin
    names = {role: name for role, (name, _) in people.items()}
    names["admin"] = "admin"
    return World(ws, other, tokens, names, live["id"], failed["id"], live["jobs"][0]["id"], "d", "img")


@contextmanager
def fresh_world(platform):
    """A new world for the length of a fixture, cleaned up after it."""
    world = make_world(platform)
    try:
        yield world
    finally:
        clean_world(platform, world)


def clean_world(platform, world: World) -> None:
    """Cancel what the world left running, so that slots stay free for other tests."""
    platform.api("jobqueue", "POST", f"trainings/{world.training_id}/cancel", platform.admin_token)


def wait_job(platform, token, job_id, states=ENDED, timeout=90) -> dict:
    return wait_state(platform, token, f"jobs/{job_id}", states, timeout)


def logs(platform, token, job_id, **params) -> str:
    resp = platform.api("jobqueue", "GET", f"jobs/{job_id}/logs", token, params=params)
    assert resp.status_code == 200, resp.text
    return resp.text


def wait_idle(platform, timeout=60):
    """No job of any workspace is queued or holds a slot: what earlier tests left is cancelled."""
    deadline = time.monotonic() + timeout
    while True:
        busy = [j for s in ("queued", "starting", "running", "preempted")
                for j in platform.api("jobqueue", "GET", "jobs", platform.admin_token, params={"state": s, "limit": 1000}).json()]
        if not busy:
            return
        for j in busy:
            platform.api("jobqueue", "POST", f"jobs/{j['id']}/cancel", platform.admin_token)
        if time.monotonic() > deadline:
            raise AssertionError(f"jobs still queued or running: {[j['id'] for j in busy]}")
        time.sleep(0.5)

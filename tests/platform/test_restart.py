"""State survives restarts: of the whole platform, and of a service killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest

from tests.helpers.platforms import running_platform

from .harness import new_platform
from .postgres import PostgresServer

pytestmark = pytest.mark.slow


def _populate(p) -> dict:
    admin = p.admin_token
    assert p.api("jobqueue", "POST", "workspaces", admin, json={"name": "keep", "settings": {"gpu_quota": 3}}).status_code == 201
    member = p.create_user("keeper")
    assert p.api("jobqueue", "PUT", "workspaces/keep/members/keeper", admin).status_code == 200
    t = p.api("jobqueue", "POST", "trainings", member, json={"workspace": "keep", "name": "kept", "entrypoint": "k.py", "gpus": 2})
    assert t.status_code == 201
    assert p.api("registry", "POST", "workspaces/keep/datasets", member, json={"name": "kd"}).status_code == 201
    return {"member": member, "training": t.json()}


def _check(p, state) -> None:
    ws = p.api("jobqueue", "GET", "workspaces/keep", state["member"]).json()
    assert ws["settings"]["gpu_quota"] == 3 and ws["members"] == ["keeper"]
    t = p.api("jobqueue", "GET", f"trainings/{state['training']['id']}", state["member"])
    assert t.status_code == 200
    stable = ("id", "workspace", "name", "created_by", "created_at", "owners", "spec")
    assert {k: t.json()[k] for k in stable} == {k: state["training"][k] for k in stable}
    assert [j["id"] for j in t.json()["jobs"]] == [j["id"] for j in state["training"]["jobs"]]
    names = [d["name"] for d in p.api("registry", "GET", "workspaces/keep/datasets", state["member"]).json()]
    assert names == ["kd"]


# Not tests.helpers.platforms.running_platform: a platform not started yet, each test starts it itself.
@pytest.fixture
def fresh(tmp_path):
    p = new_platform(tmp_path)
    yield p
    p.remove()


def test_platform_restart_keeps_everything(fresh):
    p = fresh.start()
    state = _populate(p)
    p.stop()
    # a different password on restart must not replace the bootstrapped one
    original_password = p.admin_password
    p.extra_env["FLIGHTBASE_ADMIN_PASSWORD"] = "another-password-123"
    p.start()
    _check(p, state)
    with httpx.Client(base_url=p.url, follow_redirects=True) as c:
        c.get("/hub/login")
        c.post("/hub/login", data={"username": "admin", "password": original_password, "_xsrf": c.cookies.get("_xsrf")})
        assert c.get("/hub/home").url.path == "/hub/home"


def test_killed_service_is_restarted_by_the_hub_with_its_state(fresh):
    p = fresh.start()
    state = _populate(p)
    pid = p.service_pid("jobqueue")
    os.kill(pid, signal.SIGKILL)
    time.sleep(1)
    p.wait_healthy()
    assert p.service_pid("jobqueue") != pid
    _check(p, state)


def test_postgresql_store(tmp_path_factory):
    """The same platform with both services on a real PostgreSQL server."""
    pg = PostgresServer().start()
    try:
        with running_platform(tmp_path_factory, "postgres-store", extra_env={
            "FLIGHTBASE_JOBQUEUE_DB_URL": pg.create_database("fb_jobqueue"),
            "FLIGHTBASE_REGISTRY_DB_URL": pg.create_database("fb_registry"),
        }) as p:
            state = _populate(p)
            p.stop()
            p.start()
            _check(p, state)
            assert not (p.data_dir / "jobqueue.sqlite").exists()
    finally:
        pg.stop()


def test_jobqueue_killed_mid_run_loses_nothing(fresh):
    """SIGKILL of the jobqueue while jobs run: on restart it re-attaches to the job still
    running, fails the one whose processes died meanwhile (with the reason), and keeps
    the queued one, which then runs."""
    from flightbase_jobqueue.backends.local import job_pids

    from .world import JOBS, submit, upload_code, wait_job

    p = fresh.start()
    state = _populate(p)
    token = state["member"]
    sleeper = upload_code(p, token, "keep", "sleeper.py", (JOBS / "sleeper.py").read_bytes())
    survivor = submit(p, token, "keep", "survivor", "sleeper.py", sleeper, args=["--seconds", "8"])["jobs"][0]["id"]
    doomed = submit(p, token, "keep", "doomed", "sleeper.py", sleeper)["jobs"][0]["id"]
    for job in (survivor, doomed):
        wait_job(p, token, job, ("running",))
    waiting = submit(p, token, "keep", "waiting", "sleeper.py", sleeper, args=["--seconds", "0"], gpus=4)["jobs"][0]["id"]
    assert p.api("jobqueue", "GET", f"jobs/{waiting}", token).json()["state"] == "queued"

    os.kill(p.service_pid("jobqueue"), signal.SIGKILL)
    for pid in job_pids(doomed):  # this job dies while nobody watches
        os.kill(pid, signal.SIGKILL)
    p.wait_healthy(timeout=60)

    assert wait_job(p, token, survivor, timeout=60)["state"] == "succeeded"
    lost = wait_job(p, token, doomed, timeout=30)
    assert lost["state"] == "failed" and "gone" in lost["reason"]
    assert wait_job(p, token, waiting, timeout=60)["state"] == "succeeded"
    names = {t["name"] for t in p.api("jobqueue", "GET", "trainings", token, params={"workspace": "keep"}).json()}
    assert {"kept", "survivor", "doomed", "waiting"} <= names

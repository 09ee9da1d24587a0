"""The live jobqueue on its simulated backend (``FLIGHTBASE_BACKEND=sim``, benchmarks and tests only),
the per-workspace borrowing limit through the API, and a small run of benchmarks/scale_bench.py
(#17 part 6): nothing lost or run twice when the jobqueue is SIGKILLed during the drain.
Everything is real (``flightbase up``, hub, proxy, services); only the jobs are simulated, which is
what the sim backend is for."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from flightbase_jobqueue.backends.simulated import audit, log_path

from tests.helpers.platforms import running_platform

from .harness import ROOT
from .world import submit, upload_code, wait_job

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    with running_platform(tmp_path_factory, "sim", gpus="4", extra_env={"FLIGHTBASE_BACKEND": "sim"}) as p:
        token = p.create_user("simmer")
        assert p.api("jobqueue", "POST", "workspaces", p.admin_token,
                     json={"name": "lim", "settings": {"gpu_quota": 1, "borrowing_limit": 1}}).status_code == 201
        assert p.api("jobqueue", "PUT", "workspaces/lim/members/simmer", p.admin_token).status_code == 200
        code = upload_code(p, token, "lim", "job.py", b"print('never runs')\n")
        yield p, token, code


def job_of(p, token, code, name, seconds, gpus=1, **extra):
    out = submit(p, token, "lim", name, "job.py", code, gpus=gpus, env={"SIM_SECONDS": str(seconds)}, **extra)
    return out["jobs"][0]["id"]


@pytest.mark.parametrize(("value", "words"), [
    (-1, "greater than or equal to 0"),
    ("lots", "integer"),
    (1.5, "integer"),
])
def test_a_bad_borrowing_limit_is_refused_naming_the_field(sim, value, words):
    p, _, _ = sim
    before = p.api("jobqueue", "GET", "workspaces/lim", p.admin_token).json()["settings"]
    resp = p.api("jobqueue", "PATCH", "workspaces/lim/settings", p.admin_token, json={"borrowing_limit": value})
    assert resp.status_code == 422, resp.text
    assert words in resp.json()["errors"]["borrowing_limit"]
    assert p.api("jobqueue", "GET", "workspaces/lim", p.admin_token).json()["settings"] == before
    made = p.api("jobqueue", "POST", "workspaces", p.admin_token,
                 json={"name": "bad-limit", "settings": {"gpu_quota": 2, "borrowing_limit": value}})
    assert made.status_code == 422 and "settings.borrowing_limit" in made.json()["errors"]


def test_only_administrators_set_it_and_it_is_shown_with_the_quota(sim):
    p, token, _ = sim
    ws = p.api("jobqueue", "GET", "workspaces/lim", token).json()
    assert (ws["settings"]["gpu_quota"], ws["settings"]["borrowing_limit"]) == (1, 1)
    # a member is no manager: refused before the field is looked at; a manager may not either
    assert p.api("jobqueue", "PATCH", "workspaces/lim/settings", token, json={"borrowing_limit": 3}).status_code == 403
    assert p.api("jobqueue", "PATCH", "workspaces/lim/settings", p.admin_token,
                 json={"managers": ["simmer"]}).status_code == 200
    time.sleep(0.2)
    refused = p.api("jobqueue", "PATCH", "workspaces/lim/settings", token, json={"borrowing_limit": 3})
    assert refused.status_code == 403 and "borrowing_limit" in refused.text
    assert p.api("jobqueue", "PATCH", "workspaces/lim/settings", p.admin_token,
                 json={"managers": []}).status_code == 200


def test_the_live_scheduler_keeps_a_workspace_within_quota_plus_its_limit(sim):
    p, token, code = sim
    # quota 1 + borrowing limit 1 on 4 idle slots: two one-slot jobs run, the third waits for the limit
    too_big = p.api("jobqueue", "POST", "trainings", token, json={
        "workspace": "lim", "name": "too-big", "entrypoint": "job.py", "code_id": code, "gpus": 3})
    assert too_big.status_code == 422
    assert "may hold at most 2 GPUs (quota 1, borrowing limit 1)" in too_big.json()["message"]
    jobs = [job_of(p, token, code, f"b{i}", 60) for i in range(3)]
    for j in jobs[:2]:
        wait_job(p, token, j, ("running",), timeout=30)
    deadline = time.monotonic() + 30
    while True:
        third = p.api("jobqueue", "GET", f"jobs/{jobs[2]}", token).json()
        if "borrowing limit" in ((third.get("queue") or {}).get("reason") or third.get("reason") or ""):
            break
        assert time.monotonic() < deadline, third
        time.sleep(0.3)
    assert third["state"] == "queued"
    for j in jobs:
        p.api("jobqueue", "POST", f"jobs/{j}/cancel", token)
    for j in jobs:
        wait_job(p, token, j, timeout=30)


def test_sim_runs_survive_a_sigkill_of_the_jobqueue(sim):
    p, token, code = sim
    p.api("jobqueue", "PATCH", "workspaces/lim/settings", p.admin_token, json={"borrowing_limit": None})
    time.sleep(6)  # the scheduler's copy of the limits is refreshed every 5 s
    running = job_of(p, token, code, "through", 6)
    wait_job(p, token, running, ("running",), timeout=30)
    pid = p.service_pid("jobqueue")
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while True:
        try:
            if p.service_pid("jobqueue") != pid:
                break
        except AssertionError:
            pass
        assert time.monotonic() < deadline
        time.sleep(0.3)
    p.wait_healthy(timeout=60)
    done = wait_job(p, token, running, timeout=60)
    assert done["state"] == "succeeded", done
    result = audit(log_path(p.data_dir), [running])
    assert (result["completed_once"], result["lost"], result["run_twice"]) == (1, 0, 0)
    starts = [line for line in log_path(p.data_dir).read_text().splitlines() if line.startswith(f"start {running} ")]
    assert len(starts) == 1  # carried on after the restart, not started again


def test_a_request_cannot_choose_the_backend(sim):
    p, token, code = sim
    resp = p.api("jobqueue", "POST", "trainings", token, json={
        "workspace": "lim", "name": "pick", "entrypoint": "job.py", "code_id": code, "backend": "local"})
    assert resp.status_code == 422 and "backend" in resp.text


def test_small_scale_bench_loses_nothing_and_runs_nothing_twice():
    """300 workloads of Kueue's baseline shapes in 6 workspaces, one SIGKILL of the jobqueue."""
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "scale_bench.py"), "--workloads", "300",
                          "--workspaces", "6", "--kills", "1", "--json"],
                         capture_output=True, text=True, cwd=ROOT, timeout=600)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(result["kills"]) == 1
    assert result["accepted"] == 300 and result["jobs_in_db"] == 300
    assert result["lost"] == 0 and result["run_twice"] == 0 and result["still_running"] == 0
    assert result["ran_exactly_once"] == 300 and result["jobs_not_succeeded"] == 0, result["jobs_not_succeeded_examples"]
    assert result["ok"] and out.returncode == 0, out.stderr[-2000:]

"""Trainings end to end through the real hub, proxy and jobqueue, on the local backend.

Real processes, real launchers (horovodrun --gloo, torchrun), real accounts:
the jobs run as their owner's own system account when the tests run as root.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time

import pytest

from tests.helpers.platforms import running_platform
from tests.helpers.scheduler import wait_scheduler_passes

from .harness import FLIGHTBASE
from .world import JOBS, logs, submit, upload_code, wait_idle, wait_job, wait_training

pytestmark = pytest.mark.slow

def code(platform, world, name: str) -> str:
    return upload_code(platform, world.tokens["owner"], world.workspace, name, (JOBS / name).read_bytes())


def job_processes(job_id: str) -> list[int]:
    from flightbase_jobqueue.backends.local import job_pids

    return job_pids(job_id)


def test_success_logs_metrics_and_placement(platform, world):
    token = world.tokens["owner"]
    t = submit(platform, token, world.workspace, "ok", "report.py", code(platform, world, "report.py"), args=["--lr", "0.5"])
    job = wait_job(platform, token, t["jobs"][0]["id"])
    assert job["state"] == "succeeded" and job["exit_code"] == 0
    assert job["started_at"] >= job["submitted_at"] and job["finished_at"] >= job["started_at"]
    assert job["gpu_kind"] == "cpu-slot" and job["hosts"] == ["local"]
    slots = job["placement"]["local"]
    assert len(slots) == 1
    out = logs(platform, token, job["id"])
    env = json.loads(re.search(r"^env (.*)$", out, re.M).group(1))
    assert env["FLIGHTBASE_CPU_SLOTS"] == str(slots[0])  # the job got exactly its slot
    assert env["FLIGHTBASE_GPU_KIND"] == "cpu-slot"
    if os.geteuid() == 0:  # runs as the owner's own unprivileged account
        assert env["USER"] == world.names["owner"]
        assert int(re.search(r"^whoami (\d+)$", out, re.M).group(1)) >= 1000
    records = platform.api("jobqueue", "GET", f"jobs/{job['id']}/metrics", token).json()
    assert [r["loss"] for r in records if "step" in r][:3] == [0.5, 0.25, 0.5 / 3]
    assert job["metrics"]["step"] == 3  # the key=value line counts too


def test_failure_keeps_the_exit_code(platform, world):
    token = world.tokens["owner"]
    t = submit(platform, token, world.workspace, "bad", "report.py", code(platform, world, "report.py"), args=["--code", "3"])
    job = wait_job(platform, token, t["jobs"][0]["id"])
    assert (job["state"], job["exit_code"]) == ("failed", 3)
    assert wait_training(platform, token, t["id"])["state"] == "failed"


def test_cancel_stops_every_process_within_seconds(platform, world):
    token = world.tokens["owner"]
    t = submit(platform, token, world.workspace, "long", "sleeper.py", code(platform, world, "sleeper.py"))
    job_id = t["jobs"][0]["id"]
    wait_job(platform, token, job_id, ("running",))
    deadline = time.monotonic() + 10
    while not job_processes(job_id) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert job_processes(job_id)
    began = time.monotonic()
    resp = platform.api("jobqueue", "POST", f"jobs/{job_id}/cancel", token)
    assert resp.status_code == 200
    job = wait_job(platform, token, job_id, timeout=20)
    took = time.monotonic() - began
    assert job["state"] == "cancelled" and took < 10
    assert job_processes(job_id) == []
    assert "cancelled by" in (job["reason"] or "")


def test_queued_behind_a_running_job_then_starts(platform, world):
    wait_idle(platform)
    token = world.tokens["owner"]
    sleeper = code(platform, world, "sleeper.py")
    big = submit(platform, token, world.workspace, "big", "sleeper.py", sleeper, gpus=4)
    big_job = big["jobs"][0]["id"]
    wait_job(platform, token, big_job, ("running",))
    small = submit(platform, token, world.workspace, "small", "report.py", code(platform, world, "report.py"))
    small_job = small["jobs"][0]["id"]
    wait_scheduler_passes(platform)  # a whole pass after the submission left it queued
    queued = platform.api("jobqueue", "GET", f"jobs/{small_job}", token).json()
    assert queued["state"] == "queued"
    assert queued["queue"]["position"] >= 1 and queued["queue"]["reason"]
    assert "big" in queued["queue"]["reason"] or "GPU" in queued["queue"]["reason"]
    listed = platform.api("jobqueue", "GET", "queue", token, params={"workspace": world.workspace}).json()
    assert small_job in [j["id"] for j in listed]
    platform.api("jobqueue", "POST", f"jobs/{big_job}/cancel", token)
    assert wait_job(platform, token, small_job)["state"] == "succeeded"


def test_sweep_of_four_runs_in_order(platform, world):
    token = world.tokens["owner"]
    t = submit(platform, token, world.workspace, "sweep", "report.py", code(platform, world, "report.py"),
               sweep={"grid": {"lr": [1, 2], "batch": [3, 4]}, "parallel": 1, "metric": "loss", "goal": "min"})
    assert [j["params"] for j in t["jobs"]] == [{"lr": 1, "batch": 3}, {"lr": 1, "batch": 4}, {"lr": 2, "batch": 3}, {"lr": 2, "batch": 4}]
    assert [j["held"] for j in t["jobs"]] == [False, True, True, True]
    done = wait_training(platform, token, t["id"], timeout=120)
    assert done["state"] == "succeeded" and done["progress"] == {"succeeded": 4}
    jobs = [platform.api("jobqueue", "GET", f"jobs/{j['id']}", token).json() for j in done["jobs"]]
    for earlier, later in zip(jobs, jobs[1:]):
        assert later["started_at"] >= earlier["finished_at"]  # one after another, in the stated order
    for job in jobs:
        env = json.loads(re.search(r"^env (.*)$", logs(platform, token, job["id"]), re.M).group(1))
        assert float(env["FLIGHTBASE_PARAM_LR"]) == job["params"]["lr"]
    assert done["best"]["params"] == {"lr": 1, "batch": 3}  # lowest final loss: 1*3/3


def test_the_queue_lists_a_sweeps_held_jobs_after_the_ranked_ones_with_why_they_wait(platform, world):
    """``GET /queue`` (what ``flightbase queue`` and the JupyterLab sidebar show) lists a sweep's jobs
    that wait for their turn (held, outside the scheduler's queue), after the jobs it ranks, with
    position 0 and a reason naming the sweep's ``parallel`` or the pause; until 2026-12-05 it left
    them out, and a person who had just submitted a sweep saw an empty queue. A sweep's held jobs
    have the start the queue's projection gives them as its earlier jobs end and release them (until
    2026-12-06 none); a paused training's have none. Another workspace's member sees none of them."""
    wait_idle(platform)
    token = world.tokens["owner"]
    big = submit(platform, token, world.workspace, "big", "sleeper.py", code(platform, world, "sleeper.py"), gpus=4)
    wait_job(platform, token, big["jobs"][0]["id"], ("running",))
    t = submit(platform, token, world.workspace, "held", "report.py", code(platform, world, "report.py"),
               sweep={"runs": [{"sleep": 60}, {"sleep": 60}, {"sleep": 60}], "parallel": 1})
    first, *later = [j["id"] for j in t["jobs"]]
    try:
        wait_scheduler_passes(platform)  # the first is ranked (behind "big", which holds every slot)
        listed = platform.api("jobqueue", "GET", "queue", token, params={"workspace": world.workspace}).json()
        ids = [j["id"] for j in listed]
        assert first in ids and ids.index(first) < min(ids.index(j) for j in later), ids
        assert ids[-2:] == later, ids  # held ones last, in their sweep's order
        ranked = listed[ids.index(first)]["queue"]
        assert ranked["position"] >= 1 and ranked["estimated_start"], ranked
        why = "held: its sweep runs 1 job at a time; joins the queue when one of its earlier jobs ends; "
        starts = [ranked["estimated_start"]]
        for row in listed[-2:]:
            q = row["queue"]
            assert row["held"] and q["position"] == 0, q
            # released when the job before it in the sweep ends: after that one's own start
            assert q["estimated_start"] > starts[-1] and q["estimated_start_range"], q
            assert q["reason"].startswith(why + "estimated start ") and q["reason"].endswith(" ends"), q
            starts.append(q["estimated_start"])
        one = platform.api("jobqueue", "GET", f"jobs/{later[0]}", token).json()["queue"]
        assert one["reason"].startswith(why + "estimated start ") and one["estimated_start"], one  # one job's view too
        assert not {j["id"] for j in platform.api("jobqueue", "GET", "queue", world.tokens["outsider"]).json()} & set(ids)
        env = dict(os.environ, FLIGHTBASE_URL=platform.url, FLIGHTBASE_TOKEN=token)
        out = subprocess.run([str(FLIGHTBASE), "queue", "-w", world.workspace], env=env, check=True,
                             capture_output=True, text=True, timeout=60).stdout
        shown = [line.split() for line in out.splitlines() if any(j in line for j in later)]
        assert [row[:2] for row in shown] == [["held", later[0]], ["held", later[1]]], out
        assert platform.api("jobqueue", "POST", f"trainings/{t['id']}/pause", token).json()["paused"]
        paused = platform.api("jobqueue", "GET", "queue", token, params={"workspace": world.workspace}).json()
        assert [j["queue"]["reason"] for j in paused if j["id"] in later] == \
            ["held: its training is paused; resume it to release its jobs"] * 2, paused
        assert [j["queue"]["estimated_start"] for j in paused if j["id"] in later] == [None, None], paused
    finally:
        platform.api("jobqueue", "POST", f"trainings/{t['id']}/cancel", token)
        platform.api("jobqueue", "POST", f"jobs/{big['jobs'][0]['id']}/cancel", token)
    wait_training(platform, token, t["id"])


def test_a_grid_sent_as_text_is_read_as_the_cli_and_the_dialog_write_it(platform, world):
    """The JupyterLab dialog sends its grid as text (client/flightbase/grid.py's grammar): the jobqueue reads
    it, stores the grid it reads as, and names the field of a mistake, leaving nothing behind."""
    token = world.tokens["owner"]
    body = {"workspace": world.workspace, "name": "text-grid", "entrypoint": "report.py",
            "code_id": code(platform, world, "report.py"),
            "sweep": {"grid": "lr=[1,2]\nbatch=[3]", "parallel": 2}}
    resp = platform.api("jobqueue", "POST", "trainings", token, json=body)
    assert resp.status_code == 201, resp.text
    t = resp.json()
    assert [j["params"] for j in t["jobs"]] == [{"lr": 1, "batch": 3}, {"lr": 2, "batch": 3}]
    assert t["spec"]["sweep"]["grid"] == {"lr": [1, 2], "batch": [3]}
    platform.api("jobqueue", "POST", f"trainings/{t['id']}/cancel", token)
    before = len(platform.api("jobqueue", "GET", "trainings", token, params={"workspace": world.workspace}).json())
    for text, field in (("lr=0.1,0.01", "sweep.grid"), ("lr=[]", "sweep.grid.lr")):
        bad = platform.api("jobqueue", "POST", "trainings", token,
                           json={**body, "name": "bad-grid", "sweep": {"grid": text}})
        assert bad.status_code == 422 and bad.json()["field"] == field, bad.text
    after = platform.api("jobqueue", "GET", "trainings", token, params={"workspace": world.workspace}).json()
    assert len(after) == before


def test_sweep_pause_resume_and_retry(platform, world):
    token = world.tokens["owner"]
    t = submit(platform, token, world.workspace, "ctl", "report.py", code(platform, world, "report.py"),
               sweep={"runs": [{"code": 0, "sleep": 4}, {"code": 5}, {"code": 0}], "parallel": 1})
    # the pause comes while the first run is still going (it waits 4 s), so that its end cannot release
    # the second run before the pause does
    wait_job(platform, token, t["jobs"][0]["id"], ("starting", "running"))
    paused = platform.api("jobqueue", "POST", f"trainings/{t['id']}/pause", token).json()
    assert paused["paused"]
    wait_job(platform, token, t["jobs"][0]["id"])
    wait_scheduler_passes(platform)  # a whole pass after the first job ended started nothing
    held = platform.api("jobqueue", "GET", f"trainings/{t['id']}", token).json()
    assert [j["state"] for j in held["jobs"]][1:] == ["queued", "queued"]  # nothing more started while paused
    platform.api("jobqueue", "POST", f"trainings/{t['id']}/resume", token)
    done = wait_training(platform, token, t["id"], timeout=90)
    assert [j["state"] for j in done["jobs"]] == ["succeeded", "failed", "succeeded"]
    retried = platform.api("jobqueue", "POST", f"trainings/{t['id']}/retry", token)
    assert retried.status_code == 200 and len(retried.json()["jobs"]) == 4
    again = wait_training(platform, token, t["id"], timeout=60)
    assert again["jobs"][-1]["params"] == {"code": 5} and again["jobs"][-1]["state"] == "failed"


def two_processes(platform, world, name: str, script: str, launcher: str) -> tuple[dict, str]:
    """``script`` run by ``launcher`` as a training of 2 GPUs: its job once ended, and the job's log."""
    token = world.tokens["owner"]
    t = submit(platform, token, world.workspace, name, script, code(platform, world, script),
               gpus=2, launcher=launcher)
    job = wait_job(platform, token, t["jobs"][0]["id"], timeout=120)
    return job, logs(platform, token, job["id"])


def test_horovod_two_processes(platform, world):
    token = world.tokens["owner"]
    job, out = two_processes(platform, world, "hvd", "hvd_train.py", "horovod")
    assert job["state"] == "succeeded", out
    assert "rank 0 of 2: avg=[1.5, 1.5] sum=[3.0, 3.0]" in out
    assert "rank 1 of 2: avg=[1.5, 1.5] sum=[3.0, 3.0]" in out
    rank1 = logs(platform, token, job["id"], rank=1)
    assert "rank 1 of 2" in rank1 and "rank 0 of 2" not in rank1
    assert len(job["placement"]["local"]) == 2
    assert job["metrics"]["allreduced_sum"] == 3.0


def test_torchrun_two_processes(platform, world):
    token = world.tokens["owner"]
    job, out = two_processes(platform, world, "ddp", "ddp_train.py", "torchrun")
    assert job["state"] == "succeeded", out
    assert "rank 0 of 2: sum=[3.0, 3.0]" in out and "rank 1 of 2: sum=[3.0, 3.0]" in out
    assert "rank 0 of 2" in logs(platform, token, job["id"], rank=0)


def test_follow_streams_until_the_end(platform, world):
    token = world.tokens["owner"]
    t = submit(platform, token, world.workspace, "follow", "sleeper.py", code(platform, world, "sleeper.py"), args=["--seconds", "1"])
    resp = platform.api("jobqueue", "GET", f"jobs/{t['jobs'][0]['id']}/logs", token, params={"follow": "true"})
    assert "sleeping" in resp.text and "woke up" in resp.text


@pytest.fixture
def own_platform(tmp_path_factory):
    """A platform of its own: the test needs every slot free, whatever other tests left."""
    with running_platform(tmp_path_factory, "own-platform") as p:
        yield p


def test_quota_owner_reclaims_borrowed_gpus_by_preemption(own_platform):
    """Workspace A borrows idle slots above its quota; when workspace B, under its own
    quota, needs them, A's job gets SIGTERM and a grace period, returns to the queue
    (the preemption recorded with its reason), and resumes once B's job is done."""
    from .world import users

    platform = own_platform
    admin = platform.admin_token
    people = users(platform)
    owner, token = people["owner"]
    for ws in ("lender", "borrower"):
        platform.api("jobqueue", "POST", "workspaces", admin, json={"name": ws, "settings": {"gpu_quota": 2}})
        platform.api("jobqueue", "PUT", f"workspaces/{ws}/members/{owner}", admin)
    sleeper = upload_code(platform, token, "borrower", "sleeper.py", (JOBS / "sleeper.py").read_bytes())
    big = submit(platform, token, "borrower", "big", "sleeper.py", sleeper, gpus=4, args=["--seconds", "600"])
    big_job = big["jobs"][0]["id"]
    wait_job(platform, token, big_job, ("running",))
    report_code = upload_code(platform, token, "lender", "report.py", (JOBS / "report.py").read_bytes())
    mine = submit(platform, token, "lender", "mine", "report.py", report_code, gpus=2)
    assert wait_job(platform, token, mine["jobs"][0]["id"], timeout=60)["state"] == "succeeded"
    preempted = platform.api("jobqueue", "GET", f"jobs/{big_job}", token).json()
    assert preempted["preemptions"], preempted
    assert "quota" in preempted["preemptions"][0]["reason"] or "borrow" in preempted["preemptions"][0]["reason"]
    assert "got SIGTERM" in logs(platform, token, big_job)  # it had its grace period to checkpoint
    resumed = wait_job(platform, token, big_job, ("running",), timeout=60)
    assert resumed["restarts"] == 1
    platform.api("jobqueue", "POST", f"jobs/{big_job}/cancel", token)
    wait_job(platform, token, big_job)

"""Fair-share usage survives restarts of the jobqueue, on the real platform (issue 17, part 7).

The platform runs with ``--policy fairshare`` on 2 CPU slots, jobs as local processes.
A workspace runs work, the jobqueue is restarted (stopped cleanly by SIGTERM, then
killed by SIGKILL; the hub starts it again each time), and then that workspace and a
workspace with no usage each queue a 2-slot job at the same moment, behind a job that
holds both slots. Fair share must start the workspace without usage first, although
its job came later and, with no usage known, the tie would go to the other workspace
(fair share breaks ties by workspace name: the heavy workspaces' names come first).
The saved usage is read from the service's own SQLite database
(``fairshare_usage``, migration 0006) and compared with the runs the API reports.
"""

from __future__ import annotations

import math
import os
import signal
import sqlite3
import time

import pytest

from flightbase_jobqueue.coordinator import USAGE_SAVE_SECONDS

from tests.helpers.platforms import running_platform
from tests.helpers.scheduler import wait_scheduler_passes

from .world import JOBS, submit, upload_code, wait_job

pytestmark = pytest.mark.slow

HALF_LIFE = 7 * 86400.0  # the ledger's (scheduling/usage.py)


@pytest.fixture(scope="module")
def fair(tmp_path_factory):
    with running_platform(tmp_path_factory, "fairshare", gpus="2", policy="fairshare") as p:
        member = p.create_user("sharer")
        codes = {}
        for ws in ("aheavy", "zlight", "bheavy", "ylight", "mblock"):
            assert p.api("jobqueue", "POST", "workspaces", p.admin_token, json={"name": ws}).status_code == 201
            assert p.api("jobqueue", "PUT", f"workspaces/{ws}/members/sharer", p.admin_token).status_code == 200
            codes[ws] = upload_code(p, member, ws, "sleeper.py", (JOBS / "sleeper.py").read_bytes())
        yield p, member, codes


def run(p, token, codes, ws, seconds, gpus=1, name=None) -> str:
    t = submit(p, token, ws, name or f"{ws}-{seconds}", "sleeper.py", codes[ws], gpus=gpus,
               args=["--seconds", str(seconds)])
    return t["jobs"][0]["id"]


def saved_usage(p) -> dict[str, tuple[float, float]]:
    """What the jobqueue has written to its database (read-only, as another process)."""
    con = sqlite3.connect(f"file:{p.data_dir / 'jobqueue.sqlite'}?mode=ro", uri=True)
    try:
        return {ws: (v, at) for ws, v, at in con.execute("SELECT workspace, gpu_seconds, at FROM fairshare_usage")}
    finally:
        con.close()


def used(jobs: list[dict]) -> float:
    """GPU-seconds of these ended jobs as the API reports their runs, decayed to the last end."""
    last = max(j["finished_at"] for j in jobs)
    return sum(j["gpus"] * (j["finished_at"] - j["started_at"]) * math.exp2(-(last - j["finished_at"]) / HALF_LIFE)
               for j in jobs)


def restart_jobqueue(p, sig: int) -> None:
    pid = p.service_pid("jobqueue")
    os.kill(pid, sig)
    deadline = time.monotonic() + 60
    while True:  # the hub notices the exit and starts the service again
        try:
            if p.service_pid("jobqueue") != pid:
                break
        except AssertionError:
            pass
        assert time.monotonic() < deadline, f"the jobqueue was not started again:\n{p.log_tail()}"
        time.sleep(0.3)
    p.wait_healthy(timeout=60)


def lighter_goes_first(p, token, codes, heavy: str, light: str) -> None:
    """Both slots busy; ``heavy`` queues a 2-slot job, then ``light`` does: when the slots
    free up, fair share starts ``light``'s job first."""
    blocker = run(p, token, codes, "mblock", 6, gpus=2)
    wait_job(p, token, blocker, ("running",), timeout=60)
    first = run(p, token, codes, heavy, 1, gpus=2)
    wait_scheduler_passes(p)  # a whole pass after the submission left it queued
    second = run(p, token, codes, light, 1, gpus=2)
    assert p.api("jobqueue", "GET", f"jobs/{first}", token).json()["state"] == "queued"
    done = {j: wait_job(p, token, j, timeout=120) for j in (blocker, first, second)}
    assert all(d["state"] == "succeeded" for d in done.values()), done
    assert done[second]["started_at"] < done[first]["started_at"], (
        f"{light} (no usage) should start before {heavy}: {done[second]['started_at']} vs {done[first]['started_at']}")


def test_usage_survives_a_clean_restart_and_orders_the_queue(fair):
    p, token, codes = fair
    # two runs ending 3 s apart: the first end is written at once, the second waits for the
    # next periodic write (USAGE_SAVE_SECONDS later), which the clean stop does first
    short, longer = run(p, token, codes, "aheavy", 2), run(p, token, codes, "aheavy", 5)
    jobs = [wait_job(p, token, j, timeout=60) for j in (short, longer)]
    assert [j["state"] for j in jobs] == ["succeeded", "succeeded"]
    assert jobs[1]["finished_at"] - jobs[0]["finished_at"] < USAGE_SAVE_SECONDS - 3
    restart_jobqueue(p, signal.SIGTERM)
    value, at = saved_usage(p)["aheavy"]
    assert value == pytest.approx(used(jobs), rel=1e-6) and at == pytest.approx(jobs[1]["finished_at"])
    assert "could not save the fair-share usage" not in p.log_tail(20000)
    lighter_goes_first(p, token, codes, "aheavy", "zlight")


def test_usage_survives_sigkill_up_to_the_last_write(fair):
    p, token, codes = fair
    heavy = wait_job(p, token, run(p, token, codes, "bheavy", 3, gpus=2), timeout=60)
    assert heavy["state"] == "succeeded"
    # written within one save interval (and a scheduling pass) of the run's end
    deadline = time.monotonic() + USAGE_SAVE_SECONDS + 5
    while "bheavy" not in saved_usage(p):
        assert time.monotonic() < deadline, "the usage was not written within one save interval"
        time.sleep(0.3)
    restart_jobqueue(p, signal.SIGKILL)
    value, _ = saved_usage(p)["bheavy"]
    assert value == pytest.approx(used([heavy]), rel=1e-6)
    lighter_goes_first(p, token, codes, "bheavy", "ylight")

"""Start estimates on the real platform (#17, part 2): the queue's API output carries the estimate
and its range, and ``flightbase jobs queue`` shows them; each submitted job is named its burst
(scheduling/bursts.py), read here from the jobqueue's own SQLite database."""

from __future__ import annotations

import datetime as dt
import os
import re
import sqlite3
import subprocess
import time

import pytest

from tests.helpers.scheduler import wait_scheduler_passes

from .harness import FLIGHTBASE
from .world import JOBS, submit, upload_code, wait_idle, wait_job

pytestmark = pytest.mark.slow


def test_a_queued_job_shows_its_estimated_start_and_range_in_the_api_and_the_cli(platform, world):
    wait_idle(platform)
    token = world.tokens["owner"]
    sleeper = upload_code(platform, token, world.workspace, "sleeper.py", (JOBS / "sleeper.py").read_bytes())
    big = submit(platform, token, world.workspace, "big", "sleeper.py", sleeper, gpus=4)["jobs"][0]["id"]
    try:
        wait_job(platform, token, big, ("running",))
        small = submit(platform, token, world.workspace, "small", "sleeper.py", sleeper)["jobs"][0]["id"]
        other = submit(platform, token, world.workspace, "small-2", "sleeper.py", sleeper)["jobs"][0]["id"]
        # two one-GPU trainings submitted one after the other are one burst; the 4-GPU one is not
        bursts = stored_bursts(platform, (big, small, other))
        assert bursts[small] and bursts[small] == bursts[other] != bursts[big], bursts
        wait_scheduler_passes(platform)  # a whole pass after the submission left it queued
        listed = platform.api("jobqueue", "GET", "queue", token, params={"workspace": world.workspace}).json()
        (row,) = [j for j in listed if j["id"] == small]
        q = row["queue"]
        now = time.time()
        assert q["estimated_start"] is not None and q["estimated_start"] > now - 5, q
        lo, hi = q["estimated_start_range"]
        assert lo <= q["estimated_start"] <= hi, q
        one = platform.api("jobqueue", "GET", f"jobs/{small}", token).json()["queue"]  # a moment later
        assert one["estimated_start_range"][0] <= one["estimated_start"] <= one["estimated_start_range"][1], one
        env = dict(os.environ, FLIGHTBASE_URL=platform.url, FLIGHTBASE_TOKEN=token)
        out = subprocess.run([str(FLIGHTBASE), "queue", "-w", world.workspace], env=env, check=True,
                             capture_output=True, text=True, timeout=60).stdout
        line = next(l for l in out.splitlines() if small in l)
        # The CLI asked a moment after the API, and an estimate moves with the clock (a running
        # job's remaining time is re-estimated from what it has run so far): the CLI's time of day
        # is the API's within the time between the two calls (generous, for a loaded machine).
        shown = re.search(r"\b(\d\d):(\d\d):(\d\d)\b", line)
        assert shown, out
        api = dt.datetime.fromtimestamp(q["estimated_start"])
        cli = api.replace(hour=int(shown[1]), minute=int(shown[2]), second=int(shown[3]), microsecond=0)
        gap = min(abs((cli - api).total_seconds() + d) for d in (-86400, 0, 86400))  # across midnight
        assert gap <= 60 + (time.time() - now), (out, q)
        # The range is shown when it is wider than 2 min (with little history it is: the big job's
        # remaining time is a guess from what it has run so far); near 2 min either may be right.
        width = hi - lo
        if width >= 150 or width < 90:
            assert bool(re.search(r"\(\d\d:\d\d-\d\d:\d\d\)", line)) == (width >= 150), (out, q)
    finally:
        wait_idle(platform)


def stored_bursts(platform, job_ids) -> dict[str, str | None]:
    """The bursts the jobqueue stored for ``job_ids`` (read-only, as another process)."""
    con = sqlite3.connect(f"file:{platform.data_dir / 'jobqueue.sqlite'}?mode=ro", uri=True)
    try:
        marks = ",".join("?" * len(job_ids))
        return dict(con.execute(f"SELECT id, burst FROM jobs WHERE id IN ({marks})", tuple(job_ids)))
    finally:
        con.close()

"""GPU usage on the real platform: real jobs (local processes on CPU slots), one of them
preempted by a quota reclaim, measured through ``GET /usage``, its CSV and the CLI, and
after a restart of the whole platform.

The story (module fixture): workspace *borrower* (quota 2) runs a 4-slot job of ann's,
borrowing 2; workspace *lender* (quota 2) then submits a 2-slot job of bob's that runs
4 seconds, which reclaims its quota by preempting ann's job; ann's job restarts once
bob's is done and is cancelled 2 seconds later. The jobs API records each run's start
and end (the first run's end only as the time the preemption was asked for and the
time bob's job started: the end lies between), so the usage is known to within that
window, and the gap (at least bob's 4 seconds on 4 slots) must not be counted.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import sqlite3
import subprocess
import time

import pytest

from flightbase_jobqueue.accounting import day_of, iso
from tests.helpers.platforms import platform_fixture
from tests.platform.harness import FLIGHTBASE
from tests.platform.world import ENDED, JOBS, submit, upload_code, wait_state

pytestmark = pytest.mark.slow

SLEEPER = (JOBS / "sleeper.py").read_bytes()
EPS = 0.01  # the API rounds GPU-seconds to milliseconds


platform = platform_fixture("usage")


def wait_job(p, token, job_id, states=ENDED, timeout=90) -> dict:
    return wait_state(p, token, f"jobs/{job_id}", states, timeout)


def usage(p, token, **params) -> dict:
    resp = p.api("jobqueue", "GET", "usage", token, params=params)
    assert resp.status_code == 200, resp.text
    return resp.json()


def totals(answer: dict, key: str = "workspace") -> dict[str, float]:
    out: dict[str, float] = {}
    for r in answer["rows"]:
        out[r[key]] = out.get(r[key], 0.0) + r["gpu_seconds"]
    return out


def sleeper(p, token, workspace, name, gpus, seconds) -> str:
    code = upload_code(p, token, workspace, "sleeper.py", SLEEPER)
    return submit(p, token, workspace, name, "sleeper.py", code, gpus=gpus, args=["--seconds", str(seconds)])["jobs"][0]["id"]


@pytest.fixture(scope="module")
def story(platform):
    p, admin = platform, platform.admin_token
    tokens = {name: p.create_user(f"ua-{name}") for name in ("ann", "bob", "carol")}
    for ws, members in (("lender", ["ann", "bob"]), ("borrower", ["ann"]), ("elsewhere", ["carol"]),
                        ("keep", ["ann", "bob"])):
        resp = p.api("jobqueue", "POST", "workspaces", admin, json={"name": ws, "settings": {"gpu_quota": 2}})
        assert resp.status_code == 201, resp.text
        for m in members:
            assert p.api("jobqueue", "PUT", f"workspaces/{ws}/members/ua-{m}", admin).status_code == 200
    ann, bob = tokens["ann"], tokens["bob"]

    big = sleeper(p, ann, "borrower", "big", 4, 600)
    s1 = wait_job(p, ann, big, ("running",))["started_at"]
    before = time.time()
    running = usage(p, ann, workspace="borrower")
    after = time.time()
    # an open interval counts up to the moment of the answer
    assert 4 * (before - s1) - EPS <= running["total_gpu_seconds"] <= 4 * (after - s1) + EPS

    small = sleeper(p, bob, "lender", "small", 2, 4)
    small_job = wait_job(p, bob, small, timeout=60)
    assert small_job["state"] == "succeeded", small_job
    again = wait_job(p, ann, big, ("running",), timeout=60)
    assert again["restarts"] == 1 and again["preemptions"], again
    time.sleep(2)
    assert p.api("jobqueue", "POST", f"jobs/{big}/cancel", ann).status_code == 200
    big_job = wait_job(p, ann, big)
    assert big_job["state"] == "cancelled"
    return {
        "tokens": tokens,
        "s1": s1,  # the first run's start
        "preempted_at": again["preemptions"][0]["at"],  # the stop was asked for: the first run ends after
        "small_started": small_job["started_at"],  # ...and before bob's job got its slots
        "small_finished": small_job["finished_at"],
        "s2": big_job["started_at"],
        "f2": big_job["finished_at"],
        "lender": 2 * (small_job["finished_at"] - small_job["started_at"]),
    }


def borrower_bounds(s) -> tuple[float, float]:
    second = 4 * (s["f2"] - s["s2"])
    return 4 * (s["preempted_at"] - s["s1"]) + second, 4 * (s["small_started"] - s["s1"]) + second


def test_usage_matches_the_jobs_times_without_the_preemption_gap(platform, story):
    got = totals(usage(platform, platform.admin_token))
    low, high = borrower_bounds(story)
    assert low - EPS <= got["borrower"] <= high + EPS
    assert got["lender"] == pytest.approx(story["lender"], abs=EPS)
    # the naive span (first start to last end) would count the gap: at least bob's 4 s on 4 slots
    span = 4 * (story["f2"] - story["s1"])
    assert span - got["borrower"] >= 4 * (story["s2"] - story["small_started"]) - EPS >= 16 - EPS


def test_grouped_by_user_and_day_and_windows_add_up(platform, story):
    admin = platform.admin_token
    whole = usage(platform, admin, group_by="workspace,user,day")
    assert {(r["workspace"], r["user"]) for r in whole["rows"]} == {("borrower", "ua-ann"), ("lender", "ua-bob")}
    assert {r["day"] for r in whole["rows"]} <= {day_of(story["s1"]), day_of(time.time())}
    assert totals(whole) == pytest.approx(totals(usage(platform, admin)), abs=EPS)
    assert whole["group_by"] == ["workspace", "user", "day"]
    # a window from the restart on: the second run only; before it, the rest
    cut = iso(story["s2"])
    after = totals(usage(platform, admin, **{"from": cut}))
    before = totals(usage(platform, admin, to=cut))
    assert after["borrower"] == pytest.approx(4 * (story["f2"] - story["s2"]), abs=EPS)
    assert after.get("lender", 0.0) == pytest.approx(0.0, abs=EPS)  # bob's job ended before the restart
    assert before["borrower"] + after["borrower"] == pytest.approx(totals(whole)["borrower"], abs=2 * EPS)
    # the dashboard's query: one workspace, by day and member
    dash = usage(platform, story["tokens"]["ann"], workspace="borrower", group_by="day,user")
    assert [set(r) for r in dash["rows"]] == [{"day", "user", "gpu_seconds", "gpu_hours"}] * len(dash["rows"])
    assert dash["workspaces"] == ["borrower"]
    for r in dash["rows"]:
        assert r["gpu_hours"] == pytest.approx(r["gpu_seconds"] / 3600, abs=1e-6)


def test_members_see_their_workspaces_and_nothing_else(platform, story):
    tokens = story["tokens"]
    bob = usage(platform, tokens["bob"])
    assert set(totals(bob)) == {"lender"} and "borrower" not in bob["workspaces"]
    carol = usage(platform, tokens["carol"])
    assert carol["rows"] == [] and carol["workspaces"] == ["elsewhere"] and carol["total_gpu_seconds"] == 0
    for token in (tokens["bob"], tokens["carol"]):
        resp = platform.api("jobqueue", "GET", "usage", token, params={"workspace": "borrower"})
        assert resp.status_code == 404 and "not found" in resp.json()["message"], resp.text
    resp = platform.api("jobqueue", "GET", "usage", tokens["ann"], params={"workspace": "nowhere"})
    assert resp.status_code == 404


@pytest.mark.parametrize(("params", "field"), [
    ({"group_by": "job"}, "group_by"),
    ({"group_by": ""}, "group_by"),
    ({"from": "last week"}, "from"),
    ({"to": "2026-13-01"}, "to"),
    ({"from": "2026-12-08", "to": "2026-12-01"}, "to"),
    ({"format": "xml"}, "format"),
])
def test_bad_values_answer_422_naming_the_field(platform, story, params, field):
    resp = platform.api("jobqueue", "GET", "usage", platform.admin_token, params=params)
    assert resp.status_code == 422 and resp.json()["field"] == field, resp.text


def test_csv_export_parses_to_the_same_rows(platform, story):
    resp = platform.api("jobqueue", "GET", "usage", platform.admin_token,
                        params={"group_by": "workspace,user", "format": "csv"})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
    assert resp.text.splitlines()[0] == "workspace,user,gpu_seconds,gpu_hours"
    parsed = [(r["workspace"], r["user"], float(r["gpu_seconds"]), float(r["gpu_hours"]))
              for r in csv.DictReader(io.StringIO(resp.text))]
    answer = usage(platform, platform.admin_token, group_by="workspace,user")
    assert parsed == [(r["workspace"], r["user"], pytest.approx(r["gpu_seconds"], abs=EPS),
                       pytest.approx(r["gpu_hours"], abs=1e-6)) for r in answer["rows"]]


def cli(platform, *argv) -> str:
    env = {**os.environ, "FLIGHTBASE_URL": platform.url, "FLIGHTBASE_TOKEN": platform.admin_token}
    env.pop("FLIGHTBASE_WORKSPACE", None)
    proc = subprocess.run([str(FLIGHTBASE), "usage", *argv], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_the_cli_prints_the_same_numbers(platform, story):
    answer = usage(platform, platform.admin_token, group_by="workspace,user")
    lines = cli(platform, "--by", "workspace,user").splitlines()
    assert lines[0].split() == ["WORKSPACE", "USER", "GPU_HOURS", "GPU_SECONDS"]
    printed = [line.split() for line in lines[1:-1]]
    assert printed == [[r["workspace"], r["user"], f"{r['gpu_hours']:.3f}", f"{r['gpu_seconds']:.1f}"]
                       for r in answer["rows"]]
    assert lines[-1].startswith(f"total {answer['total_gpu_hours']:.3f} GPU-hours ({answer['total_gpu_seconds']:.1f}")
    api_csv = platform.api("jobqueue", "GET", "usage", platform.admin_token,
                           params={"group_by": "workspace,user", "format": "csv"}).text
    assert cli(platform, "--by", "workspace,user", "--csv") == api_csv
    as_json = json.loads(cli(platform, "-w", "lender", "--by", "user", "--json"))
    assert as_json["rows"] == [{"user": "ua-bob", "gpu_seconds": pytest.approx(story["lender"], abs=EPS),
                                "gpu_hours": pytest.approx(story["lender"] / 3600, abs=1e-6)}]


def test_usage_survives_a_platform_restart(platform, story):
    """Ended jobs' usage is the same after a restart; a job running across it keeps its open
    interval (the downtime counts: it held its slot); one whose processes died while the
    platform was down is closed as lost when the jobqueue finds it gone."""
    from flightbase_jobqueue.backends.local import job_pids

    p, tokens = platform, story["tokens"]
    window = {"group_by": "workspace,user", "to": iso(time.time())}
    before = usage(p, p.admin_token, **window)
    assert set(totals(before)) == {"borrower", "lender"}
    survivor = sleeper(p, tokens["ann"], "keep", "survivor", 1, 600)
    doomed = sleeper(p, tokens["bob"], "keep", "doomed", 1, 600)
    started = {job: wait_job(p, tokens["ann"], job, ("running",))["started_at"] for job in (survivor, doomed)}

    p.stop()
    for pid in job_pids(doomed):  # dies while nobody watches
        os.kill(pid, signal.SIGKILL)
    assert job_pids(survivor), "the survivor's processes outlive the platform"
    p.start()

    assert usage(p, p.admin_token, **window)["rows"] == before["rows"]
    lost = wait_job(p, tokens["bob"], doomed, timeout=60)
    assert lost["state"] == "failed" and "gone" in lost["reason"]
    t0 = time.time()
    keep = totals(usage(p, tokens["ann"], workspace="keep", group_by="user"), "user")
    t1 = time.time()
    assert keep["ua-bob"] == pytest.approx(lost["finished_at"] - started[doomed], abs=EPS)
    assert t0 - started[survivor] - EPS <= keep["ua-ann"] <= t1 - started[survivor] + EPS  # still open

    assert p.api("jobqueue", "POST", f"jobs/{survivor}/cancel", tokens["ann"]).status_code == 200
    ended = wait_job(p, tokens["ann"], survivor)
    assert ended["started_at"] == started[survivor]  # the same run, re-attached
    keep = totals(usage(p, tokens["ann"], workspace="keep", group_by="user"), "user")
    assert keep["ua-ann"] == pytest.approx(ended["finished_at"] - started[survivor], abs=EPS)
    with sqlite3.connect(p.data_dir / "jobqueue.sqlite") as db:
        outcomes = dict(db.execute("SELECT job_id, outcome FROM usage_intervals WHERE workspace = 'keep'"))
    assert outcomes == {survivor: "cancelled", doomed: "lost"}

"""The jobqueue's pages in a real browser.

What is real: Debian's Chromium (/usr/bin/chromium, driven by playwright-core from the root's
node_modules; no browser download), the whole platform (tests.platform.harness: JupyterHub, its
proxy, both services; the hub's login form and OAuth), jobs that really run (a sleeping Python
process on a CPU slot, the local backend), Chart.js as the Makefile copies it from npm. Nothing
is mocked. What is not: the slots are CPU slots (``--gpus 4``), so there are no NVML readings
and the utilisation columns show "–".

A member logs in, follows the hub nav bar's Flightbase entry to the dashboard and reads its
workspace's figures: GPUs in use against the quota, the running job's row, the queued job's
position, the time window, the usage chart; they are checked against the API. admin/ is a 403
page to them. An administrator opens the admin page (slots, workspaces, jobs), sets a priority,
cancels the queued job and requeues the running one with the page's buttons, and the API
agrees. Screenshots are kept in the test's tmp folder and copied to
``$FLIGHTBASE_TEST_ARTIFACTS/pages`` (default ``test-artifacts/pages``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import browser
from tests.helpers.pages import person, require_chart_js
from tests.platform.world import SLEEPER, submit, upload_code, wait_state

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ("dashboard-member", "dashboard-member-dark", "admin-forbidden-member", "admin", "admin-after-actions")

pytestmark = pytest.mark.slow


def artifacts_dir() -> Path:
    return Path(os.environ.get("FLIGHTBASE_TEST_ARTIFACTS") or ROOT / "test-artifacts") / "pages"


def reported(stdout: str) -> dict:
    """The browser's ``what: JSON`` lines."""
    found = {}
    for line in stdout.splitlines():
        what, sep, value = line.partition(": ")
        if sep and what in {"dashboard", "admin", "member admin", "picker", "dashboard url", "priority status",
                            "cancel status", "requeue status", "requeued state", "chart colours", "dashboard api reasons"}:
            found[what] = json.loads(value)
    return found


def test_member_dashboard_and_admin_page_in_chromium(platform, tmp_path):
    chromium = browser.chromium()
    require_chart_js()
    admin = platform.admin_token
    ws, end = "browserws", dt.date.today() + dt.timedelta(days=29)
    resp = platform.api("jobqueue", "POST", "workspaces", admin,
                        json={"name": ws, "settings": {"gpu_quota": 4, "end_date": end.isoformat()}})
    assert resp.status_code == 201, resp.text
    name, password = person(platform, ws, prefix="bw")
    token = platform.hub("POST", f"users/{name}/tokens", json={"note": "browser test"}).json()["token"]
    code = upload_code(platform, token, ws, "sleep.py", SLEEPER)
    runner = submit(platform, token, ws, "runner", "sleep.py", code, gpus=1)["jobs"][0]["id"]
    wait_state(platform, token, f"jobs/{runner}", ("running",))
    waiter = submit(platform, token, ws, "waiter", "sleep.py", code, gpus=4)["jobs"][0]["id"]  # 3 slots are free
    queued = wait_state(platform, token, f"jobs/{waiter}", ("queued",))
    for _ in range(50):  # the scheduler's insight comes with its next pass
        if queued["queue"]:
            break
        queued = platform.api("jobqueue", "GET", f"jobs/{waiter}", token).json()
    assert queued["queue"], queued
    # what the API says while the browser reads the pages (nothing changes until the admin's buttons)
    api_dash = platform.api("jobqueue", "GET", "dashboard", token, params={"workspace": ws}).json()
    running_job = platform.api("jobqueue", "GET", f"jobs/{runner}", token).json()

    shots = tmp_path / "screenshots"
    shots.mkdir()
    env = {**os.environ, "BASE": platform.url, "FB_USER": name, "FB_PASSWORD": password,
           "FB_ADMIN_PASSWORD": platform.admin_password, "FB_WORKSPACE": ws, "FB_RUNNING": runner,
           "FB_QUEUED": waiter, "ARTIFACTS": str(shots), "CHROMIUM": chromium}
    try:
        proc = subprocess.run(["node", str(Path(__file__).with_name("browser_pages.mjs"))], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)
    finally:
        keep = artifacts_dir()
        keep.mkdir(parents=True, exist_ok=True)
        for png in shots.glob("*.png"):
            shutil.copy2(png, keep / png.name)
        print(f"screenshots: {shots} (copied to {keep})")
    print(proc.stdout)
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}\n--- platform log\n{platform.log_tail()}"
    assert "page error" not in proc.stdout
    seen = reported(proc.stdout)

    # -- the member's dashboard, against GET /dashboard and GET /jobs/{id} ----------------------
    assert seen["dashboard url"].startswith(f"{platform.url}/services/jobqueue/dashboard/")
    assert seen["picker"] == [ws]
    d = seen["dashboard"]
    g = api_dash["gpus"]
    assert (g["in_use"], g["quota"]) == (1, 4)
    assert (d["in_use"], d["quota"], d["gpus_text"]) == (g["in_use"], g["quota"], f"{g['in_use']} / {g['quota']}")
    assert (d["running_count"], d["queued_count"]) == (len(api_dash["running"]), len(api_dash["queue"])) == (1, 1)
    [api_run] = api_dash["running"]
    assert api_run["job_id"] == runner and api_run["placement"] == running_job["placement"]
    hosts = "; ".join(f"{h}: {','.join(map(str, gs))}" for h, gs in running_job["placement"].items())
    assert d["running"]["user"] == name and d["running"]["gpus"] == "1" and d["running"]["hosts"] == hosts
    [api_queued] = api_dash["queue"]
    assert api_queued["position"] == queued["queue"]["position"]
    assert d["queued"]["position"] == str(queued["queue"]["position"]) and d["queued"]["gpus"] == "4"
    # the reason holds an estimated start that moves with the clock: the page shows what one of its own
    # GET /dashboard requests answered, and those answers say what the test's own request said, but the time
    page_reasons = seen["dashboard api reasons"]
    assert d["queued"]["reason"] in page_reasons and d["queued"]["user"] == name, (d["queued"], page_reasons)
    when = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC")
    assert {when.sub("WHEN", r) for r in page_reasons} == {when.sub("WHEN", api_queued["reason"])}, page_reasons
    assert api_dash["window"]["state"] == "open" and d["window"] == "open"
    assert f"to {end.isoformat()} ({api_dash['window']['days_left']} days left)" in d["window_dates"]
    usage = platform.api("jobqueue", "GET", "usage", token, params={"workspace": ws, "group_by": "day,user"}).json()
    assert d["chart_days"] == 30 and name in d["chart_members"]
    assert d["chart_members"] == sorted({r["user"] for r in usage["rows"]})
    assert seen["chart colours"]["light"] != seen["chart colours"]["dark"]  # the chart follows the hub's theme
    assert seen["member admin"]["status"] == 403 and seen["member admin"]["nav"]

    # -- the admin page, against GET /admin/overview and the jobs ---------------------------------
    a = seen["admin"]
    assert a["slots"] == [i for gs in running_job["placement"].values() for i in gs]
    assert a["workspace"] == {"in_use": "1 / 4", "queued": "1"}
    assert a["queued_position"].startswith(f"{queued['queue']['position']} (")
    assert a["buttons"] == {"running": ["Set", "Cancel", "Requeue"], "queued": ["Set", "Cancel"]}
    assert name in a["users"]
    # the buttons' effect, as the API sees it
    assert seen["priority status"].endswith("priority 9")
    assert seen["cancel status"].startswith("Cancel waiter: now cancelled")
    assert seen["requeue status"].startswith("Requeue runner: stopping, then back to the queue")
    after = platform.api("jobqueue", "GET", f"jobs/{runner}", admin).json()
    assert after["priority"] == 9
    assert after["restarts"] >= 1 and any(p["reason"] == "requeued by admin" for p in after["preemptions"]), after
    assert after["state"] == seen["requeued state"] == "running"
    assert platform.api("jobqueue", "GET", f"jobs/{waiter}", admin).json()["state"] == "cancelled"

    for shot in SCREENSHOTS:
        png = artifacts_dir() / f"{shot}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000, png
    platform.api("jobqueue", "POST", f"jobs/{runner}/cancel", admin)

"""The extension in a real browser: Debian's Chromium (driven by playwright-core from
npm, no browser download) against a real platform started by the harness: log in,
start a server through the hub API, open JupyterLab and the Flightbase sidebar,
see a refused submission's error at its field, submit from the dialog, see a 2-GPU
training queue, run and succeed with its logs and metric chart, cancel another.
Screenshots are saved under test-artifacts/labext/ (printed)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import browser

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "labext"

TRAIN = """import time
from flightbase.metrics import report
for epoch in range(5):
    loss = 1.0 / (epoch + 1)
    report(step=epoch, loss=loss)
    print(f"epoch {epoch} loss {loss:.3f}", flush=True)
    time.sleep(1)
"""
SLEEP = "import time\nprint('sleeping', flush=True)\ntime.sleep(600)\n"


def start_server(platform, name: str, server: str, workspace: str, timeout: float = 120) -> None:
    resp = platform.hub("POST", f"users/{name}/servers/{server}", json={"workspace": workspace, "gpus": 0})
    assert resp.status_code in (201, 202), resp.text
    deadline = time.monotonic() + timeout
    while not platform.hub("GET", f"users/{name}").json()["servers"].get(server, {}).get("ready"):
        assert time.monotonic() < deadline, f"server {name}/{server} not ready:\n{platform.log_tail()}"
        time.sleep(0.5)


def test_sidebar_submit_queue_logs_cancel(platform):
    chromium = browser.chromium()
    name, password, server, ws = "labuser", "a-long-lab-password-3", "lab", "labws"
    resp = platform.api("jobqueue", "POST", "workspaces", platform.admin_token, json={"name": ws, "settings": {"gpu_quota": 4}})
    assert resp.status_code == 201, resp.text
    platform.sign_up(name, password)
    assert platform.api("jobqueue", "PUT", f"workspaces/{ws}/members/{name}", platform.admin_token).status_code == 200
    start_server(platform, name, server, ws)
    token = platform.hub("POST", f"users/{name}/tokens", json={"note": "files"}).json()["token"]
    for filename, text in (("train.py", TRAIN), ("sleep.py", SLEEP)):
        put = httpx.put(f"{platform.url}/user/{name}/{server}/api/contents/{filename}", timeout=30,
                        headers={"Authorization": f"token {token}"}, json={"type": "file", "format": "text", "content": text})
        assert put.status_code in (200, 201), put.text

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    print(f"screenshots: {ARTIFACTS}")
    env = {**os.environ, "BASE": platform.url, "FB_USER": name, "FB_PASSWORD": password, "FB_SERVER": server,
           "ARTIFACTS": str(ARTIFACTS), "CHROMIUM": chromium}
    proc = subprocess.run(["node", str(Path(__file__).with_name("browser.mjs"))], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=540)
    print(proc.stdout)
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}\n--- platform log\n{platform.log_tail()}"
    assert "gpus error: " in proc.stdout
    jobs = platform.api("jobqueue", "GET", "jobs", platform.admin_token, params={"workspace": ws}).json()
    states = {j["name"]: (j["state"], j["gpus"]) for j in jobs}
    assert states == {"train2": ("succeeded", 2), "sleeper": ("cancelled", 4)}, states

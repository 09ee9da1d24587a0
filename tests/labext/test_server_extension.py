"""The server extension's routes with ``jp_fetch`` (a real Jupyter server in the test
process) against a real platform: the extension's Client reaches the hub's services
with a member's token, as a single-user server does with its own."""

from __future__ import annotations

import json
import time

import pytest
from tornado.httpclient import HTTPClientError

from tests.platform.world import wait_training

pytestmark = pytest.mark.slow

SCRIPT = "from flightbase.metrics import report\nfor s in range(3):\n    report(step=s, loss=1.0 / (s + 1))\nprint('trained', flush=True)\n"


@pytest.fixture
def member(platform, monkeypatch):
    """A member of a fresh workspace (quota 4); the server extension acts with their token."""
    ws = f"lab{time.monotonic_ns() % 10**9}"
    resp = platform.api("jobqueue", "POST", "workspaces", platform.admin_token, json={"name": ws, "settings": {"gpu_quota": 4}})
    assert resp.status_code == 201, resp.text
    token = platform.create_user("labber")
    assert platform.api("jobqueue", "PUT", f"workspaces/{ws}/members/labber", platform.admin_token).status_code == 200
    monkeypatch.setenv("FLIGHTBASE_URL", platform.url)
    monkeypatch.setenv("FLIGHTBASE_TOKEN", token)
    monkeypatch.setenv("FLIGHTBASE_WORKSPACE", ws)
    return {"workspace": ws, "token": token}


# The tests are plain functions that run jp_fetch on the Jupyter server's own loop
# (pytest-asyncio would run async tests on another loop, where the server does not answer).
@pytest.fixture
def fetch(jp_fetch, jp_asyncio_loop):
    def call(*path, **kw) -> tuple[int, dict]:
        try:
            resp = jp_asyncio_loop.run_until_complete(jp_fetch("flightbase", *path, **kw))
        except HTTPClientError as exc:
            return exc.code, json.loads(exc.response.body)
        return resp.code, json.loads(resp.body)

    return call


def test_config_names_the_spawner_workspace_and_the_user(fetch, member):
    code, body = fetch("config")
    assert code == 200
    assert body["workspace"] == member["workspace"] and body["user"] == "labber"


def test_submit_a_notebook_then_overview_logs_metrics_and_resubmit(fetch, jp_root_dir, platform, member):
    nb = {"cells": [{"id": "a", "cell_type": "markdown", "metadata": {}, "source": "# a notebook"},
                    {"id": "b", "cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": SCRIPT}],
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                       "language_info": {"name": "python", "file_extension": ".py"}},
          "nbformat": 4, "nbformat_minor": 5}
    (jp_root_dir / "nb").mkdir()
    (jp_root_dir / "nb" / "my_train.ipynb").write_text(json.dumps(nb))
    ws = member["workspace"]
    code, t = fetch("trainings", method="POST",
                               body=json.dumps({"workspace": ws, "path": "nb/my_train.ipynb", "gpus": 2, "args": []}))
    assert code == 201
    assert t["name"] == "my-train" and t["spec"]["entrypoint"] == "my_train.py" and t["spec"]["gpus"] == 2
    done = wait_training(platform, member["token"], t["id"])
    assert done["state"] == "succeeded", done

    code, ov = fetch("overview", params={"workspace": ws})
    assert [x["name"] for x in ov["trainings"]] == ["my-train"]
    assert ov["gpu_quota"] == 4 and ov["gpus_in_use"] == 0 and ov["queue"] == []
    (job,) = ov["jobs"]
    assert job["state"] == "succeeded" and job["gpus"] == 2

    code, logs = fetch("jobs", job["id"], "logs")
    assert "trained" in logs["text"]
    code, metrics = fetch("jobs", job["id"], "metrics")
    assert [m["loss"] for m in metrics if "loss" in m][:3] == [1.0, 0.5, 1.0 / 3]

    code, again = fetch("trainings", t["id"], "resubmit", method="POST", body="")
    assert code == 201 and again["name"] == "my-train-2" and again["spec"]["entrypoint"] == "my_train.py"
    code, cancelled = fetch("trainings", again["id"], "cancel", method="POST", body="")
    assert code == 200


def test_errors_name_their_field(fetch, jp_root_dir, member):
    ws = member["workspace"]
    (jp_root_dir / "train.py").write_text("print('hi')\n")
    # the service's refusal comes back with its field
    code, body = fetch("trainings", method="POST",
                               body=json.dumps({"workspace": ws, "path": "train.py", "gpus": 64}))
    assert code == 422 and body["field"] == "gpus", body
    # the extension's own checks: a path outside the server, a file that is not code
    code, body = fetch("trainings", method="POST",
                               body=json.dumps({"workspace": ws, "path": "../../etc/passwd"}))
    assert code == 422 and body["field"] == "path"
    (jp_root_dir / "notes.txt").write_text("x")
    code, body = fetch("trainings", method="POST", body=json.dumps({"workspace": ws, "path": "notes.txt"}))
    assert code == 422 and body["field"] == "path"
    code, body = fetch("trainings", method="POST", body="[1]")
    assert code == 422 and body["field"] == "body"
    code, body = fetch("overview")
    assert code == 422 and body["field"] == "workspace"
    # another workspace's things are not found
    code, body = fetch("overview", params={"workspace": "no-such-ws"})
    assert code == 404


def test_a_retried_submission_with_its_key_makes_one_training(jp_fetch, jp_asyncio_loop, jp_root_dir, platform, member):
    """The browser sends an ``Idempotency-Key`` with a submission and sends it again when the
    answer is lost: the retry (which would upload the script again under a new code id) gets the
    training the first request made, with 200 and ``Idempotent-Replayed``; the key with another
    request is refused naming the header; another key makes another training."""
    ws = member["workspace"]
    (jp_root_dir / "once.py").write_text("print('once')\n")

    def post(body: dict, key: str):
        try:
            resp = jp_asyncio_loop.run_until_complete(jp_fetch(
                "flightbase", "trainings", method="POST", body=json.dumps(body), headers={"Idempotency-Key": key}))
        except HTTPClientError as exc:
            return exc.code, json.loads(exc.response.body), exc.response.headers
        return resp.code, json.loads(resp.body), resp.headers

    body = {"workspace": ws, "path": "once.py", "name": "once", "args": []}
    code, first, _ = post(body, "lab-key-1")
    assert code == 201, first
    code, again, headers = post(body, "lab-key-1")
    assert code == 200 and again["id"] == first["id"] and headers.get("Idempotent-Replayed") == "true"
    code, refused, _ = post({**body, "gpus": 2}, "lab-key-1")
    assert code == 422 and refused["field"] == "Idempotency-Key", refused
    code, bad, _ = post({**body, "name": "bad-key"}, "not a key")  # the services check the key's form
    assert code == 422 and bad["field"] == "Idempotency-Key", bad
    trainings = platform.api("jobqueue", "GET", "trainings", member["token"], params={"workspace": ws}).json()
    assert [t["id"] for t in trainings if t["name"] == "once"] == [first["id"]]
    assert not [t for t in trainings if t["name"] == "bad-key"]
    code, other, _ = post({**body, "name": "once-more"}, "lab-key-2")
    assert code == 201 and other["id"] != first["id"]


def test_builtin_models_and_a_bad_parameter(fetch, member):
    code, models = fetch("builtin-models")
    assert code == 200 and models and all("parameters" in m for m in models)
    m = models[0]
    numeric = next((n for n, p in m["parameters"].items() if p["type"] in ("integer", "number")), None)
    if numeric is None:
        pytest.skip(f"{m['name']} has no numeric parameter")
    code, body = fetch("builtin-trainings", method="POST",
                               body=json.dumps({"workspace": member["workspace"], "name": "bad", "model": m["name"],
                                                "params": {numeric: "not-a-number"}}))
    assert code == 422 and f"params.{numeric}" in body["errors"], body


def test_without_a_token_the_extension_says_so(fetch, monkeypatch):
    monkeypatch.delenv("FLIGHTBASE_TOKEN", raising=False)
    monkeypatch.delenv("JUPYTERHUB_API_TOKEN", raising=False)
    code, body = fetch("workspaces")
    assert code == 503 and "token" in body["message"]

"""POST /trainings with an Idempotency-Key: a retry gets the training the first request made.

The real hub, proxy and jobqueue (a platform of this module's own, since one test kills the
jobqueue). A client whose answer is lost (a timeout, the jobqueue killed between its commit and
its answer) sends the same request again with the same key; it must get the same training back,
never a second one, and never another person's.
"""

from __future__ import annotations

import os
import signal
import threading
import uuid

import httpx
import pytest

from tests.helpers.platforms import platform_fixture, workspace_member

pytestmark = pytest.mark.slow

platform = platform_fixture("idempotency")


@pytest.fixture(scope="module")
def team(platform):
    """A workspace with two members: ``(workspace, first token, second token)``."""
    ws, first = workspace_member(platform, "keys", "kim", gpu_quota=4)
    second = platform.create_user("kai")
    assert platform.api("jobqueue", "PUT", f"workspaces/{ws}/members/kai", platform.admin_token).status_code == 200
    return ws, first, second


def post(platform, token: str, body: dict, key: str | None) -> httpx.Response:
    headers = {"Authorization": f"token {token}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return httpx.post(f"{platform.url}/services/jobqueue/api/v1/trainings", json=body, headers=headers, timeout=30)


def body(ws: str, name: str, **extra) -> dict:
    return {"workspace": ws, "name": name, "entrypoint": "missing.py", "gpus": 1, "preemptible": True, **extra}


def named(platform, token: str, ws: str, name: str) -> list[dict]:
    listed = platform.api("jobqueue", "GET", "trainings", token, params={"workspace": ws, "limit": 1000}).json()
    return [t for t in listed if t["name"] == name]


def test_a_retry_with_the_key_gets_the_same_training(platform, team):
    ws, token, _ = team
    key = str(uuid.uuid4())
    first = post(platform, token, body(ws, "once"), key)
    assert first.status_code == 201, first.text
    assert "Idempotent-Replayed" not in first.headers
    again = post(platform, token, body(ws, "once"), key)
    assert again.status_code == 200, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert [j["id"] for j in again.json()["jobs"]] == [j["id"] for j in first.json()["jobs"]]
    assert len(named(platform, token, ws, "once")) == 1
    # without a key, the same request is another training (keys are what the client asks for)
    assert post(platform, token, body(ws, "once"), None).status_code == 201
    assert len(named(platform, token, ws, "once")) == 2


def test_the_key_with_another_request_is_refused(platform, team):
    ws, token, _ = team
    key = str(uuid.uuid4())
    assert post(platform, token, body(ws, "first-use"), key).status_code == 201
    other = post(platform, token, body(ws, "first-use", args=["--lr", "0.1"]), key)
    assert other.status_code == 422
    assert other.json()["field"] == "Idempotency-Key" and "another request" in other.json()["message"]
    assert len(named(platform, token, ws, "first-use")) == 1


def test_keys_are_per_person(platform, team):
    """Another member who sends the same key gets a training of their own and learns nothing of the first."""
    ws, kim, kai = team
    key = str(uuid.uuid4())
    mine = post(platform, kim, body(ws, "per-person"), key)
    theirs = post(platform, kai, body(ws, "per-person"), key)
    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert theirs.json()["id"] != mine.json()["id"] and theirs.json()["created_by"] == "kai"
    # and with a different request under the same key, the refusal names nothing of kim's
    other = post(platform, kai, body(ws, "per-person", args=["x"]), key)
    assert other.status_code == 422 and mine.json()["id"] not in other.text


@pytest.mark.parametrize("key", ["", "x" * 256, "has space", "caf\u00e9"])
def test_a_bad_key_is_refused_naming_the_header(platform, team, key):
    ws, token, _ = team
    headers = {"Authorization": f"token {token}", "Idempotency-Key": key.encode("utf-8")}
    resp = httpx.post(f"{platform.url}/services/jobqueue/api/v1/trainings", json=body(ws, "bad-key"),
                      headers=headers, timeout=30)
    assert resp.status_code == 422, resp.text
    assert resp.json()["field"] == "Idempotency-Key"
    assert named(platform, token, ws, "bad-key") == []


def test_concurrent_requests_with_one_key_make_one_training(platform, team):
    ws, token, _ = team
    key = str(uuid.uuid4())
    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def send():
        resp = post(platform, token, body(ws, "racing"), key)
        with lock:
            answers.append(resp)

    threads = [threading.Thread(target=send) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [200] * 11 + [201], [r.text for r in answers if r.status_code not in (200, 201)]
    assert len({r.json()["id"] for r in answers}) == 1
    assert len(named(platform, token, ws, "racing")) == 1


class LosesTheFirstAnswer(httpx.HTTPTransport):
    """The real transport, except that the first POST's answer never reaches the client: the
    server handled the request, the client sees a read timeout (a network fault put in the path)."""

    def __init__(self):
        super().__init__()
        self.keys: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.method == "POST" and request.url.path.endswith("/trainings"):
            self.keys.append(request.headers["Idempotency-Key"])
            if len(self.keys) == 1:
                response.read()
                response.close()
                raise httpx.ReadTimeout("the answer was lost", request=request)
        return response


def test_the_client_retries_a_lost_answer_with_the_same_key(platform, team):
    from flightbase.client import Client

    ws, token, _ = team
    lossy = LosesTheFirstAnswer()
    with Client(platform.url, token) as client:
        client._http._transport = lossy
        training = client.submit(ws, entrypoint="missing.py", name="lost-answer", gpus=1)
    assert len(lossy.keys) == 2 and lossy.keys[0] == lossy.keys[1]
    found = named(platform, token, ws, "lost-answer")
    assert [t["id"] for t in found] == [training["id"]]


def test_a_retry_after_the_jobqueue_was_killed_finds_the_training(platform, team):
    """The first answer is cut off by SIGKILL of the jobqueue (the hub starts it again): the
    training was committed before any answer, so the retry finds it instead of making another."""
    ws, token, _ = team
    key = str(uuid.uuid4())
    first = post(platform, token, body(ws, "survives"), key)
    assert first.status_code == 201
    pid = platform.service_pid("jobqueue")
    os.kill(pid, signal.SIGKILL)
    platform.wait_healthy(timeout=60)
    assert platform.service_pid("jobqueue") != pid
    again = post(platform, token, body(ws, "survives"), key)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]
    assert len(named(platform, token, ws, "survives")) == 1

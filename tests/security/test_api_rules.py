"""Issue #14, the jobqueue API's rules: secret values (finding 9), the images a workspace
may use (finding 8) and one GPU lease per server (finding 7).

Against the real platform (hub, proxy, both services, the local backend and the
local spawner), through the same APIs, CLI and spawner people use:

- finding 9: a secret value goes in through ``flightbase submit --secret-env NAME``
  (read from the submitter's environment); real two-process Horovod jobs of a
  sweep, and the retry of its failed job, print a hash of it and count the
  processes of the machine whose command line holds it (none may). No training
  or job answer, listing or log shows it, to the owner or to another member, and
  the platform's log does not hold it.
- finding 8: with ``allowed_images`` empty, the built-in images and the
  workspace's own (by name or reference, one registered a moment ago too) are
  accepted and another workspace's or an unknown one refused, for trainings,
  built-in trainings and leases alike; a non-empty list is what it says.
- finding 7: a real server's spawner gets its lease while the hub shows the
  server pending; a second lease for that server, or one for a server the hub
  does not have, is refused; of several requests at once for a server, one wins.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.helpers.platforms import platform_fixture
from tests.platform.harness import FLIGHTBASE
from tests.platform.world import ENDED, fresh_world, upload_code, wait_state, wait_training

pytestmark = pytest.mark.slow

# Prints a hash of $API_TOKEN and how many processes of the machine (any account's) show the
# value on their command line, as `ps` would; exits with --code (a while later).
PROBE = b'''import hashlib, os, sys, time
value = os.environ.get("API_TOKEN", "")
seen = 0
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                seen += bool(value) and value.encode() in f.read()
        except OSError:
            pass
print("secret-sha256", hashlib.sha256(value.encode()).hexdigest(), "on-command-lines", seen, flush=True)
code = int(sys.argv[sys.argv.index("--code") + 1]) if "--code" in sys.argv else 0
if code:
    time.sleep(3)  # horovodrun stops every rank when one fails: the others have printed first
raise SystemExit(code)
'''


platform = platform_fixture("api-rules")


@pytest.fixture
def world(platform):
    with fresh_world(platform) as w:
        yield w


def wait_lease(platform, token, server, workspace, timeout=60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        found = [x for x in platform.api("jobqueue", "GET", "leases", token, params={"all": True}).json()
                 if x["server"] == server and x["workspace"] == workspace]
        if found:
            return found[0]
        assert time.monotonic() < deadline, f"no lease for server {server!r}"
        time.sleep(0.2)


def stop_server(platform, user, server, timeout=60) -> None:
    platform.hub("DELETE", f"users/{user}/servers/{server}")
    deadline = time.monotonic() + timeout
    while server in (platform.hub("GET", f"users/{user}").json().get("servers") or {}):
        assert time.monotonic() < deadline, f"server {user}/{server} did not stop"
        time.sleep(0.2)


# -- finding 9 ---------------------------------------------------------------------------------
def test_finding9_secret_env_is_write_only_and_reaches_the_job(platform, world, tmp_path):
    secret = "fb-secret-" + secrets.token_hex(16)
    digest = hashlib.sha256(secret.encode()).hexdigest()
    owner, member, ws = world.tokens["owner"], world.tokens["member"], world.workspace

    # bad input is refused naming the field, without the value in the answer
    code_id = upload_code(platform, owner, ws, "probe.py", PROBE)
    base = {"workspace": ws, "name": "bad", "entrypoint": "probe.py", "code_id": code_id}
    for extra, why in (({"env": {"API_TOKEN": "x"}, "secret_env": {"API_TOKEN": secret}}, "also in env"),
                       ({"secret_env": {"1API": secret}}, "not a valid environment variable name"),
                       ({"secret_env": {"FLIGHTBASE_X": secret}}, "set by the platform")):
        resp = platform.api("jobqueue", "POST", "trainings", owner, json={**base, **extra})
        assert resp.status_code == 422 and resp.json()["field"] == "secret_env", resp.text
        assert why in resp.json()["message"] and secret not in resp.text

    # submitted with the CLI, the value read from the submitter's own environment (not its command line)
    probe = tmp_path / "probe.py"
    probe.write_bytes(PROBE)
    env = {**os.environ, "FLIGHTBASE_URL": platform.url, "FLIGHTBASE_TOKEN": owner, "API_TOKEN": secret}
    cli = subprocess.run([str(FLIGHTBASE), "submit", str(probe), "-w", ws, "-n", "secret", "--gpus", "2",
                          "--launcher", "horovod", "--secret-env", "API_TOKEN", "--env", "PLAIN=shown",
                          "--grid", "code=[0,3]", "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr
    assert secret not in cli.stdout + cli.stderr
    training_id = re.search(r'"id": "([0-9a-f]{12})"', cli.stdout).group(1)

    # the sweep's two jobs, then the retry of the one that failed (its ranks exit with 3)
    wait_training(platform, owner, training_id, ("failed",), timeout=180)
    resp = platform.api("jobqueue", "POST", f"trainings/{training_id}/retry", owner)
    assert resp.status_code == 200, resp.text
    training = wait_training(platform, owner, training_id, ("failed",), timeout=180)
    jobs = training["jobs"]
    # (horovodrun exits with 1 when a rank fails)
    assert [(j["params"], j["state"]) for j in jobs] == [
        ({"code": 0}, "succeeded"), ({"code": 3}, "failed"), ({"code": 3}, "failed")], jobs
    for job in jobs:  # both ranks of every job got the value, and no command line of the machine held it
        out = platform.api("jobqueue", "GET", f"jobs/{job['id']}/logs", owner).text
        assert secret not in out
        lines = re.findall(r"^\[(\d)\]<stdout>:secret-sha256 (\w+) on-command-lines (\d+)$", out, re.M)
        assert sorted(lines) == [("0", digest, "0"), ("1", digest, "0")], out[-3000:]

    # write-only: no answer shows the value, to the owner or to another member
    for token in (owner, member, platform.admin_token):
        answers = [
            platform.api("jobqueue", "GET", f"trainings/{training_id}", token),
            platform.api("jobqueue", "GET", "trainings", token, params={"workspace": ws}),
            platform.api("jobqueue", "GET", "jobs", token, params={"training": training_id}),
            *(platform.api("jobqueue", "GET", f"jobs/{j['id']}", token) for j in jobs),
        ]
        for resp in answers:
            assert resp.status_code == 200, resp.text
            assert secret not in resp.text
        shown = answers[0].json()
        assert shown["secret_env_names"] == ["API_TOKEN"]
        assert shown["spec"]["env"] == {"PLAIN": "shown"} and "secret_env" not in shown["spec"]
        listed = next(t for t in answers[1].json() if t["id"] == training_id)
        assert listed["secret_env_names"] == ["API_TOKEN"]

    # a built-in training takes them too, and shows only the name
    resp = platform.api("jobqueue", "POST", "builtin-trainings", owner, json={
        "workspace": ws, "name": "b", "model": "synthetic_benchmark", "gpus": 1, "secret_env": {"API_TOKEN": secret},
        "params": {"arch": "resnet8", "width": 4, "image_size": 8, "batch_size": 2, "num_iters": 1,
                   "num_warmup_batches": 0, "num_batches_per_iter": 1, "num_classes": 2}})
    assert resp.status_code == 201, resp.text
    assert resp.json()["secret_env_names"] == ["API_TOKEN"] and secret not in resp.text
    platform.api("jobqueue", "POST", f"trainings/{resp.json()['id']}/cancel", owner)

    assert secret not in platform.log_path.read_text(errors="replace")
    assert platform.api("jobqueue", "GET", "info", owner).status_code == 200


# -- finding 8 ---------------------------------------------------------------------------------
def test_finding8_empty_allowed_images_means_builtins_and_own(platform, world):
    owner, ws = world.tokens["owner"], world.workspace
    theirs = platform.api("registry", "POST", f"workspaces/{world.other_workspace}/images", world.tokens["outsider"],
                          json={"name": "theirs", "reference": "example.org/other/theirs:1"})
    assert theirs.status_code == 201, theirs.text
    created = []

    def training(image: str):
        resp = platform.api("jobqueue", "POST", "trainings", owner,
                            json={"workspace": ws, "name": "i", "entrypoint": "x.py", "image": image})
        if resp.status_code == 201:
            created.append(resp.json()["id"])
        return resp

    def refused(resp, message: str) -> None:
        assert resp.status_code == 422, resp.text
        body = resp.json()
        assert body["field"] == "image" and body["message"].startswith(message), body

    try:
        # empty: the built-in images and the workspace's own, by name or by reference
        for image in ("training-base", "notebook", "img", "example.org/team/img:1"):
            assert training(image).status_code == 201, image
        for image in ("theirs", "example.org/other/theirs:1", "not-there"):
            refused(training(image), f"image: {image!r} is not an image of workspace {ws!r} (")
        assert "theirs" not in training("theirs").json()["message"].split("(", 1)[1]
        fresh = platform.api("registry", "POST", f"workspaces/{ws}/images", owner,
                             json={"name": "fresh", "reference": "example.org/team/fresh:1"})
        assert fresh.status_code == 201, fresh.text
        assert training("fresh").status_code == 201  # registered a moment ago
        builtin = platform.api("jobqueue", "POST", "builtin-trainings", owner, json={
            "workspace": ws, "name": "b", "model": "synthetic_benchmark", "gpus": 1, "image": "theirs"})
        refused(builtin, f"image: 'theirs' is not an image of workspace {ws!r} (")
        refused(platform.api("jobqueue", "POST", "leases", owner, json={"workspace": ws, "image": "theirs"}),
                f"image: 'theirs' is not an image of workspace {ws!r} (")

        # a list: exactly those names
        resp = platform.api("jobqueue", "PATCH", f"workspaces/{ws}/settings", world.tokens["manager"],
                            json={"allowed_images": ["img"]})
        assert resp.status_code == 200, resp.text
        assert training("img").status_code == 201
        refused(training("training-base"), f"image: 'training-base' is not allowed in workspace {ws!r} (")
        refused(platform.api("jobqueue", "POST", "leases", owner, json={"workspace": ws, "image": "notebook"}),
                f"image: 'notebook' is not allowed in workspace {ws!r} (")
    finally:
        for training_id in created:
            platform.api("jobqueue", "POST", f"trainings/{training_id}/cancel", owner)
    for training_id in created:
        wait_training(platform, owner, training_id, ENDED)


# -- finding 7 ---------------------------------------------------------------------------------
def test_finding7_one_lease_per_server(platform, world):
    owner, ws, user = world.tokens["owner"], world.workspace, world.names["owner"]

    # a server the hub does not have (named or the default one) gets no lease
    for server, label in (("ghost", f"{user}/ghost"), ("", user)):
        resp = platform.api("jobqueue", "POST", "leases", owner, json={"workspace": ws, "server": server})
        assert resp.status_code == 409, resp.text
        assert resp.json()["field"] == "server" and f"no server {label!r}" in resp.json()["message"]

    # the spawner asks as the server starts (the hub shows it pending), and gets one
    resp = platform.hub("POST", f"users/{user}/servers/s1", json={"workspace": ws, "gpus": 1})
    assert resp.status_code in (201, 202), resp.text
    try:
        lease = wait_lease(platform, owner, "s1", ws)
        assert lease["state"] in ("queued", "granted"), lease
        # a second one for the same server is refused, naming the server and the lease it holds
        resp = platform.api("jobqueue", "POST", "leases", owner, json={"workspace": ws, "server": "s1"})
        assert resp.status_code == 409, resp.text
        body = resp.json()
        assert body["field"] == "server" and f"'{user}/s1'" in body["message"] and lease["id"] in body["message"]
        live = [x for x in platform.api("jobqueue", "GET", "leases", owner).json() if x["server"] == "s1"]
        assert [x["id"] for x in live] == [lease["id"]]

        # released while its server goes on: of several requests at once for the server, one gets a lease
        lease = wait_state(platform, owner, f"leases/{lease['id']}", ("granted",))
        resp = platform.api("jobqueue", "DELETE", f"leases/{lease['id']}", owner)
        assert resp.status_code == 200 and resp.json()["state"] == "released", resp.text
        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(lambda _: platform.api("jobqueue", "POST", "leases", owner, json={
                "workspace": ws, "server": "s1"}), range(6)))
        assert sorted(r.status_code for r in answers) == [201] + [409] * 5, [r.text for r in answers]
        second = next(r.json() for r in answers if r.status_code == 201)
        assert second["id"] in next(r.json()["message"] for r in answers if r.status_code == 409)
        assert platform.api("jobqueue", "DELETE", f"leases/{second['id']}", owner).status_code == 200
    finally:
        stop_server(platform, user, "s1")
    ended = wait_state(platform, owner, f"leases/{lease['id']}", ("released", "cancelled"))
    assert ended["id"] == lease["id"]
    # the server is gone: no lease for it either
    resp = platform.api("jobqueue", "POST", "leases", owner, json={"workspace": ws, "server": "s1"})
    assert resp.status_code == 409 and "no server" in resp.json()["message"], resp.text

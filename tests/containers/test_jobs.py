"""Jobs in containers: the docker backend with the real platform, a real Docker engine and the built images.

The platform runs with ``FLIGHTBASE_BACKEND=docker`` on two CPU slots; each
job runs in a container of its training's image as its owner's account.
Skipped, with the reason, where no Docker engine answers, where the tests do
not run as root, or where ``make test`` has not built the images.
"""

from __future__ import annotations

import json
import os
import pwd
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.containers.engine import engine_or_skip, image_or_skip, upload_bare_image
from tests.helpers.platforms import running_platform
from tests.platform.harness import FLIGHTBASE
from tests.platform.world import submit, upload_code, wait_state

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="jobs run as their owners' accounts only under root")]

JOBS = Path(__file__).parent / "jobs"
ALLREDUCE = b"""
import os
import torch, horovod.torch as hvd
hvd.init()
total = hvd.allreduce(torch.tensor([float(hvd.rank() + 1)]), op=hvd.Sum)
print("RESULT", hvd.rank(), hvd.size(), float(total[0]), os.getuid(), os.path.exists("/.dockerenv"), flush=True)
"""


@pytest.fixture(scope="module")
def client():
    return engine_or_skip()


@pytest.fixture(scope="module")
def platform(tmp_path_factory, client):
    image_or_skip(client, "flightbase/training-base:0.1.0")
    with running_platform(tmp_path_factory, "docker-jobs", gpus="2", extra_env={"FLIGHTBASE_BACKEND": "docker"}) as p:
        p.tokens = {"ann": p.create_user("ann"), "ben": p.create_user("ben")}
        for ws, members in (("box", ["ann"]), ("other", ["ben"])):
            assert p.api("jobqueue", "POST", "workspaces", p.admin_token, json={"name": ws, "settings": {}}).status_code == 201
            for m in members:
                assert p.api("jobqueue", "PUT", f"workspaces/{ws}/members/{m}", p.admin_token).status_code == 200
        yield p
        # read before the platform and its data folder go
        registry = json.loads((p.data_dir / "oci" / "config.yml").read_text())["http"]["addr"]
    for c in client.containers.list(all=True, filters={"label": "flightbase.workspace"}):
        if c.labels.get("flightbase.workspace") in ("box", "other", "tiny"):
            c.remove(force=True)
    for image in client.images.list():  # what the engine pulled from this platform's registry
        if any(name.startswith(f"{registry}/") for name in image.tags + image.attrs.get("RepoDigests", [])):
            client.images.remove(image.id, force=True)


def run(platform, user, ws, script: bytes, *, name="t", timeout=180, **extra) -> tuple[dict, str]:
    token = platform.tokens[user]
    code = upload_code(platform, token, ws, "main.py", script)
    job = submit(platform, token, ws, name, "main.py", code, **extra)["jobs"][0]
    done = wait_state(platform, token, f"jobs/{job['id']}", timeout=timeout)
    return done, platform.api("jobqueue", "GET", f"jobs/{job['id']}/logs", token).text


def test_a_two_rank_horovod_job_runs_in_training_base_as_its_owner(platform):
    job, out = run(platform, "ann", "box", ALLREDUCE, gpus=2, launcher="horovod")
    assert job["state"] == "succeeded", out[-3000:]
    results = sorted(line.split("RESULT ", 1)[1] for line in out.splitlines() if "RESULT " in line)
    uid = pwd.getpwnam("ann").pw_uid
    assert results == [f"0 2 3.0 {uid} True", f"1 2 3.0 {uid} True"], out[-3000:]


@pytest.mark.parametrize("script, launcher", [("hvd_resnet.py", "horovod"), ("ddp_torchrun.py", "torchrun")])
def test_trainings_written_like_the_frameworks_own_examples_run_in_training_base(platform, script, launcher):
    """Horovod's and PyTorch's own example patterns (see the scripts' docstrings), on two slots."""
    job, out = run(platform, "ann", "box", (JOBS / script).read_bytes(), name=script.split(".")[0], gpus=2,
                   launcher=launcher, timeout=300)
    assert job["state"] == "succeeded", out[-3000:]
    assert out.count("in sync: True") == 2 and "of 2" in out, out[-3000:]


def test_a_job_cannot_write_its_datasets_nor_see_another_workspaces(platform, tmp_path):
    from tests.helpers.servers import upload_dataset

    upload_dataset(platform, "ann", "box", "mine", {"a.txt": b"mine"}, tmp_path)
    upload_dataset(platform, "ben", "other", "theirs", {"b.txt": b"theirs"}, tmp_path)
    probe = f"""
import os, errno
print("OWN", open("/datasets/mine/a.txt").read())
try:
    open("/datasets/mine/new.txt", "w")
except OSError as e:
    print("WRITE", errno.errorcode[e.errno])
print("LISTED", sorted(os.listdir("/datasets")))
print("HOST DATA", os.path.exists({str(platform.data_dir)!r}))
print("CHECKPOINTS", os.access(os.environ["FLIGHTBASE_CHECKPOINT_DIR"], os.W_OK), "HOME", os.access(os.environ["HOME"], os.W_OK))
try:
    open("written-in-code", "w")
except OSError as e:
    print("CODE", errno.errorcode[e.errno])
""".encode()
    job, out = run(platform, "ann", "box", probe, datasets=["mine"])
    assert job["state"] == "succeeded", out[-3000:]
    for line in ("OWN mine", "WRITE EROFS", "LISTED ['mine']", "HOST DATA False", "CHECKPOINTS True HOME True",
                 "CODE EROFS"):
        assert line in out, out[-3000:]


def test_a_job_over_its_memory_limit_fails_with_out_of_memory(platform):
    admin = platform.admin_token
    assert platform.api("jobqueue", "POST", "workspaces", admin,
                        json={"name": "tiny", "settings": {"memory_gb_per_gpu": 0.25}}).status_code == 201
    assert platform.api("jobqueue", "PUT", "workspaces/tiny/members/ann", admin).status_code == 200
    hog = b"block = bytearray(1 << 30)\nfor i in range(0, len(block), 4096):\n    block[i] = 1\nprint('survived')\n"
    job, out = run(platform, "ann", "tiny", hog)
    assert job["state"] == "failed" and "out of memory" in (job["reason"] or ""), (job, out[-2000:])
    assert "0.25 GB" in job["reason"] and "survived" not in out


def test_a_job_runs_in_the_image_its_workspace_uploaded(platform, client, tmp_path):
    marker = uuid.uuid4().hex
    context = tmp_path / "image"
    context.mkdir()
    (context / "Dockerfile").write_text(
        "FROM flightbase/training-base:0.1.0\n"
        "USER 0\n"
        f"RUN echo {marker} > /opt/marker.txt\n"
        "USER 65534:65534\n")
    tag = f"flightbase-test/marked:{marker[:8]}"
    client.images.build(path=str(context), tag=tag, rm=True)
    archive = tmp_path / "marked.tar"
    with open(archive, "wb") as f:
        for chunk in client.images.get(tag).save(named=True):
            f.write(chunk)
    client.images.remove(tag, force=True)  # from now on it is only in the platform's registry
    env = dict(os.environ, FLIGHTBASE_URL=platform.url, FLIGHTBASE_TOKEN=platform.tokens["ann"])
    upload = subprocess.run([str(FLIGHTBASE), "images", "upload", "-w", "box", str(archive), "marked", "--quiet"],
                            env=env, capture_output=True, text=True, timeout=600)
    assert upload.returncode == 0, upload.stderr
    job, out = run(platform, "ann", "box", b"print('MARK', open('/opt/marker.txt').read().strip())\n", image="marked")
    assert job["state"] == "succeeded" and f"MARK {marker}" in out, out[-3000:]
    # another workspace can neither name it nor run it
    refused = platform.api("jobqueue", "POST", "trainings", platform.tokens["ben"],
                           json={"workspace": "other", "name": "x", "entrypoint": "x.py", "image": "marked"})
    assert refused.status_code == 422 and refused.json()["field"] == "image"


def test_an_image_without_the_launcher_fails_quickly_with_the_reason(platform, client, tmp_path):
    """An image that has Python but no Horovod: the job fails at once, saying what is missing."""
    resp = upload_bare_image(platform, client, tmp_path, "box", "ann", "bare")
    assert resp.status_code == 201, resp.text
    began = time.monotonic()
    job, out = run(platform, "ann", "box", b"print('hi')\n", image="bare", launcher="horovod", gpus=1)
    assert job["state"] == "failed" and "lacks" in job["reason"] and "horovodrun" in job["reason"], (job, out)
    assert time.monotonic() - began < 60


def test_cancel_stops_the_container_and_a_killed_jobqueue_readopts_running_ones(platform, client):
    token = platform.tokens["ann"]
    code = upload_code(platform, token, "box", "sleep.py",
                       b"import time\nprint('up', flush=True)\ntime.sleep(600)\n")
    kept = submit(platform, token, "box", "kept", "sleep.py", code)["jobs"][0]["id"]
    wait_state(platform, token, f"jobs/{kept}", ("running",), timeout=120)
    containers = client.containers.list(filters={"label": f"flightbase.job={kept}"})
    assert len(containers) == 1 and containers[0].labels["flightbase.workspace"] == "box"
    assert containers[0].attrs["HostConfig"]["CapDrop"] == ["ALL"]

    jobqueue = platform.service_pid("jobqueue")
    os.kill(jobqueue, signal.SIGKILL)
    deadline = time.monotonic() + 90
    while True:  # the hub restarts its service; the job is still running, re-adopted
        try:
            if platform.service_pid("jobqueue") != jobqueue and \
                    platform.api("jobqueue", "GET", f"jobs/{kept}", token).status_code == 200:
                break
        except Exception:
            pass
        assert time.monotonic() < deadline, "the jobqueue did not come back"
        time.sleep(0.5)
    assert platform.api("jobqueue", "GET", f"jobs/{kept}", token).json()["state"] == "running"
    assert client.containers.get(containers[0].id).status == "running"

    began = time.monotonic()
    platform.api("jobqueue", "POST", f"jobs/{kept}/cancel", token)
    assert wait_state(platform, token, f"jobs/{kept}", timeout=60)["state"] == "cancelled"
    assert time.monotonic() - began < 20
    assert not client.containers.list(all=True, filters={"label": f"flightbase.job={kept}"})
    assert "up" in platform.api("jobqueue", "GET", f"jobs/{kept}/logs", token).text



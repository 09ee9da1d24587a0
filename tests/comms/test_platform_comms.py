"""GPU communication on the real platform, CPU path (issue #20): everything runs for real here:
JupyterHub, both services, the local backend and jobs as a person's account on CPU slots.

- ``flightbase bench allreduce`` submits the sweep as a platform job, gloo all-reduce runs in
  two ranks under torchrun, and the CLI prints nccl-tests' figures;
- every job runs with NCCL's logging on, into a per-run folder apart from ``output.log``;
  what the job's ranks write there is what its details show (a job stands in for NCCL here by
  writing lines of NCCL's format: no GPU on this machine);
- a job that asked for P2P on CPU slots is flagged "no GPUs", in the API and in the CLI.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers.platforms import member_fixture, platform_fixture
from tests.platform.harness import FLIGHTBASE
from tests.platform.world import upload_code, wait_state

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "nccl"


platform = platform_fixture("comms", gpus="4")
member = member_fixture("comms", "comms-u", gpu_quota=4)  # (workspace, token): a fresh workspace with 4 CPU slots


def cli(platform, token: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "FLIGHTBASE_URL": platform.url, "FLIGHTBASE_TOKEN": token, "FLIGHTBASE_WORKSPACE": "comms"}
    return subprocess.run([str(FLIGHTBASE), *args], capture_output=True, text=True, env=env, timeout=timeout)


def run_job(platform, token: str, ws: str, script: str, **extra) -> dict:
    code = upload_code(platform, token, ws, "job.py", script.encode())
    resp = platform.api("jobqueue", "POST", "trainings", token,
                        json={"workspace": ws, "name": "c", "entrypoint": "job.py", "code_id": code, **extra})
    assert resp.status_code == 201, resp.text
    job_id = resp.json()["jobs"][0]["id"]
    job = wait_state(platform, token, f"jobs/{job_id}", timeout=120)
    assert job["state"] == "succeeded", platform.api("jobqueue", "GET", f"jobs/{job_id}/logs", token).text
    return job


def test_bench_allreduce_runs_as_a_platform_job_over_gloo(platform, member):
    ws, token = member
    done = cli(platform, token, "bench", "allreduce", "--gpus", "2", "--max-bytes", "64K", "--iters", "5", "--json")
    assert done.returncode == 0, done.stderr + done.stdout
    out = json.loads(done.stdout)
    assert out["world_size"] == 2 and out["gpu_kind"] == "cpu-slot"
    assert out["hardware"]["backend"] == "gloo"
    sizes = [r["size_bytes"] for r in out["results"]]
    assert sizes == [8 << i for i in range(14)]  # 8 B .. 64 KiB, doubling
    for r in out["results"]:
        assert r["time_us"] > 0 and r["algbw_gbps"] > 0
        assert r["busbw_gbps"] == pytest.approx(r["algbw_gbps"] * 2 * (2 - 1) / 2)  # nccl-tests' busbw
    assert out["peak_busbw_gbps"] == max(r["busbw_gbps"] for r in out["results"])
    assert out["expected"]["busbw_gbps"] is None and "gloo" in out["expected"]["basis"]
    # the job is a training of the workspace like any other, with its metrics and its record
    job = platform.api("jobqueue", "GET", f"jobs/{out['job']}", token).json()
    assert job["state"] == "succeeded" and job["gpus"] == 2 and job["name"].startswith("bench-allreduce")
    assert job["metrics"]["size_bytes"] == 65536
    comm = job["communication"]
    assert comm["source"] == "none" and comm["requested"] == {"p2p": False, "rdma": False} and comm["flags"] == []

    table = cli(platform, token, "bench", "allreduce", "--gpus", "1", "--max-bytes", "1K", "--iters", "2")
    assert table.returncode == 0, table.stderr
    assert "busbw (GB/s)" in table.stdout and "peak bus bandwidth" in table.stdout
    assert "one rank" in table.stdout


def test_bench_allreduce_refuses_bad_input_in_one_line(platform, member):
    _, token = member
    for args, field in ((["--gpus", "0"], "gpus"), (["--max-bytes", "lots"], "max-bytes"),
                        (["--min-bytes", "2M", "--max-bytes", "1M"], "max-bytes")):
        done = cli(platform, token, "bench", "allreduce", *args)
        assert done.returncode == 2, done.stderr
        assert field in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


PROBE = """
import os, shutil, socket, sys
env = {k: os.environ.get(k) for k in ("NCCL_DEBUG", "NCCL_DEBUG_SUBSYS", "NCCL_DEBUG_FILE")}
print("env", env, flush=True)
folder = os.path.dirname(env["NCCL_DEBUG_FILE"])
# stand in for NCCL's ranks: each writes its log where NCCL_DEBUG_FILE says (%h host, %p pid)
for i, text in enumerate(sys.argv[1:]):
    name = env["NCCL_DEBUG_FILE"].replace("%h", socket.gethostname()).replace("%p", str(os.getpid() + i))
    open(name, "w").write(text)
# and try to make the platform read what it must not
os.symlink("/etc/shadow", os.path.join(folder, "shadow.log"))
os.mkfifo(os.path.join(folder, "fifo.log"))
"""


def test_nccl_logging_goes_to_a_platform_folder_and_the_details_show_it(platform, member):
    ws, token = member
    logs = [p.read_text() for p in sorted((FIXTURES / "shm_p2p_disabled").glob("*.log"))]
    job = run_job(platform, token, ws, PROBE, gpus=1, args=logs, gpudirect_p2p=True)
    out = platform.api("jobqueue", "GET", f"jobs/{job['id']}/logs", token).text
    run_dir = platform.data_dir / "jobs" / job["id"] / "nccl" / "0"
    assert f"'NCCL_DEBUG_FILE': '{run_dir}/%h.%p.log'" in out
    assert "'NCCL_DEBUG': 'INFO'" in out and "'NCCL_DEBUG_SUBSYS': 'GRAPH,INIT,NET'" in out
    assert "NCCL INFO" not in out  # NCCL's lines stay out of the person's output.log
    comm = platform.api("jobqueue", "GET", f"jobs/{job['id']}", token).json()["communication"]
    assert comm["source"] == "nccl" and comm["files"] == 2  # the link and the FIFO were not read
    assert comm["summary"] == {"SHM": 4}
    assert comm["env"]["NCCL_P2P_DISABLE"] == "1"
    # the job holds CPU slots: whatever its log says, P2P was not there to be used
    assert comm["flags"] == [{"feature": "p2p", "reason": comm["flags"][0]["reason"]}]
    assert comm["flags"][0]["reason"].startswith("no GPUs")
    # lists stay light: the record is in one job's details only
    listed = platform.api("jobqueue", "GET", "jobs", token, params={"workspace": ws}).json()
    assert all(j["communication"] is None for j in listed)


def test_p2p_asked_without_gpus_is_flagged_in_the_api_and_the_cli(platform, member):
    ws, token = member
    job = run_job(platform, token, ws, "print('no communication at all')\n", gpus=2, launcher="none",
                  gpudirect_p2p=True, gpudirect_rdma=False)
    comm = platform.api("jobqueue", "GET", f"jobs/{job['id']}", token).json()["communication"]
    assert comm["requested"] == {"p2p": True, "rdma": False}
    assert comm["used"]["p2p"] is False
    assert [f["feature"] for f in comm["flags"]] == ["p2p"]
    assert comm["flags"][0]["reason"].startswith("no GPUs")
    shown = cli(platform, token, "jobs", "show", job["id"])
    assert shown.returncode == 0, shown.stderr
    assert "FLAG p2p: no GPUs" in shown.stdout and "p2p (not used)" in shown.stdout
    as_json = json.loads(cli(platform, token, "jobs", "show", job["id"], "--json").stdout)
    assert as_json["communication"]["flags"] == comm["flags"]


def test_the_nodes_inventory_shows_the_interconnect(platform, member):
    _, token = member
    assert platform.api("jobqueue", "GET", "nodes", token).status_code == 403  # administrators only, as before
    [node] = platform.api("jobqueue", "GET", "nodes", platform.admin_token).json()
    inv = node["interconnect"]
    assert set(inv) >= {"source", "gpus", "links", "nvlink", "infiniband"}
    assert inv["source"] in ("nvml", "nvidia-smi", "none")
    assert inv["infiniband"] == [{"device": d.name, "ports": inv["infiniband"][i]["ports"]}
                                 for i, d in enumerate(sorted(Path("/sys/class/infiniband").glob("*")))]
    if node["gpu_kind"] == "cpu-slot":
        assert node["labels"] == {}

"""On a machine with NVIDIA GPUs (issue #20): the inventory reads NVML, a 1-GPU job's NCCL record
is read back from its own log folder, and `flightbase bench allreduce` reports NCCL's figures with
the expected one. Skips (with the reason) where NVML finds no GPU or torch has no CUDA;
run on a GPU machine with `python -m pytest tests/gpu/test_comms_gpu.py`."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from flightbase_server import gpus, topology
from tests.helpers.platforms import member_fixture, platform_fixture

FOUND = gpus.detect_nvml()
pytestmark = [pytest.mark.skipif(not FOUND, reason="no NVIDIA GPU found by NVML on this machine"), pytest.mark.slow]


def test_inventory_reads_nvml():
    inv = topology.interconnect()
    assert inv["source"] == "nvml"
    assert [g["index"] for g in inv["gpus"]] == [g["index"] for g in FOUND]
    assert all(inv["links"][str(i)][str(i)] == "X" for i in range(len(FOUND)))


NCCL_JOB = """
import os, torch, torch.distributed as dist
os.environ.setdefault("MASTER_ADDR", "127.0.0.1"); os.environ.setdefault("MASTER_PORT", "29511")
dist.init_process_group("nccl", rank=0, world_size=1)
t = torch.ones(1024, device="cuda"); dist.all_reduce(t); torch.cuda.synchronize()
print("sum", float(t.sum()), flush=True)
dist.destroy_process_group()
"""


platform = platform_fixture("gpu-comms", gpus="auto")
member = member_fixture("gpucomms", "gpucomms-u", gpu_quota=len(FOUND))


def test_one_gpu_jobs_nccl_record(platform, member):
    pytest.importorskip("torch")
    import torch

    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA here")
    from tests.platform.world import upload_code, wait_state

    ws, token = member
    code = upload_code(platform, token, ws, "nccl1.py", NCCL_JOB.encode())
    t = platform.api("jobqueue", "POST", "trainings", token,
                     json={"workspace": ws, "name": "nccl1", "entrypoint": "nccl1.py", "code_id": code, "gpus": 1,
                           "gpudirect_p2p": True}).json()
    job = wait_state(platform, token, f"jobs/{t['jobs'][0]['id']}", timeout=300)
    assert job["state"] == "succeeded", platform.api("jobqueue", "GET", f"jobs/{job['id']}/logs", token).text
    comm = platform.api("jobqueue", "GET", f"jobs/{job['id']}", token).json()["communication"]
    assert comm["source"] == "nccl" and comm["files"] >= 1 and comm["ranks"] == 1
    assert comm["network"]  # IB, Socket or a plugin: whatever this machine has
    assert comm["flags"] == [] and any("one GPU per node" in n for n in comm["notes"])


def test_bench_allreduce_on_gpus(platform, member):
    from tests.platform.harness import FLIGHTBASE

    _, token = member
    n = min(2, len(FOUND))
    env = {**os.environ, "FLIGHTBASE_URL": platform.url, "FLIGHTBASE_TOKEN": token, "FLIGHTBASE_WORKSPACE": "gpucomms"}
    done = subprocess.run([str(FLIGHTBASE), "bench", "allreduce", "--gpus", str(n), "--max-bytes", "256M", "--json"],
                          capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr + done.stdout
    out = json.loads(done.stdout)
    assert out["hardware"]["backend"] == "nccl" and out["world_size"] == n
    assert out["results"][-1]["size_bytes"] == 256 << 20
    if n > 1:
        assert out["peak_busbw_gbps"] > 1.0
        assert out["communication"]["summary"], out["communication"]
    print(json.dumps({k: out[k] for k in ("hardware", "peak_busbw_gbps", "expected")}, indent=1))

"""On a machine with NVIDIA GPUs: NVML finds them, and a job of the local backend sees
exactly the GPUs of its placement. Skips (with the reason) where NVML finds no GPU;
run on a GPU machine with `python -m pytest tests/gpu`."""

from __future__ import annotations

import queue
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from flightbase_server import gpus

FOUND = gpus.detect_nvml()
pytestmark = pytest.mark.skipif(not FOUND, reason="no NVIDIA GPU found by NVML on this machine")

PROBE = """
import os, torch
print("visible", os.environ["CUDA_VISIBLE_DEVICES"], "count", torch.cuda.device_count(), flush=True)
x = torch.randn(4096, 4096, device="cuda")
print("matmul", float((x @ x).float().abs().mean()) > 0, torch.cuda.get_device_name(0), flush=True)
"""


def test_nvml_inventory_reports_gpus():
    inv = gpus.inventory("auto")
    assert inv and all(g["kind"] == "gpu" and g["memory_bytes"] > 0 and g["name"] for g in inv)
    assert gpus.inventory("1") == inv[:1]


@pytest.fixture
def open_tmp():
    """A temp folder the job's unprivileged account can pass through (pytest's is 0700)."""
    base = Path(tempfile.mkdtemp(prefix="flightbase-gpu-"))
    base.chmod(0o711)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def test_local_backend_job_sees_exactly_its_gpu(open_tmp):
    tmp_path = open_tmp
    from flightbase_jobqueue.backends.local import LaunchSpec, LocalBackend
    from flightbase_jobqueue.ports import Exited, Started
    from flightbase_jobqueue.scheduling.types import Job

    code = tmp_path / "code"
    code.mkdir()
    (code / "probe.py").write_text(PROBE)
    data = tmp_path / "data"
    data.mkdir()
    for p in (data, code, code / "probe.py"):
        p.chmod(0o755)
    index = len(FOUND) - 1  # the last GPU, so that "0" would be wrong
    spec = LaunchSpec(job_id="gpu1", training_id="t", workspace="w", user="fbgpu", launcher="none",
                      entrypoint="probe.py", code_dir=code)
    backend = LocalBackend(data, lambda job_id: spec, gpu_kind="gpu")
    events: queue.SimpleQueue = queue.SimpleQueue()
    backend.on_event = lambda: events.put(None)
    backend.start(Job(id="gpu1", workspace="w", gpus=1), {"local": (index,)})
    seen = []
    deadline = time.monotonic() + 120
    while not any(isinstance(e, Exited) for e in seen):
        assert time.monotonic() < deadline, (backend.files.log_path("gpu1").read_text() if backend.files.log_path("gpu1").exists() else "")
        try:
            events.get(timeout=1)
        except queue.Empty:
            pass
        seen += backend.poll_events()
    out = backend.files.log_path("gpu1").read_text()
    assert isinstance(seen[0], Started)
    assert seen[-1].exit_code == 0, out
    assert f"visible {index} count 1" in out
    assert "matmul True" in out


BUSY = """
import time, torch
x = torch.randn(8192, 8192, device="cuda")
end = time.time() + 8
while time.time() < end:
    x = (x @ x).clamp_(-1, 1)
torch.cuda.synchronize()
"""


def test_nvml_utilisation_tells_a_busy_gpu_from_an_idle_one(tmp_path):
    """What the idle culler reads: a GPU computing reads busy (>= the culler's 5%), and the
    reading comes from the GPU the process uses."""
    import os
    import subprocess
    import sys

    index = len(FOUND) - 1
    idle = gpus.utilisation(index)
    assert idle is not None
    script = tmp_path / "busy.py"
    script.write_text(BUSY)
    proc = subprocess.Popen([sys.executable, str(script)], env={**os.environ, "CUDA_VISIBLE_DEVICES": str(index)})
    try:
        readings = []
        deadline = time.time() + 20
        while proc.poll() is None and time.time() < deadline:
            readings.append(gpus.utilisation(index))
            time.sleep(0.25)
    finally:
        proc.kill()
        proc.wait()
    print("idle", idle, "busy readings", readings)
    assert max(r for r in readings if r is not None) >= 5

"""Platform overhead of a short Horovod job: through Flightbase vs the same horovodrun by hand.

Runs `horovodrun --gloo -np 2 -H localhost:2 python hvd_job.py` by hand R times, and
the same script as a 2-GPU training through a real platform R times (one at a time),
and reports medians:

- ratio: the job's run time inside the platform (started -> finished, as the
  jobqueue records it) over the by-hand wall time;
- start-up: what the platform adds around the run (submission to start, and the
  end of the run to the client seeing it), from the client's clock.

    .venv/bin/python benchmarks/overhead_bench.py --runs 5                    # jobs as local processes
    .venv/bin/python benchmarks/overhead_bench.py --runs 5 --backend docker   # jobs in training-base containers
"""

from __future__ import annotations

import argparse
import json
import os
import platform as host
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.platform.harness import new_platform  # noqa: E402

SCRIPT = b"""
import horovod.torch as hvd
import torch
hvd.init()
x = torch.randn(256, 256)
for _ in range(20):
    x = hvd.allreduce(x @ x.t() / 256, name="m")
print(f"rank {hvd.rank()} done", flush=True)
"""


def by_hand_once(work: Path) -> float:
    bindir = Path(sys.executable).parent
    # the environment a job gets (flightbase_jobqueue.backends.local), not this shell's
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "HOME": str(work), "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "",
           "PYTHONUNBUFFERED": "1"}
    t0 = time.perf_counter()
    subprocess.run([str(bindir / "horovodrun"), "--gloo", "-np", "2", "-H", "localhost:2",
                    sys.executable, "-u", "hvd_job.py"], cwd=work, env=env, check=True, capture_output=True)
    return time.perf_counter() - t0


def platform_once(p, token: str, code: str, i: int) -> tuple[float, float]:
    t0 = time.time()
    t = p.api("jobqueue", "POST", "trainings", token, json={
        "workspace": "bench", "name": f"o{i}", "entrypoint": "hvd_job.py", "code_id": code,
        "gpus": 2, "launcher": "horovod"}).json()
    job_id = t["jobs"][0]["id"]
    while True:
        job = p.api("jobqueue", "GET", f"jobs/{job_id}", token).json()
        if job["state"] in ("succeeded", "failed", "cancelled"):
            break
        # polling costs the machine CPU that the job's two processes compete for; keep it light
        time.sleep(0.25)
    seen = time.time()
    assert job["state"] == "succeeded", job
    run = job["finished_at"] - job["started_at"]
    return run, (seen - t0) - run


def measure(runs: int, backend: str = "local") -> tuple[list[float], list[float], list[float]]:
    """By hand and through the platform, interleaved, so that load on the machine hits both alike."""
    work = Path(tempfile.mkdtemp())
    (work / "hvd_job.py").write_bytes(SCRIPT)
    p = new_platform(Path(tempfile.mkdtemp()), gpus="2",
                     extra_env={"FLIGHTBASE_AUTH_CACHE_SECONDS": "30", "FLIGHTBASE_BACKEND": backend})
    p.start()
    try:
        admin = p.admin_token
        p.api("jobqueue", "POST", "workspaces", admin, json={"name": "bench"})
        token = p.create_user("bencher")
        p.api("jobqueue", "PUT", "workspaces/bench/members/bencher", admin)
        code = p.api("jobqueue", "POST", "code", token, params={"workspace": "bench", "filename": "hvd_job.py"},
                     content=SCRIPT).json()["id"]
        platform_once(p, token, code, -1)  # warm-up: the account, its home, first imports
        by_hand_once(work)
        hand, run, startup = [], [], []
        for i in range(runs):
            hand.append(by_hand_once(work))
            r, s = platform_once(p, token, code, i)
            run.append(r)
            startup.append(s)
        return hand, run, startup
    finally:
        p.remove()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--backend", choices=("local", "docker"), default="local",
                    help="where the platform runs the job: local processes, or a training-base container")
    args = ap.parse_args(argv)
    hand, run, startup = measure(args.runs, args.backend)
    result = {
        "backend": args.backend,
        "runs": args.runs,
        "by_hand_s": [round(t, 2) for t in hand],
        "platform_run_s": [round(t, 2) for t in run],
        "platform_startup_s": [round(t, 2) for t in startup],
        "median_by_hand_s": round(statistics.median(hand), 2),
        "median_platform_run_s": round(statistics.median(run), 2),
        "ratio": round(statistics.median(run) / statistics.median(hand), 3),
        "median_startup_s": round(statistics.median(startup), 2),
        "machine": f"{host.machine()}, {os.cpu_count()} cores, Python {host.python_version()}",
    }
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

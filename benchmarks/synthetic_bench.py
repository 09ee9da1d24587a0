"""The synthetic benchmark (services/jobqueue/flightbase_jobqueue/builtin_models/synthetic_benchmark) through the platform with 1 and 2
workers, and the same script run by hand as a baseline; prints one JSON document.

    .venv/bin/python benchmarks/synthetic_bench.py [--gpus-list 1,2] [--launcher horovod]

Starts a real embedded platform (``flightbase up`` on free ports, CPU slots where no GPU),
creates a workspace, submits ``POST /builtin-trainings`` for each worker count, and reads
each job's ``report.json``. ``ratio_platform_to_hand`` compares the 1-worker platform run
with the hand run (same script, same parameters, OMP_NUM_THREADS=1 as on a CPU slot);
``scaling_efficiency_across_runs`` = per-worker img/s with N workers / img/s with 1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform as host
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.platform.harness import new_platform  # noqa: E402

PARAMS = {"arch": "resnet8", "width": 16, "image_size": 32, "batch_size": 16, "num_classes": 10,
          "num_warmup_batches": 2, "num_batches_per_iter": 5, "num_iters": 5, "baseline": True}


def by_hand(params: dict) -> dict:
    out = Path(tempfile.mkdtemp(prefix="bench-hand-"))
    args = [f"--{k.replace('_', '-')}={str(v).lower() if isinstance(v, bool) else v}" for k, v in params.items()]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLIGHTBASE_")} | {"OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, str(ROOT / "services/jobqueue/flightbase_jobqueue/builtin_models/synthetic_benchmark/train.py"), *args,
                    f"--artifacts-dir={out}"], check=True, env=env, capture_output=True)
    return json.loads((out / "report.json").read_text())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gpus-list", default="1,2")
    p.add_argument("--launcher", default="horovod", choices=("horovod", "torchrun"))
    a = p.parse_args()
    counts = [int(n) for n in a.gpus_list.split(",")]
    plat = new_platform(Path(tempfile.mkdtemp()), gpus=str(max(counts))).start()
    try:
        admin = plat.admin_token
        token = plat.create_user("bench-u")
        assert plat.api("jobqueue", "POST", "workspaces", admin, json={"name": "bench", "settings": {}}).status_code == 201
        assert plat.api("jobqueue", "PUT", "workspaces/bench/members/bench-u", admin).status_code == 200
        runs = {}
        for n in counts:
            t0 = time.time()
            r = plat.api("jobqueue", "POST", "builtin-trainings", token, json={
                "workspace": "bench", "name": f"bench-{n}", "model": "synthetic_benchmark", "gpus": n,
                "launcher": a.launcher, "params": PARAMS})
            assert r.status_code == 201, r.text
            t = r.json()
            job_id = t["jobs"][0]["id"]
            while (job := plat.api("jobqueue", "GET", f"jobs/{job_id}", token).json())["state"] not in ("succeeded", "failed", "cancelled"):
                time.sleep(0.5)
            assert job["state"] == "succeeded", plat.api("jobqueue", "GET", f"jobs/{job_id}/logs", token).text
            report = json.loads((plat.data_dir / "workspaces/bench/trainings" / t["id"] / job_id / "report.json").read_text())
            runs[n] = {k: report[k] for k in ("img_per_sec_per_worker", "img_per_sec_per_worker_conf", "img_per_sec_total",
                                              "per_worker", "baseline_img_per_sec", "scaling_efficiency")}
            runs[n]["job_wall_seconds"] = round(time.time() - t0, 1)
    finally:
        plat.remove()
    hand = by_hand(PARAMS)
    one = runs[counts[0]]["img_per_sec_per_worker"]
    print(json.dumps({
        "machine": f"{host.node()} {host.machine()}, {os.cpu_count()} CPUs, {host.python_version()}",
        "params": PARAMS, "launcher": a.launcher, "platform": runs,
        "by_hand_1_worker_img_per_sec": hand["img_per_sec_per_worker"],
        "ratio_platform_to_hand": one / hand["img_per_sec_per_worker"],
        "scaling_efficiency_across_runs": {n: runs[n]["img_per_sec_per_worker"] / one for n in counts},
    }, indent=1))


if __name__ == "__main__":
    main()

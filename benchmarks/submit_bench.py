"""Submission throughput through the REST API (the hub's proxy, the jobqueue, SQLite).

Starts a real platform (`flightbase up`, 4 CPU slots), holds every slot with one
non-preemptible job so nothing else starts, then sends N submissions from C
concurrent clients (a share of them sweeps of 4 jobs), and reports sustained
submissions per second, p50/p99 latency, and whether every accepted submission
is in the database exactly once.

    .venv/bin/python benchmarks/submit_bench.py --submissions 10000 --clients 50 --sweep-share 0.1

It also reports the CPU seconds the jobqueue and the hub's proxy spent per
submission (from /proc: robust to other load on the machine, unlike the rate),
and with ``--direct`` sends the load to the jobqueue's own port instead of
through the proxy (what the proxy costs; people always go through it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import shutil
import platform as host
import sqlite3
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.platform.harness import new_platform  # noqa: E402  (the same launcher the tests use)
from benchmarks._proc import cpu_s, environ_of, processes  # noqa: E402

SLEEPER = b"import time\ntime.sleep(3600)\n"


def setup(p) -> tuple[str, str]:
    admin = p.admin_token
    assert p.api("jobqueue", "POST", "workspaces", admin, json={"name": "bench"}).status_code == 201
    token = p.create_user("bencher")
    assert p.api("jobqueue", "PUT", "workspaces/bench/members/bencher", admin).status_code == 200
    up = p.api("jobqueue", "POST", "code", token, params={"workspace": "bench", "filename": "sleep.py"}, content=SLEEPER)
    code_id = up.json()["id"]
    hold = p.api("jobqueue", "POST", "trainings", token, json={
        "workspace": "bench", "name": "hold", "entrypoint": "sleep.py", "code_id": code_id, "gpus": 4, "preemptible": False})
    assert hold.status_code == 201, hold.text
    deadline = time.monotonic() + 30
    while p.api("jobqueue", "GET", f"jobs/{hold.json()['jobs'][0]['id']}", token).json()["state"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    return token, code_id


async def load(url: str, token: str, code_id: str, total: int, clients: int, sweep_share: float) -> tuple[list[float], list[int], float]:
    latencies: list[float] = []
    statuses: list[int] = []
    counter = iter(range(total))
    every = max(1, round(1 / sweep_share)) if sweep_share > 0 else 0

    async def client():
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"token {token}"}, timeout=60,
                                     limits=httpx.Limits(max_connections=1)) as http:
            for i in counter:
                body = {"workspace": "bench", "name": f"b-{i}", "entrypoint": "sleep.py", "code_id": code_id, "gpus": 1}
                if every and i % every == 0:
                    body["sweep"] = {"grid": {"lr": [0.1, 0.01], "batch": [32, 64]}, "parallel": 1}
                t0 = time.perf_counter()
                resp = await http.post("/services/jobqueue/api/v1/trainings", json=body)
                latencies.append(time.perf_counter() - t0)
                statuses.append(resp.status_code)

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies, statuses, time.perf_counter() - began


def _ab(url: str, token: str, body: dict, n: int, c: int, tmp: Path) -> subprocess.Popen:
    body_file = tmp / f"body-{c}.json"
    body_file.write_text(json.dumps(body))
    return subprocess.Popen(
        ["ab", "-q", "-k", "-n", str(n), "-c", str(c), "-s", "60", "-p", str(body_file), "-T", "application/json",
         "-H", f"Authorization: token {token}", f"{url}/services/jobqueue/api/v1/trainings"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def _parse_ab(out: str) -> dict:
    def num(pattern: str) -> float:
        m = re.search(pattern, out, re.M)
        return float(m.group(1)) if m else 0.0

    return {
        "complete": int(num(r"^Complete requests:\s+(\d+)")),
        "failed": int(num(r"^Failed requests:\s+(\d+)")),
        "non_2xx": int(num(r"^Non-2xx responses:\s+(\d+)")),
        "seconds": num(r"^Time taken for tests:\s+([\d.]+)"),
        "p50_ms": num(r"^\s+50%\s+(\d+)"),
        "p99_ms": num(r"^\s+99%\s+(\d+)"),
        "max_ms": num(r"^\s+100%\s+(\d+)"),
    }


def load_ab(url: str, token: str, code_id: str, total: int, clients: int, sweep_share: float) -> dict:
    """The same load with ApacheBench (C, event driven), so the client is not what is measured:
    one run sends the single-job submissions, a concurrent one the sweeps, with the
    clients split in proportion."""
    import tempfile

    tmp = Path(tempfile.mkdtemp())
    base = {"workspace": "bench", "name": "b", "entrypoint": "sleep.py", "code_id": code_id, "gpus": 1}
    sweeps = round(total * sweep_share)
    sweep_clients = max(1, round(clients * sweep_share)) if sweeps else 0
    runs = [_ab(url, token, base, total - sweeps, clients - sweep_clients, tmp)]
    if sweeps:
        sweep = {**base, "sweep": {"grid": {"lr": [0.1, 0.01], "batch": [32, 64]}, "parallel": 1}}
        runs.append(_ab(url, token, sweep, sweeps, sweep_clients, tmp))
    outs = [_parse_ab(r.communicate()[0]) for r in runs]
    return {
        "responses": sum(o["complete"] for o in outs),
        "accepted": sum(o["complete"] - o["non_2xx"] - o["failed"] for o in outs),
        "seconds": max(o["seconds"] for o in outs),
        # percentiles of the single-job run (90% of the load); the sweeps' are close
        "latency_ms_p50": outs[0]["p50_ms"],
        "latency_ms_p99": outs[0]["p99_ms"],
        "latency_ms_max": max(o["max_ms"] for o in outs),
        "sweep_latency_ms_p99": outs[1]["p99_ms"] if sweeps else None,
    }


def jobqueue_pid(data_dir: Path) -> int:
    for pid in processes("-m flightbase_jobqueue"):
        try:
            if environ_of(pid).get("FLIGHTBASE_DATA_DIR") == str(data_dir.resolve()) and "backends.runner" not in \
                    Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                return pid
        except OSError:
            continue
    raise RuntimeError("the jobqueue's process was not found")


def scheduler_passes(p, admin_token: str) -> dict:
    """The jobqueue's scheduling passes so far, from its Prometheus page (flightbase_scheduler_pass_seconds):
    each pass holds the event loop, so a long one delays every request in flight."""
    page = httpx.get(f"{p.url}/services/jobqueue/metrics", headers={"Authorization": f"token {admin_token}"},
                     timeout=30).text
    values = {}
    for line in page.splitlines():
        if line.startswith("flightbase_scheduler_pass_seconds_"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    count = values.get("flightbase_scheduler_pass_seconds_count", 0)
    over = lambda le: count - values.get(f'flightbase_scheduler_pass_seconds_bucket{{le="{le}"}}', count)  # noqa: E731
    return {"passes": int(count),
            "pass_ms_mean": round(1000 * values.get("flightbase_scheduler_pass_seconds_sum", 0) / max(1, count), 1),
            "passes_over_50ms": int(over("0.05")), "passes_over_100ms": int(over("0.1"))}


def audit(data_dir: Path) -> dict:
    """What the database holds of the load (everything but the job that holds the slots)."""
    db = sqlite3.connect(data_dir / "jobqueue.sqlite")
    load = "from trainings where workspace='bench' and name != 'hold'"
    ids = [r[0] for r in db.execute(f"select id {load}")]
    sweeps = db.execute(f"select count(*) {load} and spec like '%\"grid\": {{%'").fetchone()[0]
    jobs = db.execute(f"select count(*) from jobs where training_id in (select id {load})").fetchone()[0]
    return {
        "trainings_in_db": len(ids),
        "distinct_ids": len(set(ids)),
        "sweeps_in_db": sweeps,
        "jobs_in_db": jobs,
        "expected_jobs": len(ids) - sweeps + 4 * sweeps,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--submissions", type=int, default=10000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--sweep-share", type=float, default=0.1)
    ap.add_argument("--loadgen", choices=["ab", "httpx"], default="ab" if shutil.which("ab") else "httpx",
                    help="ab (Debian's apache2-utils; default when installed) or the Python httpx client")
    ap.add_argument("--direct", action="store_true",
                    help="send the load to the jobqueue's own port, not through the hub's proxy (to measure the proxy)")
    args = ap.parse_args(argv)
    import tempfile

    # production caching of token and workspace lookups (the tests turn it off)
    p = new_platform(Path(tempfile.mkdtemp()), gpus="4", extra_env={"FLIGHTBASE_AUTH_CACHE_SECONDS": "30"})
    p.start()
    try:
        token, code_id = setup(p)
        jobqueue = jobqueue_pid(p.data_dir)
        proxy = processes("configurable-http-proxy", f"--port {p.port}")
        url = f"http://127.0.0.1:{environ_of(jobqueue)['FLIGHTBASE_JOBQUEUE_PORT']}" if args.direct else p.url
        cpu_before = cpu_s(jobqueue), sum(cpu_s(pid) for pid in proxy)
        if args.loadgen == "ab":
            measured = {"loadgen": "ab", **load_ab(url, token, code_id, args.submissions, args.clients, args.sweep_share)}
            wall = measured.pop("seconds")
        else:
            lat, statuses, wall = asyncio.run(load(url, token, code_id, args.submissions, args.clients, args.sweep_share))
            measured = {"loadgen": "httpx", "responses": len(statuses), "accepted": statuses.count(201),
                        "latency_ms_p50": round(statistics.median(lat) * 1000, 1),
                        "latency_ms_p99": round(sorted(lat)[int(len(lat) * 0.99) - 1] * 1000, 1),
                        "latency_ms_max": round(max(lat) * 1000, 1)}
        jobqueue_cpu = cpu_s(jobqueue) - cpu_before[0]
        proxy_cpu = sum(cpu_s(pid) for pid in proxy) - cpu_before[1]
        time.sleep(1)
        result = {
            "submissions": args.submissions,
            "clients": args.clients,
            "sweep_share": args.sweep_share,
            "route": "direct to the jobqueue's port" if args.direct else "through the hub's proxy",
            **measured,
            "wall_seconds": round(wall, 2),
            "submissions_per_second": round(measured["accepted"] / wall, 1),
            # CPU per submission (ms): what the rate would be with a core each is 1000 / this
            "jobqueue_cpu_ms_per_submission": round(jobqueue_cpu * 1000 / max(1, measured["responses"]), 3),
            "proxy_cpu_ms_per_submission": round(proxy_cpu * 1000 / max(1, measured["responses"]), 3),
            "jobqueue_cpu_cores": round(jobqueue_cpu / wall, 2),
            "proxy_cpu_cores": round(proxy_cpu / wall, 2),
            "load_average_1min": round(os.getloadavg()[0], 2),
            "scheduler": scheduler_passes(p, p.admin_token),
            **audit(p.data_dir),
            "machine": f"{host.machine()}, {__import__('os').cpu_count()} cores, Python {host.python_version()}",
        }
    finally:
        p.remove()
    print(json.dumps(result, indent=1))
    # nothing lost, nothing doubled: every 201 is one training in the database, with its jobs
    ok = result["accepted"] == result["trainings_in_db"] == result["distinct_ids"] \
        and result["jobs_in_db"] == result["expected_jobs"] and result["accepted"] >= args.submissions
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

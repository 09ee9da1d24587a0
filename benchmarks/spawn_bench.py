"""Spawn latency of a Jupyter training: Flightbase's local spawner vs JupyterHub's plain one.

Two real platforms run side by side on this machine (``flightbase up``, one
with Flightbase's spawner, one whose hub is given JupyterHub's plain
``LocalProcessSpawner`` through FLIGHTBASE_HUB_EXTRA_CONFIG), the same
JupyterLab command and the same system account. Each round starts and
stops one server on each, alternating which goes first; a start is timed
from the REST request (``POST /hub/api/users/{name}/servers/{server}``) to
the server answering through the proxy. The Flightbase start includes the
options check against the registry, the GPU lease (asked of the jobqueue
and granted by the scheduler's next pass), the workspace folder and the
dataset links.

    .venv/bin/python benchmarks/spawn_bench.py --rounds 7
"""

from __future__ import annotations

import argparse
import json
import platform as host
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.platform.harness import new_platform  # noqa: E402

PLAIN = """
import os, sys
c.JupyterHub.spawner_class = "jupyterhub.spawner.LocalProcessSpawner"
c.LocalProcessSpawner.cmd = [os.path.join(os.path.dirname(sys.executable), "jupyterhub-singleuser")]
c.LocalProcessSpawner.notebook_dir = "{folder}"
"""


def start_and_time(p, user: str, server: str, options: dict | None) -> float:
    """Seconds from the hub's start request until the server answers through the proxy
    (``p.began_at``: when it was asked, for a benchmark that reads the server's own log)."""
    began = time.perf_counter()
    p.began_at = time.time()
    resp = p.hub("POST", f"users/{user}/servers/{server}", json=options or {})
    if resp.status_code not in (201, 202):
        raise RuntimeError(f"{resp.status_code} {resp.text}\n{p.log_tail()}")
    url = f"{p.url}/user/{user}/{server}/api"
    while True:
        model = p.hub("GET", f"users/{user}").json()["servers"].get(server)
        if model and model["ready"] and httpx.get(url, timeout=5).status_code == 200:
            return time.perf_counter() - began
        time.sleep(0.02)


def stop(p, user: str, server: str) -> None:
    p.hub("DELETE", f"users/{user}/servers/{server}")
    while p.hub("GET", f"users/{user}").json()["servers"].get(server):
        time.sleep(0.1)


def figures(times: dict[str, list[float]]) -> dict:
    """What both spawn benchmarks report of their rounds: each platform's start times and median,
    and the ratio of Flightbase's median to the plain spawner's."""
    fb_median, plain_median = statistics.median(times["flightbase"]), statistics.median(times["plain"])
    return {
        "flightbase_s": [round(t, 3) for t in times["flightbase"]],
        "plain_s": [round(t, 3) for t in times["plain"]],
        "flightbase_median_s": round(fb_median, 3),
        "plain_median_s": round(plain_median, 3),
        "ratio": round(fb_median / plain_median, 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()

    user = f"sb{uuid.uuid4().hex[:6]}"
    fb = new_platform(Path(tempfile.gettempdir()), gpus="2").start()
    plain = None
    try:
        fb.create_user(user)
        assert fb.api("jobqueue", "POST", "workspaces", fb.admin_token, json={"name": "bench", "settings": {}}).status_code == 201
        assert fb.api("jobqueue", "PUT", f"workspaces/bench/members/{user}", fb.admin_token).status_code == 200
        options = {"workspace": "bench", "gpus": 1}
        start_and_time(fb, user, "warm", options)  # makes the account and its folder; warms the caches
        stop(fb, user, "warm")
        folder = fb.data_dir / "home" / user / "bench"
        extra = Path(tempfile.mkdtemp(prefix="spawn-bench-")) / "plain_spawner.py"
        extra.write_text(PLAIN.format(folder=folder))
        plain = new_platform(Path(tempfile.gettempdir()), gpus="2",
                             extra_env={"FLIGHTBASE_HUB_EXTRA_CONFIG": str(extra)}).start()
        plain.create_user(user)
        start_and_time(plain, user, "warm", None)
        stop(plain, user, "warm")

        times = {"flightbase": [], "plain": []}
        for i in range(args.rounds):
            order = [("flightbase", fb, options), ("plain", plain, None)]
            for name, p, opts in (order if i % 2 == 0 else order[::-1]):
                times[name].append(start_and_time(p, user, f"r{i}", opts))
                stop(p, user, f"r{i}")
        print(json.dumps({
            "machine": f"{host.node()} {host.machine()} ({host.processor() or 'cpu'}), Python {host.python_version()}",
            "rounds": args.rounds,
            **figures(times),
        }, indent=2))
    finally:
        fb.remove()
        if plain is not None:
            plain.remove()


if __name__ == "__main__":
    main()

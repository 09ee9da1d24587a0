"""Spawn latency of a Jupyter training in a container: Flightbase's docker spawner vs JupyterHub's plain DockerSpawner.

Two real platforms run side by side on this machine (``flightbase up``): one
with ``FLIGHTBASE_BACKEND=docker`` (``FlightbaseDockerSpawner``), one whose hub
is given JupyterHub's plain ``DockerSpawner`` through
FLIGHTBASE_HUB_EXTRA_CONFIG, with the same image (``flightbase/notebook:0.1.0``),
the same command and the host's network (the hub listens on loopback; the
plain one is set up the way DockerSpawner's docs say for ``network_mode=host``).
Each round starts and stops one server on each, alternating which goes
first; a start is timed from the REST request (``POST
/hub/api/users/{name}/servers/{server}``) to the server answering through
the proxy; the part before the engine creates the container (the spawner's
own work) is read from the engine's events. The Flightbase start includes the options check against the
registry, the account, the image check, the GPU-slot lease (asked of the
jobqueue, granted by the scheduler's next pass), ``~/<workspace>`` made as the
person, a dataset mounted read-only, and the container's limits.

Run it as root (the servers run as the person's account), with a Docker engine
and the notebook image (``make run`` builds it):

    .venv/bin/python benchmarks/notebook_spawn_bench.py --rounds 9
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
import threading
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.spawn_bench import figures, start_and_time, stop  # noqa: E402
from tests.platform.harness import FLIGHTBASE, free_port, new_platform  # noqa: E402

IMAGE = "flightbase/notebook:0.1.0"

PLAIN = '''
from dockerspawner import DockerSpawner


class HostNetworkDockerSpawner(DockerSpawner):
    """JupyterHub's DockerSpawner, on the host's network as its get_ip_and_port docstring says."""

    async def get_ip_and_port(self):
        return self.ip, self.port


c.JupyterHub.spawner_class = HostNetworkDockerSpawner
c.DockerSpawner.image = "{image}"
c.DockerSpawner.cmd = ["jupyterhub-singleuser"]
c.DockerSpawner.network_name = "host"
c.DockerSpawner.use_internal_ip = True  # no port to publish (the SDK refuses port bindings with network_mode=host)
c.DockerSpawner.ip = "127.0.0.1"
c.DockerSpawner.port = {port}
c.DockerSpawner.remove = True
'''


class Creations:
    """When the engine created each container (its event stream): splits a start into the spawner's
    part (request to container created) and the engine's and JupyterLab's (created to answering)."""

    def __init__(self):
        import docker

        self._events = docker.from_env().events(decode=True, filters={"type": "container", "event": "create"})
        self.at: dict[str, float] = {}
        threading.Thread(target=self._follow, daemon=True).start()

    def _follow(self):
        try:
            for event in self._events:
                self.at.setdefault(event["Actor"]["Attributes"]["name"], event["timeNano"] / 1e9)
        except Exception:  # closed at the end
            pass

    def close(self):
        self._events.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--gpus", type=int, choices=(0, 1), default=1,
                    help="the Flightbase server's GPU slot: 1 (a lease, pinned to its core) or 0 (neither)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run it as root: Flightbase runs each server as its person's own account")

    user = f"nb{uuid.uuid4().hex[:6]}"
    fb = new_platform(Path(tempfile.gettempdir()), gpus="2", extra_env={"FLIGHTBASE_BACKEND": "docker"}).start()
    plain = None
    try:
        token = fb.create_user(user)
        assert fb.api("jobqueue", "POST", "workspaces", fb.admin_token, json={"name": "bench", "settings": {}}).status_code == 201
        assert fb.api("jobqueue", "PUT", f"workspaces/bench/members/{user}", fb.admin_token).status_code == 200
        data = Path(tempfile.mkdtemp(prefix="nb-bench-")) / "cats"
        data.mkdir()
        (data / "a.txt").write_text("meow\n")
        subprocess.run([str(FLIGHTBASE), "datasets", "upload", "-w", "bench", "--quiet", str(data)], check=True,
                       env=dict(os.environ, FLIGHTBASE_URL=fb.url, FLIGHTBASE_TOKEN=token), capture_output=True)
        options = {"workspace": "bench", "image": "notebook", "gpus": args.gpus, "datasets": ["cats"]}
        start_and_time(fb, user, "warm", options)  # the account, its folder, the image check; warms the caches
        stop(fb, user, "warm")
        extra = data.parent / "plain_spawner.py"
        extra.write_text(PLAIN.format(image=IMAGE, port=free_port()))
        plain = new_platform(Path(tempfile.gettempdir()), gpus="2",
                             extra_env={"FLIGHTBASE_HUB_EXTRA_CONFIG": str(extra)}).start()
        plain.create_user(user)
        start_and_time(plain, user, "warm", None)
        stop(plain, user, "warm")

        creations = Creations()
        prefixes = {"flightbase": "flightbase-notebook", "plain": "jupyter"}  # their containers' names
        times = {"flightbase": [], "plain": []}
        to_create = {"flightbase": [], "plain": []}
        for i in range(args.rounds):
            order = [("flightbase", fb, options), ("plain", plain, None)]
            for name, p, opts in (order if i % 2 == 0 else order[::-1]):
                times[name].append(start_and_time(p, user, f"r{i}", opts))
                created = creations.at.get(f"{prefixes[name]}-{user}--r{i}")
                if created is not None:
                    to_create[name].append(created - p.began_at)
                stop(p, user, f"r{i}")
        creations.close()
        engine = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True,
                                text=True).stdout.strip()
        print(json.dumps({
            "machine": f"{host.node()} {host.machine()}, {os.cpu_count()} cores, Python {host.python_version()}, "
                       f"Docker Engine {engine}",
            "image": IMAGE,
            "rounds": args.rounds,
            "flightbase_options": options,
            **figures(times),
            # the spawner's own part: from the request to the engine creating the container
            "flightbase_to_create_median_s": round(statistics.median(to_create["flightbase"] or [0]), 3),
            "plain_to_create_median_s": round(statistics.median(to_create["plain"] or [0]), 3),
        }, indent=2))
    finally:
        fb.remove()
        if plain is not None:
            plain.remove()


if __name__ == "__main__":
    main()

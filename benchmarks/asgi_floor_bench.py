"""The CPU floor of one submission through the jobqueue's web stack, with nothing behind it (#17 part 6).

Part 6's target is 0.1 of a core over Kueue's 351 s for 15,000 workloads: 2.3 ms of the
jobqueue's CPU per workload, its API included (each workload is one ``POST /trainings``).
This measures what the HTTP stack alone costs per request on this machine, before any of the
platform's own work: uvicorn (uvloop, httptools, as the jobqueue runs it) serving, in turn,

- ``fastapi``: a FastAPI route with a pydantic body of a submission's fields and a dict answer
  (FastAPI validates the body, solves the route's dependencies, serialises the answer);
- ``fastapi-response``: the same route returning a ready ``Response`` (no answer serialising);
- ``starlette``: a plain Starlette route that validates the body with the same model itself;
- ``asgi``: a bare ASGI callable that reads the body and answers fixed bytes (uvicorn alone).

Each server gets ``--requests`` POSTs at ``--rate`` per second (Kueue's baseline submits about
75/s over our drain) from an httpx client in another process, on keep-alive connections as the
proxy keeps them; the figure is the server process's user + system CPU (from /proc) divided by
the requests, after a warm-up of 50.

    .venv/bin/python benchmarks/asgi_floor_bench.py                  # all four, 3,000 requests each
    .venv/bin/python benchmarks/asgi_floor_bench.py --only asgi fastapi --requests 1000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform as host
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]
from benchmarks._proc import cpu_s  # noqa: E402
from tests.platform.harness import free_port  # noqa: E402

APP = '''
import json
from fastapi import FastAPI, Response
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route


class Body(BaseModel):
    workspace: str
    name: str
    entrypoint: str
    code_id: str
    gpus: int
    priority: int
    env: dict[str, str]


def answer(b: Body) -> dict:
    return {"id": "0123456789ab", "workspace": b.workspace, "name": b.name,
            "jobs": [{"id": "0123456789abcdef", "state": "queued", "gpus": b.gpus}]}


fastapi = FastAPI()


@fastapi.post("/trainings", status_code=201)
async def create(b: Body):
    return answer(b)


fastapi_response = FastAPI()


@fastapi_response.post("/trainings", status_code=201)
async def create_response(b: Body):
    return Response(json.dumps(answer(b)), status_code=201, media_type="application/json")


async def create_starlette(request: Request):
    b = Body.model_validate_json(await request.body())
    return Response(json.dumps(answer(b)), status_code=201, media_type="application/json")


starlette = Starlette(routes=[Route("/trainings", create_starlette, methods=["POST"])])

ANSWER = json.dumps({"id": "0123456789ab", "jobs": [{"id": "0123456789abcdef", "state": "queued"}]}).encode()


async def asgi(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 201,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(ANSWER)).encode())]})
    await send({"type": "http.response.body", "body": ANSWER})
'''

VARIANTS = {"fastapi": "fastapi", "fastapi-response": "fastapi_response", "starlette": "starlette", "asgi": "asgi"}
BODY = {"workspace": "cq-00", "name": "small-1", "entrypoint": "job.py", "code_id": "0123456789abcdef",
        "gpus": 1, "priority": 25, "env": {"SIM_SECONDS": "0.2"}}


async def load(port: int, pid: int, requests: int, rate: float) -> dict:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=httpx.Limits(max_connections=50)) as c:
        for _ in range(50):
            (await c.post("/trainings", json=BODY)).raise_for_status()
        c0, t0 = cpu_s(pid), time.monotonic()

        async def one(i: int) -> None:
            await asyncio.sleep(i / rate)
            (await c.post("/trainings", json=BODY)).raise_for_status()

        await asyncio.gather(*(one(i) for i in range(requests)))
        cpu = cpu_s(pid) - c0
        return {"requests": requests, "seconds": round(time.monotonic() - t0, 1),
                "server_cpu_s": round(cpu, 2), "cpu_ms_per_request": round(cpu / requests * 1000, 3)}


def measure(variant: str, requests: int, rate: float, workdir: str) -> dict:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", f"floor_app:{VARIANTS[variant]}", "--port", str(port), "--loop", "uvloop",
         "--http", "httptools", "--log-level", "warning", "--no-access-log"], cwd=workdir)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"{variant}: the server did not start")
                time.sleep(0.1)
        return {"variant": variant, **asyncio.run(load(port, server.pid, requests, rate))}
    finally:
        server.terminate()
        server.wait(10)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--rate", type=float, default=110.0, help="requests per second")
    ap.add_argument("--only", nargs="+", choices=sorted(VARIANTS), help="these variants only")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as workdir:
        with open(os.path.join(workdir, "floor_app.py"), "w") as f:
            f.write(APP)
        results = [measure(v, a.requests, a.rate, workdir) for v in (a.only or VARIANTS)]
    report = {"results": results, "load_average_1min": round(os.getloadavg()[0], 2),
              "machine": f"{host.machine()}, {os.cpu_count()} cores, Python {host.python_version()}"}
    if a.json:
        print(json.dumps(report, indent=2))
    else:
        for r in results:
            print(f"{r['variant']:18s} {r['cpu_ms_per_request']:.3f} ms CPU per request "
                  f"({r['requests']} in {r['seconds']} s)")
        print(f"load {report['load_average_1min']}, {report['machine']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

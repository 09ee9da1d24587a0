"""The client installs alone (#19): a fresh venv with only the ``flightbase-client`` wheel
(built from client/) has no FastAPI, SQLAlchemy, Alembic or JupyterHub and none of the
server's packages, and its ``flightbase`` command talks to a running platform; the server's
subcommands say that they need the server. The wheel's dependencies come from pip's
configured index, as ``make test``'s own installs do."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .harness import ROOT
from .world import JOBS, wait_idle, wait_job

pytestmark = pytest.mark.slow

SERVER_SIDE = ("fastapi", "sqlalchemy", "alembic", "jupyterhub", "uvicorn", "docker",
               "flightbase_server", "flightbase_jobqueue", "flightbase_registry", "flightbase_spawner")


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("client-alone")
    wheels = work / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(wheels), str(ROOT / "client")], check=True, timeout=300)
    (wheel,) = wheels.glob("flightbase_client-*.whl")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)], check=True,
                   timeout=600)
    return venv


def test_the_client_venv_holds_no_server_dependency(client_venv):
    probe = ("import importlib.util, json, sys; "
             f"print(json.dumps({{m: importlib.util.find_spec(m) is not None for m in {SERVER_SIDE!r}}}))")
    # (run outside the checkout: `python -c` puts its folder first on sys.path)
    found = json.loads(subprocess.run([str(client_venv / "bin" / "python"), "-c", probe], check=True,
                                      capture_output=True, text=True, timeout=60, cwd=client_venv).stdout)
    assert not any(found.values()), found
    # what the client does import, all of it, works there
    subprocess.run([str(client_venv / "bin" / "python"), "-c",
                    "import flightbase.client, flightbase.cli, flightbase.metrics, flightbase.archives, "
                    "flightbase.uploads, flightbase.grid, flightbase.usage_params"], check=True, timeout=60,
                   cwd=client_venv)


def test_the_client_cli_talks_to_the_platform_and_sends_server_commands_away(client_venv, platform, world):
    flightbase = client_venv / "bin" / "flightbase"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(client_venv.parent),
           "FLIGHTBASE_URL": platform.url, "FLIGHTBASE_TOKEN": world.tokens["owner"]}

    def cli(*args, check=True):
        return subprocess.run([str(flightbase), *args], env=env, capture_output=True, text=True, timeout=120,
                              check=check, cwd=client_venv)

    listed = json.loads(cli("workspaces", "list", "--json").stdout)
    assert world.workspace in [w["name"] for w in listed], listed
    wait_idle(platform)
    # a training submitted from the client-only venv runs, and its logs come back through it
    # (in the README's order: the options after the code, the script's own arguments after --;
    # "--lr 2" is what makes the loss below)
    submitted = json.loads(cli("submit", str(JOBS / "report.py"), "-w", world.workspace, "--json",
                               "-n", "from-client", "--", "--lr", "2").stdout)
    job = submitted["jobs"][0]["id"]
    assert wait_job(platform, world.tokens["owner"], job)["state"] == "succeeded"
    assert "loss=0.6667 step=3" in cli("logs", job).stdout
    shown = json.loads(cli("jobs", "show", job, "--json").stdout)
    assert shown["id"] == job and shown["state"] == "succeeded", shown
    # the workspace's trainings, newest first: this one, with its job's outcome
    listing = cli("trainings", "-w", world.workspace).stdout.splitlines()
    assert listing[0].split()[:4] == ["ID", "WORKSPACE", "NAME", "STATE"], listing
    row = next(line for line in listing if line.startswith(submitted["id"]))
    assert row.split()[1:4] == [world.workspace, "from-client", "succeeded"] and "1 succeeded" in row, row
    assert submitted["id"] in [t["id"] for t in json.loads(cli("trainings", "--json").stdout)]
    # a cancel while it runs: the answer says it is being cancelled, not "running"
    sleeper = json.loads(cli("submit", str(JOBS / "sleeper.py"), "-w", world.workspace, "--json",
                             "--", "--seconds", "300").stdout)
    sleeping = sleeper["jobs"][0]["id"]
    wait_job(platform, world.tokens["owner"], sleeping, states={"running"})
    assert cli("cancel", sleeping).stdout.strip() == f"job {sleeping}: cancelling (stops within seconds)"
    assert wait_job(platform, world.tokens["owner"], sleeping)["state"] == "cancelled"
    assert "sleeping" in cli("logs", sleeping).stdout
    for command in (["up"], ["up", "--port", "9"], ["bench", "replay", "trace.csv"]):
        r = cli(*command, check=False)
        assert r.returncode == 2, (command, r.stdout, r.stderr)
        assert "needs the Flightbase server: pip install flightbase-server" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr

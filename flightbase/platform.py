"""``flightbase up``: prepare the data directory and start the embedded platform.

Starts JupyterHub (which starts its proxy and the two services) with the
settings exported as FLIGHTBASE_* variables, and on the very first start
creates the initial administrator with a password and an API token that are
generated (or taken from FLIGHTBASE_ADMIN_PASSWORD / FLIGHTBASE_ADMIN_TOKEN)
and printed once.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

from flightbase import gpus, secrets
from flightbase.hub.config import DOCKER_REGISTRY, ROOT, find_proxy_command
from flightbase.settings import PlatformSettings


class UsageError(Exception):
    """Bad input from the command line: printed as one line, exit code 2."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hub_config_file() -> Path:
    path = ROOT / "hub_config" / "embedded.py"
    if not path.exists():
        raise UsageError(f"hub config not found at {path}; run from a Flightbase checkout")
    return path


def oci_registry(environ: dict) -> dict:
    """Use the OCI registry the operator names, else start Debian's docker-registry, else none."""
    url = environ.get("FLIGHTBASE_OCI_REGISTRY_URL")
    if url:
        return {"oci_registry_url": url}
    if os.path.exists(DOCKER_REGISTRY):
        port = free_port()
        return {"oci_registry_url": f"http://127.0.0.1:{port}", "oci_registry_port": port}
    return {}


def prepare(
    *, port: int, data_dir: Path, gpu_spec: str, ip: str = "127.0.0.1", admin_user: str | None = None,
    policy: str = "las", environ: dict | None = None,
) -> tuple[PlatformSettings, dict[str, str], list[str]]:
    """Return (settings, environment for the hub, lines to print)."""
    environ = dict(os.environ if environ is None else environ)
    try:
        inventory = gpus.inventory(gpu_spec)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not 1 <= port <= 65535:
        raise UsageError(f"--port: {port} is not a TCP port")
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o711)
    (data_dir / "hub").mkdir(exist_ok=True)
    admin = admin_user or environ.get("FLIGHTBASE_ADMIN_USER") or "admin"
    settings = PlatformSettings(
        data_dir=data_dir,
        ip=ip,
        port=port,
        hub_port=free_port(),
        proxy_api_port=free_port(),
        jobqueue_port=free_port(),
        registry_port=free_port(),
        registry_data_port=int(environ.get("FLIGHTBASE_REGISTRY_DATA_PORT") or free_port()),
        admin_user=admin,
        gpus=tuple(inventory),
        scheduler_policy=policy,
        auth_cache_seconds=int(environ.get("FLIGHTBASE_AUTH_CACHE_SECONDS", "30")),
        jobqueue_db_url=environ.get("FLIGHTBASE_JOBQUEUE_DB_URL", ""),
        registry_db_url=environ.get("FLIGHTBASE_REGISTRY_DB_URL", ""),
        **oci_registry(environ),
    )
    secrets.load_or_create(data_dir)
    env = {**environ, **settings.to_env()}
    lines = [f"Flightbase at {settings.public_url}  (data in {data_dir})"]
    kind = inventory[0]["kind"] if inventory else "none"
    if kind == "cpu-slot":
        lines.append(f"No GPU found: offering {len(inventory)} CPU slots (kind: cpu-slot) instead.")
    else:
        lines.append(f"GPUs: {len(inventory)} x {inventory[0]['name'] if inventory else '-'}")
    if not settings.oci_registry_url:
        lines.append("No OCI registry (apt-get install docker-registry): image uploads are off; "
                     "images registered by reference still work.")

    first_start = not (settings.hub_dir / "jupyterhub.sqlite").exists()
    token = environ.get("FLIGHTBASE_ADMIN_TOKEN")
    if first_start:
        password = environ.get("FLIGHTBASE_ADMIN_PASSWORD") or secrets.new_token()[:24]
        token = token or secrets.new_token()
        env["FLIGHTBASE_INITIAL_ADMIN_PASSWORD"] = password
        lines.append(f"Log in at {settings.public_url}/hub/login as {admin!r}")
        if environ.get("FLIGHTBASE_ADMIN_PASSWORD"):
            lines.append("  password: the one in FLIGHTBASE_ADMIN_PASSWORD")
        else:
            lines.append(f"  password: {password}   (shown once; change it at /hub/change-password)")
        if environ.get("FLIGHTBASE_ADMIN_TOKEN"):
            lines.append("  API token: the one in FLIGHTBASE_ADMIN_TOKEN")
        else:
            lines.append(f"  API token: {token}   (shown once; for scripts: export FLIGHTBASE_TOKEN=...)")
    else:
        lines.append(f"Log in at {settings.public_url}/hub/login (administrator: {admin!r})")
    if token:
        env["FLIGHTBASE_INITIAL_ADMIN_TOKEN"] = token
    for key in ("FLIGHTBASE_ADMIN_PASSWORD", "FLIGHTBASE_ADMIN_TOKEN"):
        env.pop(key, None)
    return settings, env, lines


def up(*, port: int, data_dir: Path, gpu_spec: str, ip: str, policy: str) -> int:
    settings, env, lines = prepare(port=port, data_dir=data_dir, gpu_spec=gpu_spec, ip=ip, policy=policy)
    try:
        find_proxy_command()
    except RuntimeError as exc:
        raise UsageError(str(exc)) from None
    config = hub_config_file()
    for line in lines:
        print(line, flush=True)
    os.chdir(settings.hub_dir)
    argv = [sys.executable, "-m", "jupyterhub", "-f", str(config)]
    os.execvpe(argv[0], argv, env)
    return 0  # not reached

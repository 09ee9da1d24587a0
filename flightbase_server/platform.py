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

from flightbase_server import gpus, secrets
from flightbase_server.hub.config import CONFIG_FILES, DOCKER_REGISTRY, find_proxy_command
from flightbase_server.settings import PlatformSettings, parse_preemption_budget


class UsageError(Exception):
    """Bad input from the command line: printed as one line, exit code 2."""


def free_ports(count: int, taken: set[int] = frozenset()) -> list[int]:
    """``count`` distinct free ports, none of them in ``taken``.

    Each port is held open until all are chosen: the kernel may hand out a port it
    has just handed out once that socket is closed, and none of the services binds
    its port until later. ``taken`` holds the public port, which the proxy binds only
    after the services' ports are chosen.
    """
    held: list[socket.socket] = []
    try:
        ports: list[int] = []
        while len(ports) < count:
            s = socket.socket()
            held.append(s)
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            if port not in taken and port not in ports:
                ports.append(port)
        return ports
    finally:
        for s in held:
            s.close()


def free_port() -> int:
    return free_ports(1)[0]


def hub_config_file() -> Path:
    path = CONFIG_FILES / "embedded.py"
    if not path.exists():
        raise UsageError(f"hub config not found at {path}: the flightbase-server installation is incomplete")
    return path


def oci_registry(environ: dict, port: int) -> dict:
    """Use the OCI registry the operator names, else start Debian's docker-registry on ``port``, else none."""
    url = environ.get("FLIGHTBASE_OCI_REGISTRY_URL")
    if url:
        return {"oci_registry_url": url}
    if os.path.exists(DOCKER_REGISTRY):
        return {"oci_registry_url": f"http://127.0.0.1:{port}", "oci_registry_port": port}
    return {}


# The platform's own state in the data directory, and the mode each must have: what
# `flightbase up` creates, or corrects when an earlier version left it readable to others.
# People's folders (home/, jobs/*/work, checkpoints) are theirs and are never walked here.
STATE_MODES = {
    ".": 0o711, "secrets.json": 0o600, "registry.json": 0o600, "hub": 0o700, "oci": 0o700, "code": 0o700,
    "uploads": 0o700, "jobs": 0o711, "home": 0o711, "datasets": 0o711, "workspaces": 0o711,
    "jobqueue.sqlite": 0o600, "registry.sqlite": 0o600,
}


def secure_state(data_dir: Path) -> None:
    """Give the platform's state the modes of :data:`STATE_MODES` (files in ``hub/`` too: 0600).

    Only entries directly in the data directory (which people cannot write) and
    in ``hub/`` are touched, through ``lstat`` and never through a link.
    """
    import stat

    def fix(path: Path, mode: int) -> None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if not stat.S_ISLNK(st.st_mode) and stat.S_IMODE(st.st_mode) != mode:
            os.chmod(path, mode, follow_symlinks=False)

    for name, mode in STATE_MODES.items():
        fix(data_dir / name, mode)
    for entry in os.scandir(data_dir):  # SQLite's journals and WAL files beside the databases
        if entry.name.endswith((".sqlite-journal", ".sqlite-wal", ".sqlite-shm")):
            fix(Path(entry.path), 0o600)
    hub = data_dir / "hub"
    if hub.is_dir() and not hub.is_symlink():
        for entry in os.scandir(hub):
            fix(Path(entry.path), 0o700 if entry.is_dir(follow_symlinks=False) else 0o600)


def docker_engine() -> str | None:
    """The version of the Docker engine that answers here, or None."""
    try:
        import docker

        return docker.from_env(timeout=5).version().get("Version", "?")
    except Exception:  # no SDK, no socket, no permission: no engine for us
        return None


def choose_backend(environ: dict) -> tuple[str, str]:
    """(backend, a line saying where work runs): FLIGHTBASE_BACKEND, else containers when an engine answers."""
    wanted = environ.get("FLIGHTBASE_BACKEND", "")
    if wanted not in ("", "docker", "local", "sim"):
        raise UsageError(f"FLIGHTBASE_BACKEND: {wanted!r} is not a backend of `flightbase up` (docker or local; "
                         "sim for benchmarks and tests; kubernetes is installed with the Helm chart)")
    if wanted == "sim":  # benchmarks and tests only: no job runs (flightbase_jobqueue.backends.simulated)
        return "sim", ("Jobs are SIMULATED (FLIGHTBASE_BACKEND=sim, for benchmarks and tests): nothing runs, each "
                       "job ends after its declared duration; notebooks run as processes on this machine.")
    engine = docker_engine() if wanted in ("", "docker") else None
    if wanted == "docker" and engine is None:
        raise UsageError("FLIGHTBASE_BACKEND: docker, but no Docker engine answers here (`make run` installs and "
                         "starts one as root)")
    if engine is not None:
        return "docker", f"Jobs and notebooks run in containers of their workspace's image (Docker Engine {engine})."
    why = "FLIGHTBASE_BACKEND=local" if wanted == "local" else "no Docker engine answers here"
    return "local", f"Jobs and notebooks run as processes on this machine's Python environment ({why})."


def sim_speed(environ: dict) -> float:
    """FLIGHTBASE_SIM_SPEED: how much faster than real time the sim backend's jobs run (benchmarks, tests)."""
    raw = (environ.get("FLIGHTBASE_SIM_SPEED") or "").strip()
    try:
        speed = float(raw) if raw else PlatformSettings.sim_speed
    except ValueError:
        speed = 0.0
    if not 0 < speed < float("inf"):
        raise UsageError(f"FLIGHTBASE_SIM_SPEED: {raw!r} is not a positive number")
    return speed


def retention_days(environ: dict) -> int:
    """FLIGHTBASE_AUDIT_RETENTION_DAYS: how many days audit rows are kept (0: for ever)."""
    raw = (environ.get("FLIGHTBASE_AUDIT_RETENTION_DAYS") or "").strip()
    if not raw:
        return PlatformSettings.audit_retention_days
    if not raw.isdigit():
        raise UsageError(f"FLIGHTBASE_AUDIT_RETENTION_DAYS: {raw!r} is not a whole number of days (0 keeps the "
                         "audit log for ever)")
    return int(raw)


def preemption_budget(environ: dict) -> str:
    """FLIGHTBASE_PREEMPTION_BUDGET: the las scheduler's preemption budget per job, or "none" (0.24 by default)."""
    raw = (environ.get("FLIGHTBASE_PREEMPTION_BUDGET") or "").strip() or PlatformSettings.preemption_budget
    try:
        parse_preemption_budget(raw)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return raw


def lease_check_seconds(environ: dict) -> float:
    raw = environ.get("FLIGHTBASE_LEASE_CHECK_SECONDS") or str(PlatformSettings.lease_check_seconds)
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise UsageError(f"FLIGHTBASE_LEASE_CHECK_SECONDS: {raw!r} is not a positive number of seconds")
    return value


def prepare(
    *, port: int, data_dir: Path, gpu_spec: str, ip: str = "127.0.0.1", admin_user: str | None = None,
    policy: str = "las", environ: dict | None = None, single_user_dev: bool = False,
) -> tuple[PlatformSettings, dict[str, str], list[str]]:
    """Return (settings, environment for the hub, lines to print)."""
    environ = dict(os.environ if environ is None else environ)
    # Everything the platform and its services write (databases, secrets, logs, uploads) is
    # its own alone unless it says otherwise; the hub and services inherit this.
    os.umask(0o077)
    try:
        inventory = gpus.inventory(gpu_spec)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not 1 <= port <= 65535:
        raise UsageError(f"--port: {port} is not a TCP port")
    admin = admin_user or environ.get("FLIGHTBASE_ADMIN_USER") or "admin"
    if single_user_dev and os.geteuid() == 0:
        raise UsageError("--single-user-dev: only for a platform that does not run as root "
                         "(as root, everyone's code runs as their own account)")
    backend, runs_where = choose_backend(environ)
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "hub").mkdir(exist_ok=True)
    secure_state(data_dir)
    data_port = int(environ.get("FLIGHTBASE_REGISTRY_DATA_PORT") or 0)
    hub_port, proxy_api_port, jobqueue_port, registry_port, free_data_port, oci_port = free_ports(
        6, taken={port, data_port})
    settings = PlatformSettings(
        data_dir=data_dir,
        ip=ip,
        port=port,
        hub_port=hub_port,
        proxy_api_port=proxy_api_port,
        proxy_command=environ.get("FLIGHTBASE_PROXY_COMMAND", ""),
        jobqueue_port=jobqueue_port,
        registry_port=registry_port,
        registry_data_port=data_port or free_data_port,
        admin_user=admin,
        gpus=tuple(inventory),
        scheduler_policy=policy,
        auth_cache_seconds=int(environ.get("FLIGHTBASE_AUTH_CACHE_SECONDS", "30")),
        lease_check_seconds=lease_check_seconds(environ),
        max_body_bytes=int(environ.get("FLIGHTBASE_MAX_BODY_BYTES") or PlatformSettings.max_body_bytes),
        jobqueue_db_url=environ.get("FLIGHTBASE_JOBQUEUE_DB_URL", ""),
        registry_db_url=environ.get("FLIGHTBASE_REGISTRY_DB_URL", ""),
        single_user_dev=admin if single_user_dev else "",
        audit_retention_days=retention_days(environ),
        backend=backend,
        sim_speed=sim_speed(environ),
        preemption_budget=preemption_budget(environ),
        **oci_registry(environ, oci_port),
    )
    secrets.load_or_create(data_dir)
    env = {**environ, **settings.to_env()}
    lines = [f"Flightbase at {settings.public_url}  (data in {data_dir})"]
    kind = inventory[0]["kind"] if inventory else "none"
    if kind == "cpu-slot":
        lines.append(f"No GPU found: offering {len(inventory)} CPU slots (kind: cpu-slot) instead.")
    else:
        lines.append(f"GPUs: {len(inventory)} x {inventory[0]['name'] if inventory else '-'}")
    lines.append(runs_where)
    if os.geteuid() != 0:
        lines.append(f"Not running as root: only {admin!r} may run code, as this account (one-person development "
                     "mode)." if single_user_dev else
                     "Not running as root: jobs and notebooks are refused (run as root, or choose the "
                     "one-person development mode with --single-user-dev).")
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


def up(*, port: int, data_dir: Path, gpu_spec: str, ip: str, policy: str, single_user_dev: bool = False) -> int:
    settings, env, lines = prepare(port=port, data_dir=data_dir, gpu_spec=gpu_spec, ip=ip, policy=policy,
                                   single_user_dev=single_user_dev)
    try:
        # resolved here, in the folder `flightbase up` runs in (its ./node_modules), for the hub
        env["FLIGHTBASE_PROXY_COMMAND"] = find_proxy_command(env.get("FLIGHTBASE_PROXY_COMMAND", ""))
    except RuntimeError as exc:
        raise UsageError(str(exc)) from None
    config = hub_config_file()
    for line in lines:
        print(line, flush=True)
    os.chdir(settings.hub_dir)
    argv = [sys.executable, "-m", "jupyterhub", "-f", str(config)]
    os.execvpe(argv[0], argv, env)
    return 0  # not reached

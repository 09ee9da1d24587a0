"""Deployment settings of the embedded platform, read once at start-up.

``flightbase up`` builds a :class:`PlatformSettings` from its flags, exports it
as ``FLIGHTBASE_*`` environment variables and starts JupyterHub; the hub
config (``hub_config/embedded.py``) and the services read it back with
:meth:`PlatformSettings.from_env`. Secrets are never part of it: they live in
``<data_dir>/secrets.json`` (mode 0600), see :mod:`flightbase.secrets`.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

ENV_PREFIX = "FLIGHTBASE_"


@dataclass(frozen=True)
class PlatformSettings:
    data_dir: Path
    ip: str = "127.0.0.1"
    port: int = 8000
    hub_port: int = 8081
    proxy_api_port: int = 8001
    jobqueue_port: int = 8082
    registry_port: int = 8083
    # The registry's data endpoint (chunk bodies straight to the registry, not through
    # the hub's proxy; services/registry/flightbase_registry/direct.py), on `ip`. 0: off.
    registry_data_port: int = 0
    admin_user: str = "admin"
    # The GPU inventory of this machine: [{"index": 0, "kind": "gpu"|"cpu-slot", "name": ...}]
    gpus: tuple[dict, ...] = field(default_factory=tuple)
    scheduler_policy: str = "las"
    # Where jobs and notebooks run: "docker" (containers on this machine: what `flightbase up`
    # chooses when a Docker engine answers), "local" (processes on this machine) or "kubernetes"
    # (objects in the cluster it runs in; the Helm chart sets it, with FLIGHTBASE_K8S_*).
    # See flightbase_jobqueue.backends.make_backend; an unknown name stops the jobqueue.
    backend: str = "local"
    auth_cache_seconds: int = 30
    # Largest request body the services accept, except on the routes that stream
    # big bodies to disk (their limits: flightbase/service/limits.py, LARGE_BODIES).
    max_body_bytes: int = 1 << 20
    jobqueue_db_url: str = ""
    registry_db_url: str = ""
    # The OCI registry uploaded images are pushed to; `flightbase up` starts one
    # (Debian's docker-registry) on a free loopback port when none is given.
    oci_registry_url: str = ""
    oci_registry_port: int = 0
    # Not running as root, people's code is refused (the platform cannot switch accounts and never
    # runs it as its own), except in the one-person development mode: the name of the one person
    # whose code then runs as the platform's account (`flightbase up --single-user-dev`; flightbase.accounts).
    single_user_dev: str = ""
    # Audit rows older than this many days are deleted at start-up and daily (flightbase/service/audit.py); 0: kept
    audit_retention_days: int = 365

    @property
    def hub_dir(self) -> Path:
        return self.data_dir / "hub"

    @property
    def public_url(self) -> str:
        return f"http://{self.ip}:{self.port}"

    def jobqueue_db(self) -> str:
        return self.jobqueue_db_url or f"sqlite:///{self.data_dir / 'jobqueue.sqlite'}"

    def registry_db(self) -> str:
        return self.registry_db_url or f"sqlite:///{self.data_dir / 'registry.sqlite'}"

    def to_env(self) -> dict[str, str]:
        env = {}
        for key, value in asdict(self).items():
            if isinstance(value, (tuple, list)):
                value = json.dumps(list(value))
            env[ENV_PREFIX + key.upper()] = str(value)
        return env

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "PlatformSettings":
        environ = os.environ if environ is None else environ
        kwargs: dict = {}
        for name, f in cls.__dataclass_fields__.items():
            raw = environ.get(ENV_PREFIX + name.upper())
            if raw is None:
                continue
            if name == "data_dir":
                kwargs[name] = Path(raw)
            elif name == "gpus":
                kwargs[name] = tuple(json.loads(raw))
            elif f.type == "int" or isinstance(getattr(cls, name, None), int):
                kwargs[name] = int(raw)
            else:
                kwargs[name] = raw
        if "data_dir" not in kwargs:
            raise RuntimeError(f"{ENV_PREFIX}DATA_DIR is not set; start the platform with `flightbase up`")
        return cls(**kwargs)

"""Deployment settings, read once at start-up: one typed object per concern.

- :class:`PlatformSettings`: the platform's ``FLIGHTBASE_*`` settings, shared by
  the hub config and both services. ``flightbase up`` builds one from its flags,
  exports it as environment variables and starts JupyterHub; the hub config
  (``flightbase_server/hub/jupyterhub_config/embedded.py``) and the services read it back with
  :meth:`PlatformSettings.from_env`. In a cluster the Helm chart sets them.
- :class:`HubServiceEnv`: what JupyterHub hands each of its services
  (``JUPYTERHUB_*``, see https://jupyterhub.readthedocs.io/en/stable/reference/services.html).
- The registry service's own settings: ``flightbase_registry.config.RegistrySettings``;
  the jobqueue's Kubernetes backend's: ``flightbase_jobqueue.backends.kubernetes.settings``.

Every field carries its documentation in its metadata (:func:`setting`): ``help``,
the services that read it, and whether a service needs it set in a cluster (the
chart test ``tests/kubernetes/test_chart_settings.py`` checks that the chart sets
each of those for that service's pod; ``scripts/settings_table.py`` writes the
README's configuration table from it). Secrets are never part of it: they live in
``<data_dir>/secrets.json`` (mode 0600), see :mod:`flightbase_server.secrets`.
"""

from __future__ import annotations

import json
import os
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

ENV_PREFIX = "FLIGHTBASE_"
# What ``deployment`` may be: the single machine of ``flightbase up``, or the Helm chart.
DEPLOYMENTS = ("embedded", "kubernetes")


def setting(default=MISSING, *, help: str, services: tuple[str, ...] = (), cluster: bool = False,
            env: str | None = None, shown_default: str | None = None, default_factory=MISSING):
    """A documented settings field.

    ``help``: what it does, when to change it. ``services``: the processes that read it
    ("hub", "jobqueue", "registry"). ``cluster``: every one of those services needs it set
    in a Kubernetes deployment (its default is right only on one machine). ``env``: the
    variable, when it is not ``FLIGHTBASE_<NAME>``. ``shown_default``: the default as the docs
    state it, when the literal one is not what people get (e.g. ``flightbase up`` picks a free port).
    """
    metadata = {"help": help, "services": tuple(services), "cluster": cluster, "env": env,
                "shown_default": shown_default}
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def database_setting(service: str):
    """The database URL field of one service: each service has a database of its own, set alike."""
    return setting("", help=f"The {service}'s database (SQLAlchemy URL), e.g. postgresql://user:pw@host/db. "
                            "Empty: SQLite in the data directory.",
                   services=(service,), cluster=True, shown_default="SQLite in the data dir")


def env_name(f) -> str:
    """The environment variable of a settings field."""
    return f.metadata.get("env") or ENV_PREFIX + f.name.upper()


def documented_fields(cls) -> list:
    """The fields of a settings class, each with its metadata (help, services, cluster, env)."""
    return [f for f in fields(cls) if f.metadata.get("help")]


def parse_preemption_budget(text: str) -> float | None:
    """``FLIGHTBASE_PREEMPTION_BUDGET``: a number of preemptions per job (0 or more), or "none"
    (the jobqueue's ``las`` option ``preemption_budget``). ValueError names the variable."""
    if text.strip().lower() == "none":
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value < float("inf"):
        raise ValueError(f"FLIGHTBASE_PREEMPTION_BUDGET: {text!r} is not a number of preemptions per job "
                         '(0 or more) nor "none"')
    return value


@dataclass(frozen=True)
class PlatformSettings:
    data_dir: Path = setting(
        help="Where the platform keeps its state: databases, secrets.json, uploads, datasets, workspaces and jobs.",
        services=("hub", "jobqueue", "registry"), cluster=True, shown_default="`--data-dir` (`./data`)")
    ip: str = setting("127.0.0.1", help="The address the hub's proxy (and the registry's data endpoint) listens on.",
                      services=("hub", "registry"), shown_default="`--ip` (127.0.0.1)")
    port: int = setting(8000, help="The port people reach the hub's proxy on (`flightbase up --port`).",
                        services=("hub", "jobqueue"), shown_default="`--port` (8000)")
    hub_port: int = setting(8081, help="The hub's own port, on loopback (embedded deployment).", services=("hub",),
                        shown_default="a free port")
    proxy_api_port: int = setting(8001, help="The proxy's API port, on loopback (embedded deployment).",
                                  services=("hub",), shown_default="a free port")
    proxy_command: str = setting(
        "", help="The configurable-http-proxy the embedded hub starts. Empty: `./node_modules/.bin/configurable-http-proxy` "
                 "of the folder `flightbase up` runs in (`make run` installs it there), else the one on the PATH.",
        services=("hub",), shown_default="found by `flightbase up`")
    jobqueue_port: int = setting(8082, help="The jobqueue service's port, on loopback (embedded deployment).",
                                 services=("hub", "jobqueue"), shown_default="a free port")
    registry_port: int = setting(8083, help="The registry service's port, on loopback (embedded deployment).",
                                 services=("hub", "registry", "jobqueue"), shown_default="a free port")
    registry_data_port: int = setting(
        0, help="The registry's data endpoint (chunk bodies straight to the registry, not through the hub's proxy; "
                "services/registry/flightbase_registry/direct.py; docs/registry.md), on `ip`. 0: off (uploads "
                "go through the proxy).",
        services=("registry",), shown_default="a free port")
    admin_user: str = setting("admin", help="The first administrator's name.", services=("hub",))
    gpus: tuple[dict, ...] = setting(
        default_factory=tuple, help='The GPU inventory of this machine, as JSON: [{"index": 0, "kind": '
                                    '"gpu"|"cpu-slot", "name": ...}] (`flightbase up --gpus`).',
        services=("hub", "jobqueue"), shown_default="`--gpus` (`auto`: NVML)")
    scheduler_policy: str = setting("las", help="The GPU scheduler's ordering policy (`flightbase up --policy`).",
                                    services=("jobqueue",), cluster=True, shown_default="`--policy` (`las`)")
    preemption_budget: str = setting(
        "0.24", help="The `las` scheduler's preemption budget: preemptions it makes by choice (not those "
                     "owed to a starving job, a job within its workspace's guarantee or a notebook lease) only while "
                     "the last 14 days have made fewer than this many per job started (counting at least 100 jobs), "
                     "and once they have made 0.8 of it, a job restarted after a preemption keeps its GPUs 2 h (not "
                     "1 h) from them; on an overloaded cluster it trades completion time for fewer checkpoints "
                     '(docs/scheduling.md, "A preemption budget"). "none": no budget.',
        services=("jobqueue",))
    backend: str = setting(
        "local", help='Where jobs and notebooks run: "docker" (containers on this machine: what `flightbase up` '
                      'chooses when a Docker engine answers), "local" (processes on this machine) or "kubernetes" '
                      "(objects in the cluster, with FLIGHTBASE_K8S_*). The jobqueue runs work there "
                      "(flightbase_jobqueue.backends.make_backend: an unknown name stops it); the registry says how "
                      "an image runs, and publishes the built-in images only for docker. "
                      '"sim" is for benchmarking and testing only: no job runs, each "runs" for its declared '
                      "duration (`SIM_SECONDS` in its env, else 60 s) and its starts and ends "
                      "are logged to <data_dir>/sim/runs.log (flightbase_jobqueue.backends.simulated); only the "
                      "operator's settings choose it, never a request.",
        services=("hub", "jobqueue", "registry"), cluster=True,
        shown_default="`docker` when an engine answers, else `local`")
    sim_speed: float = setting(
        1.0, help='With backend "sim" (benchmarks and tests only): how much faster than real time simulated jobs '
                  "run (10: a declared 60 s ends after 6 s).", services=("jobqueue",))
    deployment: str = setting(
        "embedded", help='"embedded" (one machine, `flightbase up`) or "kubernetes" (the Helm chart): what the '
                         "jobqueue's /info reports to clients; an unknown name stops the service.",
        services=("jobqueue",), cluster=True)
    registry_url: str = setting(
        "", help="How the jobqueue reaches the registry service's API (dataset lookups of trainings), "
                 "e.g. http://flightbase-registry:8083. Empty: http://127.0.0.1:<registry_port>.",
        services=("jobqueue",), cluster=True, shown_default="`http://127.0.0.1:<registry_port>`")
    proxy_url: str = setting(
        "", help="How the jobqueue reaches people's servers through the hub's proxy (the lease culler reads their "
                 "kernels' activity), e.g. http://proxy-public. Empty: the public URL, http://<ip>:<port>.",
        services=("jobqueue",), cluster=True, shown_default="the public URL")
    lease_check_seconds: float = setting(
        30.0, help="How often Jupyter trainings' leases are checked against the hub's servers and for idleness.",
        services=("jobqueue",))
    auth_cache_seconds: int = setting(30, help="How long the services trust a token lookup (who a token "
                                               "belongs to, its scopes; a token revoked at the hub works this "
                                               "long, as JupyterHub's HubAuth keeps its answers 300 s). Who is a "
                                               "member of a workspace is read from the hub's group, kept at most "
                                               "5 s (or this, if shorter): a member added or removed at the hub "
                                               "(its admin panel or API) is let in or refused within 5 s, and "
                                               "through the jobqueue (`flightbase workspaces add-member` or "
                                               "`remove-member`, or its API) by the jobqueue from their next "
                                               "request.",
                                      services=("jobqueue", "registry"))
    max_body_bytes: int = setting(
        1 << 20, help="Largest request body the services accept, except on the routes that stream big bodies to "
                      "disk (their limits: flightbase_server/service/limits.py, LARGE_BODIES); larger: 413.",
        services=("jobqueue", "registry"), shown_default="1048576 (1 MiB)")
    jobqueue_db_url: str = database_setting("jobqueue")
    registry_db_url: str = database_setting("registry")
    oci_registry_url: str = setting(
        "", help="The OCI registry uploaded images are pushed to; `flightbase up` starts one (Debian's "
                 "docker-registry) on a free loopback port when none is given.", services=("hub", "registry"),
        shown_default="the one `flightbase up` starts")
    oci_registry_port: int = setting(0, help="The port of the OCI registry `flightbase up` started (0: none).",
                                     services=("hub", "registry"), shown_default="a free port")
    single_user_dev: str = setting(
        "", help="Not running as root, people's code is refused (the platform cannot switch accounts and never runs "
                 "it as its own), except in the one-person development mode: the name of the one person whose code "
                 "then runs as the platform's account (`flightbase up --single-user-dev`; flightbase_server.accounts).",
        services=("hub", "jobqueue", "registry"), shown_default="`--single-user-dev` (off)")
    audit_retention_days: int = setting(
        365, help="Audit rows older than this many days are deleted at start-up and daily "
                  "(flightbase_server/service/audit.py); 0: kept for ever.", services=("jobqueue", "registry"))

    def __post_init__(self):
        if self.deployment not in DEPLOYMENTS:  # an unknown name is a configuration error, not a fallback
            raise ValueError(f"{ENV_PREFIX}DEPLOYMENT: {self.deployment!r} is not one of {', '.join(DEPLOYMENTS)}")
        parse_preemption_budget(self.preemption_budget)  # (ValueError naming the variable)

    @property
    def hub_dir(self) -> Path:
        return self.data_dir / "hub"

    @property
    def public_url(self) -> str:
        return f"http://{self.ip}:{self.port}"

    def registry_api_url(self) -> str:
        """The registry service's base URL, as the jobqueue reaches it."""
        return (self.registry_url or f"http://127.0.0.1:{self.registry_port}").rstrip("/")

    def proxy_base_url(self) -> str:
        """The hub's proxy, as the jobqueue reaches people's servers through it."""
        return (self.proxy_url or self.public_url).rstrip("/")

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
        for f in fields(cls):
            var = env_name(f)
            raw = environ.get(var)
            if raw is None:
                continue
            try:
                if f.name == "data_dir":
                    kwargs[f.name] = Path(raw)
                elif f.name == "gpus":
                    kwargs[f.name] = tuple(json.loads(raw))
                elif f.type == "int":
                    kwargs[f.name] = int(raw)
                elif f.type == "float":
                    kwargs[f.name] = float(raw)
                else:
                    kwargs[f.name] = raw
            except ValueError:
                raise ValueError(f"{var}: {raw!r} is not a {'JSON list' if f.name == 'gpus' else f.type}") from None
        if "data_dir" not in kwargs:
            raise RuntimeError(f"{ENV_PREFIX}DATA_DIR is not set; start the platform with `flightbase up`")
        return cls(**kwargs)


@dataclass(frozen=True)
class HubServiceEnv:
    """What JupyterHub hands each service it runs or routes to (``JUPYTERHUB_*``).

    The embedded hub sets them for its managed services; the Helm chart sets them in
    each service's pod. Read once at start-up, like ``HubAuth``'s trait defaults
    (jupyterhub/services/auth.py).
    """

    api_url: str = setting("", env="JUPYTERHUB_API_URL", services=("jobqueue", "registry"), cluster=True,
                           help="The hub's REST API, e.g. http://hub:8081/hub/api: token checks, workspaces, servers.")
    api_token: str = setting("", env="JUPYTERHUB_API_TOKEN", services=("jobqueue", "registry"), cluster=True,
                             help="The service's own token for the hub's API (a secret: from the hub's Secret).")
    service_prefix: str = setting("", env="JUPYTERHUB_SERVICE_PREFIX", services=("jobqueue", "registry"),
                                  cluster=True, help="The path the proxy routes to the service, e.g. "
                                                     "/services/jobqueue/. Empty: /services/<name>/.")
    service_url: str = setting("", env="JUPYTERHUB_SERVICE_URL", services=("jobqueue", "registry"), cluster=True,
                               help="Where the service listens, e.g. http://0.0.0.0:8082. Empty: "
                                    "http://127.0.0.1:<its port setting>.")
    base_url: str = setting("/", env="JUPYTERHUB_BASE_URL", services=("jobqueue", "registry"),
                            help="The hub's base URL (the pages' links to the hub).")
    service_name: str = setting("", env="JUPYTERHUB_SERVICE_NAME", services=("jobqueue", "registry"), cluster=True,
                                help="The service's name in the hub (jobqueue, registry): a token or login "
                                     "must hold access:services!service=<name> to use the service, unless "
                                     "JUPYTERHUB_OAUTH_ACCESS_SCOPES names other scopes.")
    client_id: str = setting("", env="JUPYTERHUB_CLIENT_ID", services=("jobqueue", "registry"), cluster=True,
                             help="The service's OAuth client in the hub (service-<name>): the browser login "
                                  "of the service's pages.")
    oauth_callback_url: str = setting("", env="JUPYTERHUB_OAUTH_CALLBACK_URL", services=("jobqueue", "registry"),
                                      help="Where the hub sends a browser back after the login. Empty: "
                                           "<service prefix>oauth_callback, what the hub registers for a "
                                           "service with a URL.")
    oauth_access_scopes: str = setting("", env="JUPYTERHUB_OAUTH_ACCESS_SCOPES", services=("jobqueue", "registry"),
                                       help="The scopes that give access to the service, a JSON list (the "
                                            "embedded hub sets it). Empty: "
                                            "access:services!service=<JUPYTERHUB_SERVICE_NAME>.")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "HubServiceEnv":
        environ = os.environ if environ is None else environ
        return cls(**{f.name: environ[env_name(f)] for f in fields(cls) if environ.get(env_name(f))})

    def access_scopes(self) -> set[str]:
        """The scopes that give access to the service (JupyterHub's ``HubAuth.access_scopes``)."""
        if self.oauth_access_scopes:
            scopes = json.loads(self.oauth_access_scopes)
            if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
                raise ValueError("JUPYTERHUB_OAUTH_ACCESS_SCOPES must be a JSON list of scope names")
            return set(scopes)
        return {f"access:services!service={self.service_name}"} if self.service_name else set()

    def require(self, *names: str) -> "HubServiceEnv":
        """Self, after checking that ``names`` are set (a service cannot start without them)."""
        missing = [env_name(f) for f in fields(self) if f.name in names and not getattr(self, f.name)]
        if missing:
            raise RuntimeError(f"{', '.join(missing)} not set: the hub (or the Helm chart) sets them")
        return self

"""Map deployment settings onto JupyterHub traits.

``jupyterhub_config/*.py`` call these functions; they hold no logic of their own.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from flightbase_server.hub import rbac
from flightbase_server.settings import PlatformSettings

TEMPLATES = Path(__file__).resolve().parent / "templates"
# The JupyterHub config file of each deployment (package data): `flightbase up` runs the hub with
# embedded.py; the hub image puts kubernetes.py in z2jh's jupyterhub_config.d.
CONFIG_FILES = Path(__file__).resolve().parent / "jupyterhub_config"


def find_proxy_command(configured: str = "", cwd: Path | None = None) -> str:
    """configurable-http-proxy: the configured one (FLIGHTBASE_PROXY_COMMAND), else the copy
    `npm install` put in ./node_modules of the folder the platform starts from, else the PATH's."""
    if configured:
        return configured
    local = (cwd or Path.cwd()) / "node_modules" / ".bin" / "configurable-http-proxy"
    if local.exists():
        return str(local.resolve())
    found = shutil.which("configurable-http-proxy")
    if not found:
        raise RuntimeError(
            "configurable-http-proxy not found: run `make run` (it runs `npm install`) "
            "or install it with `npm install -g configurable-http-proxy`"
        )
    return found


DOCKER_REGISTRY = "/usr/bin/docker-registry"

# The settings of an operator's own OCI registry account (FLIGHTBASE_OCI_REGISTRY_URL), passed
# to the registry service only: a user name and the path of a file holding the password, never
# the password itself (see services/registry/flightbase_registry/config.py).
OCI_REGISTRY_ACCOUNT_ENV = ("FLIGHTBASE_OCI_REGISTRY_USERNAME", "FLIGHTBASE_OCI_REGISTRY_PASSWORD_FILE")


def oci_registry_config(settings: PlatformSettings, secrets: dict[str, str]) -> Path:
    """Write the config of the embedded OCI registry: loopback only, storage in the data dir,
    and an account only the services hold.

    Jobs and notebooks run on this machine and reach loopback too, so the registry
    requires HTTP Basic auth (distribution's htpasswd auth, which accepts bcrypt
    entries only) for every request: listing, pulling, pushing and deleting. The
    user is ``secrets.OCI_REGISTRY_USER``, the password the ``oci_registry_password``
    of ``<data_dir>/secrets.json``; the htpasswd file is rewritten from it at every
    start, so a password changed there takes effect at the next start. Plain HTTP is
    acceptable here because the traffic never leaves loopback.

    Deletes stay enabled: deleting an uploaded image deletes its manifest too
    (``flightbase_registry/api/catalog.py``, ``OciRegistry.delete_manifest``), and
    with auth only the services can delete.

    Jobs do not pull images today (the local backend runs them on the host). A
    container backend on this machine must pull as the platform, with these
    credentials (given to the container engine, never to the job: no environment
    variable, file or mount inside the container), and only an image its workspace
    may use: a built-in image or one under ``<host>/<job's workspace>/``, checked
    against the registry service's record of the workspace's images before the pull.
    """
    import bcrypt  # NativeAuthenticator's dependency; imported here, as only the hub needs it

    from flightbase_server.secrets import OCI_REGISTRY_USER

    root = settings.data_dir / "oci"
    root.mkdir(mode=0o700, exist_ok=True)
    os.chmod(root, 0o700)
    # bcrypt's cost slows guessing a weak password; this one is 256 random bits, which no
    # cost changes, while docker-registry verifies the hash on every request (a push is
    # three per blob): the minimum cost keeps that at about a millisecond.
    entry = bcrypt.hashpw(secrets["oci_registry_password"].encode(), bcrypt.gensalt(rounds=4)).decode()
    htpasswd = root / "htpasswd"
    _write_private(htpasswd, f"{OCI_REGISTRY_USER}:{entry}\n")
    config = root / "config.yml"
    _write_private(config, json.dumps({  # YAML is a superset of JSON
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(root / "data")}, "delete": {"enabled": True}},
        "http": {"addr": f"127.0.0.1:{settings.oci_registry_port}"},
        "auth": {"htpasswd": {"realm": "flightbase", "path": str(htpasswd)}},
    }))
    return config


def _write_private(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``, mode 0600 from the first byte on."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def service_specs(settings: PlatformSettings, secrets: dict[str, str]) -> list[dict]:
    """The hub-managed services, each started as `python -m <package>`, and the OCI registry."""
    env = settings.to_env()
    env["PYTHONUNBUFFERED"] = "1"
    # the registry service's own settings (FLIGHTBASE_REGISTRY_*), when the operator set them
    env.update({k: v for k, v in os.environ.items() if k.startswith("FLIGHTBASE_REGISTRY_")})
    # the account of an operator's OCI registry, for the registry service alone (the
    # embedded registry's account is read from secrets.json by the service itself)
    oci_account = {k: os.environ[k] for k in OCI_REGISTRY_ACCOUNT_ENV if os.environ.get(k)}
    # how often the jobqueue checks Jupyter trainings' leases against the hub and for idleness
    if os.environ.get("FLIGHTBASE_LEASE_CHECK_SECONDS"):
        env["FLIGHTBASE_LEASE_CHECK_SECONDS"] = os.environ["FLIGHTBASE_LEASE_CHECK_SECONDS"]
    # the token a Prometheus without a hub account scrapes <service>/metrics with (flightbase_server.service.metrics)
    if os.environ.get("FLIGHTBASE_METRICS_TOKEN"):
        env["FLIGHTBASE_METRICS_TOKEN"] = os.environ["FLIGHTBASE_METRICS_TOKEN"]
    specs = []
    for name, port, package in (
        ("jobqueue", settings.jobqueue_port, "flightbase_jobqueue"),
        ("registry", settings.registry_port, "flightbase_registry"),
    ):
        specs.append(
            {
                "name": name,
                "url": f"http://127.0.0.1:{port}",
                "api_token": secrets[f"{name}_token"],
                "command": [sys.executable, "-m", package],
                "environment": dict(env, **(oci_account if name == "registry" else {})),
                "oauth_no_confirm": True,
                # what a browser's login cookie for this service may carry (intersected
                # with the person's own scopes): membership, the Flightbase scopes the service
                # applies, and admin:groups, which marks an administrator (the chart's
                # jupyterhub.hub.services set the same, tests/kubernetes/test_chart_hub.py)
                "oauth_client_allowed_scopes": rbac.browser_scopes(name),
                "display": True,
                "info": {"flightbase": True},
            }
        )
    if settings.oci_registry_port:
        # no url: the hub runs (and restarts) it but does not route to it; only the
        # registry service talks to it, on loopback, with the account in secrets.json
        config = oci_registry_config(settings, secrets)
        # The hub stops a service with SIGINT, and SIGTERM 10 s later. docker-registry takes SIGINT's
        # default action (exit), but a process started with SIGINT ignored (what a shell does to a
        # command it runs in the background) passes the ignoring on, and the registry then kept the
        # hub's stop waiting those 10 s and more: `env` gives it SIGINT's default back.
        specs.append({"name": "oci-registry",
                      "command": ["env", "--default-signal=INT", DOCKER_REGISTRY, "serve", str(config)]})
    return specs


def configure_embedded(c, settings: PlatformSettings, secrets: dict[str, str]) -> None:
    """The single-machine deployment: SQLite, servers as containers or local processes, sign-up auth."""
    hub_dir = settings.hub_dir
    hub_dir.mkdir(parents=True, exist_ok=True)

    c.JupyterHub.bind_url = settings.public_url
    c.JupyterHub.hub_ip = "127.0.0.1"
    c.JupyterHub.hub_port = settings.hub_port
    c.JupyterHub.db_url = f"sqlite:///{hub_dir / 'jupyterhub.sqlite'}"
    c.JupyterHub.cookie_secret_file = str(hub_dir / "jupyterhub_cookie_secret")
    c.JupyterHub.pid_file = str(hub_dir / "jupyterhub.pid")

    c.ConfigurableHTTPProxy.command = [find_proxy_command(settings.proxy_command)]
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{settings.proxy_api_port}"
    c.ConfigurableHTTPProxy.auth_token = secrets["proxy_auth_token"]
    c.ConfigurableHTTPProxy.pid_file = str(hub_dir / "jupyterhub-proxy.pid")
    c.ConfigurableHTTPProxy.should_start = True

    c.JupyterHub.authenticator_class = "flightbase_server.hub.auth.FlightbaseAuthenticator"
    c.Authenticator.admin_users = {settings.admin_user}
    c.Authenticator.allow_all = True  # sign-up needs an administrator's approval
    c.FlightbaseAuthenticator.initial_admin = settings.admin_user
    c.FlightbaseAuthenticator.initial_admin_password = os.environ.get("FLIGHTBASE_INITIAL_ADMIN_PASSWORD", "")
    c.NativeAuthenticator.open_signup = False
    c.NativeAuthenticator.minimum_password_length = 10
    c.NativeAuthenticator.check_common_password = True
    c.NativeAuthenticator.allowed_failed_logins = 5

    initial_token = os.environ.get("FLIGHTBASE_INITIAL_ADMIN_TOKEN")
    if initial_token:
        c.JupyterHub.api_tokens = {initial_token: settings.admin_user}

    # After login, land on the home page (servers are started from there, one per
    # workspace and purpose) instead of spawning a default server straight away.
    c.JupyterHub.default_url = "/hub/home"
    c.JupyterHub.allow_named_servers = True

    c.JupyterHub.custom_scopes = rbac.custom_scopes()
    c.JupyterHub.load_roles = rbac.roles()
    c.JupyterHub.services = service_specs(settings, secrets)
    # servers in containers of their image with the docker backend, else local processes
    module, spawner = ("docker", "FlightbaseDockerSpawner") if settings.backend == "docker" else \
        ("local", "FlightbaseLocalSpawner")
    c.JupyterHub.spawner_class = f"flightbase_spawner.{module}.{spawner}"
    sc = getattr(c, spawner)
    sc.home_root = str(settings.data_dir / "home")
    sc.jobqueue_url = f"http://127.0.0.1:{settings.jobqueue_port}"
    sc.registry_url = f"http://127.0.0.1:{settings.registry_port}"
    sc.public_url = settings.public_url
    sc.gpu_kind_name = settings.gpus[0]["kind"] if settings.gpus else "gpu"
    sc.single_user_dev = settings.single_user_dev
    if spawner == "FlightbaseDockerSpawner":
        # uploaded images are pulled from there with the password in secrets.json (read at the pull)
        sc.oci_registry_url = settings.oci_registry_url
        sc.data_dir = str(settings.data_dir)
    configure_servers(c)


def configure_servers(c) -> None:
    """What every deployment gets: its single-user servers' settings, and the hub's nav bar entry."""
    # The server's token ($JUPYTERHUB_API_TOKEN) is the user's client in notebook cells and the
    # spawner's credential for the GPU lease: the Flightbase scopes (as far as the user holds them)
    c.Spawner.server_token_scopes = rbac.server_token_scopes()
    # how soon the hub notices a server that died (its lease is released soon after)
    c.Spawner.poll_interval = int(os.environ.get("FLIGHTBASE_SPAWNER_POLL_SECONDS", "30"))
    # every hub page gets the nav bar's "Flightbase" entry (a page.html that extends the hub's own;
    # the services render their pages with it too: flightbase_server/service/pages.py)
    c.JupyterHub.template_paths = [str(TEMPLATES)]
    # an operator's extra JupyterHub configuration (like z2jh's hub.extraConfig), loaded last
    extra = os.environ.get("FLIGHTBASE_HUB_EXTRA_CONFIG")
    if extra:
        c.merge(_load_config_file(extra))


def _load_config_file(path: str):
    from traitlets.config import PyFileConfigLoader

    folder, name = os.path.split(os.path.abspath(path))
    return PyFileConfigLoader(name, path=folder).load_config()

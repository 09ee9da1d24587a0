"""Map deployment settings onto JupyterHub traits.

``hub_config/*.py`` call these functions; they hold no logic of their own.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from flightbase.hub import rbac
from flightbase.settings import PlatformSettings

ROOT = Path(__file__).resolve().parents[2]


def find_proxy_command() -> str:
    """configurable-http-proxy: the project's node_modules copy, else the PATH."""
    local = ROOT / "node_modules" / ".bin" / "configurable-http-proxy"
    if local.exists():
        return str(local)
    found = shutil.which("configurable-http-proxy")
    if not found:
        raise RuntimeError(
            "configurable-http-proxy not found: run `make run` (it runs `npm install`) "
            "or install it with `npm install -g configurable-http-proxy`"
        )
    return found


DOCKER_REGISTRY = "/usr/bin/docker-registry"


def oci_registry_config(settings: PlatformSettings) -> Path:
    """Write the config of the embedded OCI registry (loopback only, storage in the data dir)."""
    root = settings.data_dir / "oci"
    root.mkdir(mode=0o700, exist_ok=True)
    config = root / "config.yml"
    config.write_text(json.dumps({  # YAML is a superset of JSON
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(root / "data")}, "delete": {"enabled": True}},
        "http": {"addr": f"127.0.0.1:{settings.oci_registry_port}"},
    }))
    return config


def service_specs(settings: PlatformSettings, secrets: dict[str, str]) -> list[dict]:
    """The hub-managed services, each started as `python -m <package>`, and the OCI registry."""
    env = settings.to_env()
    env["PYTHONUNBUFFERED"] = "1"
    # the registry service's own settings (FLIGHTBASE_REGISTRY_*), when the operator set them
    env.update({k: v for k, v in os.environ.items() if k.startswith("FLIGHTBASE_REGISTRY_")})
    # how often the jobqueue checks Jupyter trainings' leases against the hub and for idleness
    if os.environ.get("FLIGHTBASE_LEASE_CHECK_SECONDS"):
        env["FLIGHTBASE_LEASE_CHECK_SECONDS"] = os.environ["FLIGHTBASE_LEASE_CHECK_SECONDS"]
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
                "environment": dict(env),
                "oauth_no_confirm": True,
                # what a browser's login cookie for this service may carry (intersected
                # with the person's own scopes): membership, the Flightbase scopes, and
                # admin:groups, which marks an administrator
                "oauth_client_allowed_scopes": rbac.browser_scopes(),
                "display": True,
                "info": {"flightbase": True},
            }
        )
    if settings.oci_registry_port:
        # no url: the hub runs (and restarts) it but does not route to it; only the
        # registry service talks to it, on loopback
        specs.append({"name": "oci-registry", "command": [DOCKER_REGISTRY, "serve", str(oci_registry_config(settings))]})
    return specs


def configure_embedded(c, settings: PlatformSettings, secrets: dict[str, str]) -> None:
    """The single-machine deployment: SQLite, local processes, sign-up auth."""
    hub_dir = settings.hub_dir
    hub_dir.mkdir(parents=True, exist_ok=True)

    c.JupyterHub.bind_url = settings.public_url
    c.JupyterHub.hub_ip = "127.0.0.1"
    c.JupyterHub.hub_port = settings.hub_port
    c.JupyterHub.db_url = f"sqlite:///{hub_dir / 'jupyterhub.sqlite'}"
    c.JupyterHub.cookie_secret_file = str(hub_dir / "jupyterhub_cookie_secret")
    c.JupyterHub.pid_file = str(hub_dir / "jupyterhub.pid")

    c.ConfigurableHTTPProxy.command = [find_proxy_command()]
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{settings.proxy_api_port}"
    c.ConfigurableHTTPProxy.auth_token = secrets["proxy_auth_token"]
    c.ConfigurableHTTPProxy.pid_file = str(hub_dir / "jupyterhub-proxy.pid")
    c.ConfigurableHTTPProxy.should_start = True

    c.JupyterHub.authenticator_class = "flightbase.hub.auth.FlightbaseAuthenticator"
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
    c.JupyterHub.spawner_class = "flightbase_spawner.local.FlightbaseLocalSpawner"
    c.FlightbaseLocalSpawner.home_root = str(settings.data_dir / "home")
    c.FlightbaseLocalSpawner.jobqueue_url = f"http://127.0.0.1:{settings.jobqueue_port}"
    c.FlightbaseLocalSpawner.registry_url = f"http://127.0.0.1:{settings.registry_port}"
    c.FlightbaseLocalSpawner.public_url = settings.public_url
    c.FlightbaseLocalSpawner.gpu_kind_name = settings.gpus[0]["kind"] if settings.gpus else "gpu"
    configure_servers(c)


def configure_servers(c) -> None:
    """What every deployment's single-user servers get."""
    # The server's token ($JUPYTERHUB_API_TOKEN) is the user's client in notebook cells and the
    # spawner's credential for the GPU lease: the Flightbase scopes (as far as the user holds them)
    c.Spawner.server_token_scopes = rbac.server_token_scopes()
    # how soon the hub notices a server that died (its lease is released soon after)
    c.Spawner.poll_interval = int(os.environ.get("FLIGHTBASE_SPAWNER_POLL_SECONDS", "30"))
    # an operator's extra JupyterHub configuration (like z2jh's hub.extraConfig), loaded last
    extra = os.environ.get("FLIGHTBASE_HUB_EXTRA_CONFIG")
    if extra:
        c.merge(_load_config_file(extra))


def _load_config_file(path: str):
    from traitlets.config import PyFileConfigLoader

    folder, name = os.path.split(os.path.abspath(path))
    return PyFileConfigLoader(name, path=folder).load_config()

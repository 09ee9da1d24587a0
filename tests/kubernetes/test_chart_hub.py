"""The hub's configuration in the chart: Zero to JupyterHub's roles and services with Flightbase's.

The chart is rendered by the real Helm engine with Zero to JupyterHub 4.2.0 as its dependency
(``fixtures/jupyterhub-4.2.0.tgz``, see test_deployment.py), against the rendering stub API
server (``stubapi.StubApi``), with z2jh's idle culler on (z2jh's default; this chart's values
turn it off, and an operator may turn it on again) and a role of the operator's in
``hub.loadRoles``. Then:

- **The rendered values.** The hub's Secret holds the values z2jh's ``jupyterhub_config.py``
  reads (``values.yaml``): the two services' ``oauth_client_allowed_scopes`` there are the ones
  the embedded hub gives them (``flightbase_server.hub.rbac.browser_scopes``), and each list holds the
  Flightbase scopes its service's routes check.
- **The hub itself** (Docker; skipped, with the reason, without an engine, root or the hub
  image): the rendered hub pod runs from its spec (``podrun``: the rendered ConfigMap, Secret,
  environment with Service links, user and claim) as the real ``ghcr.io/flightbase/hub``
  image, with this checkout's ``flightbase_server/hub/jupyterhub_config/kubernetes.py`` where the image has its copy and
  this checkout's ``flightbase`` (client), ``flightbase_server`` and ``flightbase_spawner`` packages first on the path (so
  that the test is of the working tree, not of the image's build). Instead of ``jupyterhub``,
  the container runs JupyterHub's own ``JupyterHub.initialize`` with the rendered command's
  arguments: z2jh's ``jupyterhub_config.py`` (which ``exec``s ``flightbase_server/hub/jupyterhub_config/kubernetes.py``)
  is loaded, and the roles, services and OAuth clients are made in the hub's database, as at
  every hub start; the test reads them back from it. The proxy and the services are not
  started (``initialize`` does not start them, ``start`` would): nothing of that is asserted.
  Run time here: about 20 s.
"""

from __future__ import annotations

import ast
import base64
import json
import os
from pathlib import Path

import pytest
import yaml

from flightbase_server import authz
from flightbase_server.hub import rbac

from tests.helpers.containers import why_no_containers

from .chart import render_with_z2jh

helm = pytest.importorskip("helm_sdkpy", reason="helm-sdkpy is not installed (pip install --ignore-requires-python helm-sdkpy)")

ROOT = Path(__file__).resolve().parents[2]
Z2JH = Path(__file__).parent / "fixtures" / "jupyterhub-4.2.0.tgz"
HUB_IMAGE = "ghcr.io/flightbase/hub:0.1.0"
SERVICES = ("jobqueue", "registry")
# z2jh's culler (on: z2jh's default, off in our values) and a role of the operator's for a scraper of the hub's metrics
VALUES = {"jupyterhub": {
    "prePuller": {"hook": {"enabled": False}, "continuous": {"enabled": False}},
    "cull": {"enabled": True, "users": False},
    "hub": {"services": {"prometheus": {}},
            "loadRoles": {"metrics-reader": {"description": "Prometheus reads /hub/metrics",
                                             "scopes": ["read:metrics"], "services": ["prometheus"]}}},
}}
CULLER_SCOPES = ["list:users", "read:users:activity", "read:servers", "delete:servers"]


def find(manifest: list[dict], kind: str, name: str) -> dict:
    return next(o for o in manifest if o["kind"] == kind and o["metadata"]["name"] == name)


def secret_data(secret: dict) -> dict[str, str]:
    return {**{k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()},
            **(secret.get("stringData") or {})}


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> list[dict]:
    return render_with_z2jh(tmp_path_factory.mktemp("render"), VALUES)


def test_each_service_login_may_carry_what_the_service_checks_and_no_more(manifest):
    """z2jh passes hub.services.<name> to JupyterHub as it is (its jupyterhub_config.py): the
    values it reads, from the rendered Secret, bound each service's OAuth tokens (JupyterHub 3+,
    ``oauth_client_allowed_scopes``) to what the embedded hub allows that service."""
    values = yaml.safe_load(secret_data(find(manifest, "Secret", "hub"))["values.yaml"])
    for name in SERVICES:
        service = values["hub"]["services"][name]
        assert service["oauth_client_allowed_scopes"] == rbac.browser_scopes(name), name
        assert service["url"] == f"http://flightbase-{name}:{8082 if name == 'jobqueue' else 8083}"
    assert "oauth_client_allowed_scopes" not in values["hub"]["services"]["prometheus"]


def _permissions_checked(package: Path) -> set[str]:
    """The Flightbase permissions (``resource:action``) named in a service's source."""
    known = set(authz.all_permissions())
    return {node.value for path in package.rglob("*.py") for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in known}


@pytest.mark.parametrize("service, package", [("jobqueue", "services/jobqueue/flightbase_jobqueue"),
                                              ("registry", "services/registry/flightbase_registry")])
def test_the_allowed_scopes_hold_every_permission_the_service_checks(service, package):
    checked = _permissions_checked(ROOT / package)
    assert checked, package
    allowed = {s.removeprefix(authz.PREFIX) for s in rbac.browser_scopes(service) if s.startswith(authz.PREFIX)}
    assert checked <= allowed, f"{service} checks {sorted(checked - allowed)}, which its logins may not carry"
    assert allowed == set(rbac.SERVICE_PERMISSIONS[service])
    # membership, names and the administrator's mark: how the services know who is asking
    assert {"read:users:groups!user", "read:users:name!user", authz.ADMIN_SCOPE} <= set(rbac.browser_scopes(service))


def test_the_charts_defaults_turn_z2jhs_culler_off(tmp_path):
    """z2jh runs ``python3 -m jupyterhub_idle_culler`` as a hub service when ``cull.enabled``
    (its default); the hub image has no such module, so the chart's own values turn it off (the
    jobqueue's lease culler stops idle notebooks). Rendered with the chart's values alone."""
    manifest = render_with_z2jh(tmp_path, {"jupyterhub": {
        "prePuller": {"hook": {"enabled": False}, "continuous": {"enabled": False}}}})
    values = yaml.safe_load(secret_data(find(manifest, "Secret", "hub"))["values.yaml"])
    assert values["cull"]["enabled"] is False


def test_roles_merge_with_what_the_config_holds():
    """rbac.merge_roles, on what z2jh's config leaves in c.JupyterHub.load_roles."""
    from traitlets.config import Config

    ours = rbac.roles()
    assert rbac.merge_roles(None, ours) == ours  # nothing there: ours
    c = Config()
    c.JupyterHub.load_roles.append({"name": "x", "scopes": ["read:users"]})  # appended to an unset key
    assert [r["name"] for r in rbac.merge_roles(c.JupyterHub.get("load_roles"), ours)] == ["x"] + [r["name"] for r in ours]
    theirs = [{"name": "user", "scopes": ["read:metrics", "self"], "users": ["bob"]}]
    merged = rbac.merge_roles(theirs, ours)
    user = next(r for r in merged if r["name"] == "user")
    assert user["scopes"][:2] == ["read:metrics", "self"] and user["scopes"].count("self") == 1
    assert set(next(r for r in ours if r["name"] == "user")["scopes"]) <= set(user["scopes"])
    assert user["users"] == ["bob"] and [r["name"] for r in merged].count("user") == 1
    assert theirs == [{"name": "user", "scopes": ["read:metrics", "self"], "users": ["bob"]}]  # not changed


# -- the hub itself, from its rendered pod ----------------------------------------------------------
def _why_not() -> str | None:
    return why_no_containers("podrun chowns the hub's claim folder to the pod's user: run as root",
                             {HUB_IMAGE: "scripts/service-images.sh"})


# Run in the hub's container: JupyterHub's own start-up up to its database (no proxy, no
# services started), then what it made there.
INITIALIZE = r"""
import asyncio, json, sys
from jupyterhub import orm
from jupyterhub.app import JupyterHub

async def main():
    app = JupyterHub.instance()
    await app.initialize(sys.argv[1:])
    db = app.db
    roles = {r.name: {"scopes": sorted(r.scopes), "services": sorted(s.name for s in r.services),
                      "users": sorted(u.name for u in r.users), "groups": sorted(g.name for g in r.groups)}
             for r in db.query(orm.Role)}
    clients = {c.identifier: sorted(c.allowed_scopes) for c in db.query(orm.OAuthClient)}
    services = sorted(s.name for s in db.query(orm.Service))
    custom = sorted(app.custom_scopes)
    print("FLIGHTBASE-RESULT " + json.dumps({"roles": roles, "clients": clients, "services": services,
                                             "custom_scopes": custom}), flush=True)

asyncio.run(main())
"""


def test_the_hub_loads_the_cullers_role_the_operators_and_ours(manifest, tmp_path):
    why = _why_not()
    if why:
        pytest.skip(why)
    from .podrun import PodRunner, pod_template_of

    hub = find(manifest, "Deployment", "hub")
    pod = pod_template_of(hub)
    pod["metadata"]["namespace"] = "flightbase"
    spec = pod["spec"]
    container = spec["containers"][0]
    command = [*container.get("command", []), *container.get("args", [])]
    assert command[0] == "jupyterhub" and "--config" in command, command
    container["command"] = ["python", "-c", INITIALIZE, *command[1:]]
    container.pop("args", None)
    container.pop("readinessProbe", None)
    container["env"] = [*container.get("env", []), {"name": "PYTHONPATH", "value": "/flightbase-src"},
                        {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"}]
    # this checkout's code where the image has its own: the config file z2jh's config loads,
    # and the packages it imports
    spec["volumes"] = [*spec.get("volumes", []), {"name": "checkout", "hostPath": {"path": "/checkout"}}]
    container["volumeMounts"] = [
        *container.get("volumeMounts", []),
        {"name": "checkout", "mountPath": "/usr/local/etc/jupyterhub/jupyterhub_config.d/flightbase.py",
         "subPath": "flightbase_server/hub/jupyterhub_config/kubernetes.py", "readOnly": True},
        {"name": "checkout", "mountPath": "/flightbase-src/flightbase", "subPath": "client/flightbase",
         "readOnly": True},
        {"name": "checkout", "mountPath": "/flightbase-src/flightbase_server", "subPath": "flightbase_server",
         "readOnly": True},
        {"name": "checkout", "mountPath": "/flightbase-src/flightbase_spawner", "subPath": "flightbase_spawner",
         "readOnly": True},
    ]
    db = tmp_path / "hub-db-dir"
    db.mkdir()
    os.chown(db, 1000, 1000)
    with PodRunner(namespace="flightbase", host_dirs={"hub-db-dir": db, "/checkout": ROOT}) as runner:
        runner.add_objects(manifest)
        running = runner.run_pod(pod, name="hub-config-test")
        code = runner.wait(running, timeout=180)
        logs = runner.logs(running)
    assert code == 0, logs[-6000:]
    assert "Loading /usr/local/etc/jupyterhub/jupyterhub_config.d config: flightbase.py" in logs, logs[-3000:]
    (line,) = [x for x in logs.splitlines() if x.startswith("FLIGHTBASE-RESULT ")]
    result = json.loads(line.removeprefix("FLIGHTBASE-RESULT "))
    roles = result["roles"]

    # z2jh's idle culler: its role, given to its service, as z2jh's config made it
    assert set(CULLER_SCOPES) <= set(roles["jupyterhub-idle-culler"]["scopes"])
    assert roles["jupyterhub-idle-culler"]["services"] == ["jupyterhub-idle-culler"]
    # the operator's hub.loadRoles
    assert roles["metrics-reader"]["scopes"] == ["read:metrics"] and roles["metrics-reader"]["services"] == ["prometheus"]
    # ours
    for role in rbac.roles():
        assert set(role["scopes"]) <= set(roles[role["name"]]["scopes"]), role["name"]
        assert set(role.get("services", [])) <= set(roles[role["name"]]["services"]), role["name"]
    assert {"jupyterhub-idle-culler", "prometheus", *SERVICES} <= set(result["services"])
    assert set(rbac.custom_scopes()) <= set(result["custom_scopes"])
    # each service's OAuth client: what its logins may carry (JupyterHub adds the service's own access)
    for name in SERVICES:
        allowed = set(result["clients"][f"service-{name}"])
        assert allowed == {*rbac.browser_scopes(name), f"access:services!service={name}"}, (name, sorted(allowed))

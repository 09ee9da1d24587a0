"""The permission table's expectations, generated from the routes' declarations, and the
requests that measure them (tests/platform/test_permissions.py, tests/platform/test_audit.py).

Every API route of both services declares one access level (``flightbase_server.service.access.Level``,
a FastAPI dependency in its signature; ``access.declared`` reads it back from the app objects,
built in process). ``ROWS`` is the one table from a level to the status each role gets; a route's
expected row is its level's row, with ``OK`` read as the route's own success status (its
``status_code``: 200, 201 or 204). The platform test then measures every (role, route) on a real
platform, so a wrong declaration fails there.

Roles: platform administrator; the workspace's manager; the training's owner (a plain member who
created it); another plain member; an outsider (member of another workspace only).
"""

from __future__ import annotations

import tempfile
import time
from functools import lru_cache

from fastapi.routing import APIRoute

from flightbase_server.service.access import Level, Needs, declared
from tests.platform.world import wait_state, wait_training

ROLES = ("admin", "manager", "owner", "member", "outsider")
OK = "ok"  # the route's own success status


def row(admin, manager, owner, member, outsider) -> dict:
    return dict(zip(ROLES, (admin, manager, owner, member, outsider)))


# level -> status per role (401 without credentials is the middleware's, for every route alike)
ROWS = {
    Level.PERSON: row(OK, OK, OK, OK, OK),
    Level.LISTING: row(OK, OK, OK, OK, OK),  # unfiltered: each gets their own workspaces
    Level.MEMBER: row(OK, OK, OK, OK, 404),
    Level.CONTROL: row(OK, OK, OK, 403, 404),
    Level.MANAGER: row(OK, OK, 403, 403, 404),
    Level.AUDITOR: row(OK, OK, 403, 403, 403),
    Level.WORKSPACE_ADMIN: row(OK, 403, 403, 403, 404),
    Level.ADMIN: row(OK, 403, 403, 403, 403),
}

# Listings asked for the world's workspace (?workspace=, request_for): a named workspace is
# authorised as for a member. The dashboard's data needs one (Level.MEMBER from the query).
NAMES_WORKSPACE = {("jobqueue", "GET", "/usage"), ("jobqueue", "GET", "/dashboard")}

# The exceptions, explicit: routes whose authorised callers get another status than the route's
# success for the request request_for sends, because its body or the state decides.
BODY_DECIDES = {
    # the request names a dataset that is not there: authorised callers get as far as resolving it
    # (422), nothing is held
    ("jobqueue", "POST", "/leases"): 422,
    # no image archive in the body: members get as far as the body check (422)
    ("registry", "POST", "/workspaces/{workspace}/images/upload"): 422,
}

API = "api/v1"


def service_apps() -> dict:
    """Both services' FastAPI apps, built in process (nothing started: no hub, no platform)."""
    from flightbase_server.settings import PlatformSettings
    from flightbase_jobqueue.app import build as build_jobqueue
    from flightbase_registry.app import build as build_registry

    settings = PlatformSettings.from_env({"FLIGHTBASE_DATA_DIR": tempfile.mkdtemp(prefix="fb-routes-"),
                                          "FLIGHTBASE_GPUS": "[]"})
    return {"jobqueue": build_jobqueue(settings), "registry": build_registry(settings)}


def all_routes(app):
    """(full path, route) for each route of ``app``, inside included routers too (as
    flightbase_server.service.audit.api_routes walks them)."""
    try:  # FastAPI >= 0.160 keeps included routers whole
        from fastapi.routing import iter_route_contexts
    except ImportError:
        return [(getattr(r, "path_format", None), r) for r in app.routes]
    return [(ctx.path_format, ctx.original_route) for ctx in iter_route_contexts(app.routes)]


def api_routes(app):
    """(method, template under api/v1, route) for each API route of ``app``."""
    prefix = f"{app.state.prefix}{API}"
    for path, route in all_routes(app):
        if isinstance(route, APIRoute) and path and path.startswith(prefix + "/"):
            for method in sorted(route.methods - {"HEAD"}):
                yield method, path[len(prefix):], route


def expected_row(service: str, method: str, template: str, needs: Needs, success: int) -> dict:
    """The statuses the declaration promises for the request request_for sends."""
    key = (service, method, template)
    level = needs.level
    if level is Level.LISTING and key in NAMES_WORKSPACE:
        level = Level.MEMBER
    ok = BODY_DECIDES.get(key, success)
    return {role: ok if status == OK else status for role, status in ROWS[level].items()}


@lru_cache(maxsize=1)
def declarations() -> dict:
    """(service, method, template) -> the route's declarations (a list: exactly one is right)."""
    return {(service, method, template): (declared(route), route.status_code or 200)
            for service, app in service_apps().items() for method, template, route in api_routes(app)}


def table() -> dict:
    """(service, method, template) -> expected status per role, from the declarations."""
    return {key: expected_row(*key, found[0], success)
            for key, (found, success) in declarations().items() if len(found) == 1}


def registry_ids(platform, world, template):
    """Ids for the registry's version and upload routes; with a platform, made for real (as the owner)."""
    ids = {"version": "1", "upload_id": "0" * 32, "index": 0, "path": "a.txt"}  # job_id: the world's
    if platform is None or not ("{version}" in template or "{upload_id}" in template):
        return ids
    base = f"workspaces/{world.workspace}/datasets/{world.dataset}/uploads"
    owner = world.tokens["owner"]
    up = platform.api("registry", "POST", base, owner, json={"files": [{"path": "a.txt", "size": 1}]}).json()
    if "{version}" in template or template.endswith("/commit"):
        sent = platform.api("registry", "PATCH", f"{base}/{up['id']}/files/0", owner, params={"offset": 0}, content=b"a")
        assert sent.status_code == 200, sent.text
    if "{version}" in template:
        assert platform.api("registry", "POST", f"{base}/{up['id']}/commit", owner).status_code == 201
    ids["upload_id"] = up["id"]
    return ids


def jobqueue_ids(platform, world, template):
    """Trainings in the state the route needs: retry and delete want an ended (failed) one,
    resume a paused one. Made for real when ``platform`` is given."""
    if template.endswith("/retry") or (template == "/trainings/{training_id}" and platform is not None):
        if platform is not None:
            wait_training(platform, world.tokens["owner"], world.failed_training_id, ("failed",))
        return {"training_id": world.failed_training_id}
    if "{lease_id}" in template:  # a lease of the owner's (released again after the case)
        return {"lease_id": _owners_lease(platform, world) if platform is not None else "0" * 16}
    if template.endswith("/requeue") and platform is not None:  # only a running job is requeued
        wait_state(platform, world.tokens["owner"], f"jobs/{world.job_id}", ("running",))
    if template.endswith("/resume") and platform is not None:
        resp = platform.api("jobqueue", "POST", f"trainings/{world.training_id}/pause", platform.admin_token)
        assert resp.status_code == 200, resp.text
    return {}


def _owners_lease(platform, world) -> str:
    """A lease the owner's spawner asked for as their server ``perm`` started (the jobqueue gives a
    lease only to a server the hub has). The server is stopped again at once: the routes answer
    the same for a lease that has ended. Every world has the same people in the same roles, so
    one lease serves every case."""
    cached = getattr(platform, "_perm_lease", None)
    if cached:
        return cached
    owner, token = world.names["owner"], world.tokens["owner"]
    resp = platform.hub("POST", f"users/{owner}/servers/perm", json={"workspace": world.workspace, "gpus": 1})
    assert resp.status_code in (201, 202), resp.text
    try:
        deadline = time.monotonic() + 60
        while True:
            found = [x for x in platform.api("jobqueue", "GET", "leases", token, params={"all": True}).json()
                     if x["server"] == "perm" and x["workspace"] == world.workspace]
            if found:
                break
            assert time.monotonic() < deadline, "the spawner asked for no lease"
            time.sleep(0.2)
    finally:
        platform.hub("DELETE", f"users/{owner}/servers/perm")
        deadline = time.monotonic() + 60
        while "perm" in (platform.hub("GET", f"users/{owner}").json().get("servers") or {}):
            assert time.monotonic() < deadline, "server perm did not stop"
            time.sleep(0.2)
    platform._perm_lease = found[0]["id"]
    return platform._perm_lease


def request_for(world, role, service, method, template, platform=None):
    """Fill the template and the body for this world; return (path, json body).

    With ``platform``, things the route needs (a dataset version, an upload) are made first.
    """
    target_user = world.names["member"]
    body = None
    if template == "/workspaces" and method == "POST":
        body = {"name": f"{world.workspace}-new-{role}", "settings": {}}
    elif template.endswith("/settings"):
        body = {"max_gpus_per_job": 2}
    elif template == "/leases" and method == "POST":
        body = {"workspace": world.workspace, "server": "perm", "datasets": ["not-there"]}
    elif template == "/trainings" and method == "POST":
        body = {"workspace": world.workspace, "name": "x", "entrypoint": "x.py"}
    elif template == "/builtin-trainings":  # a benchmark small enough to end at once
        body = {"workspace": world.workspace, "name": "b", "model": "synthetic_benchmark", "gpus": 1,
                "params": {"arch": "resnet8", "width": 4, "image_size": 8, "batch_size": 2, "num_iters": 1,
                           "num_warmup_batches": 0, "num_batches_per_iter": 1, "num_classes": 2}}
    elif template == "/code":
        template = f"/code?workspace={world.workspace}&filename=x.py"
        body = "print('hello')"  # sent as the raw body: the file's bytes (a JSON string is valid Python)
    elif template.endswith("/priority"):
        body = {"priority": 5}
    elif template.endswith("/owners"):
        body = {"owners": [world.names["owner"], world.names["manager"]]}
    elif template.endswith("/datasets") and method == "POST":
        body = {"name": f"new-{role}"}
    elif template.endswith("/images") and method == "POST":
        body = {"name": f"new-{role}", "reference": "example.org/x:1"}
    elif template.endswith("/datasets/{name}/uploads") and method == "POST":
        body = {"files": [{"path": "x.txt", "size": 1}]}
    ids = registry_ids(platform, world, template) if service == "registry" else jobqueue_ids(platform, world, template)
    name = world.dataset if "/datasets/" in template else world.image
    if template.startswith("/builtin-models/"):
        name = "tabular"
    ids.setdefault("training_id", world.training_id)
    ids.setdefault("job_id", world.job_id)
    path = template.format(workspace=world.workspace, user=target_user, name=name, **ids)
    if template.endswith("/images/upload"):
        path += f"?name=new-{role}"  # the archive is the body; its metadata are query parameters
    elif template.endswith("/files/{index}"):
        path += "?offset=0"  # an empty chunk: nothing written, the offset stays 0
    elif (service, method, template) in NAMES_WORKSPACE:
        path += f"?workspace={world.workspace}"
    return path, body

"""Permission table: (role, route) -> status, for every route of both services.

Roles: platform administrator; the workspace's manager; the training's owner
(a plain member who created it); another plain member; an outsider (member of
another workspace only). Each case runs in a fresh workspace so destructive
routes do not disturb each other. A route missing from the table fails
``test_table_covers_every_route``.
"""

from __future__ import annotations

import time

import httpx
import pytest

from .world import wait_state, wait_training

pytestmark = pytest.mark.slow

ROLES = ("admin", "manager", "owner", "member", "outsider")


def row(admin, manager, owner, member, outsider):
    return dict(zip(ROLES, (admin, manager, owner, member, outsider)))


# (service, method, path template) -> expected status per role
TABLE = {
    ("jobqueue", "GET", "/info"): row(200, 200, 200, 200, 200),
    ("jobqueue", "GET", "/nodes"): row(200, 403, 403, 403, 403),
    ("jobqueue", "GET", "/workspaces"): row(200, 200, 200, 200, 200),
    ("jobqueue", "POST", "/workspaces"): row(201, 403, 403, 403, 403),
    ("jobqueue", "GET", "/workspaces/{workspace}"): row(200, 200, 200, 200, 404),
    ("jobqueue", "DELETE", "/workspaces/{workspace}"): row(204, 403, 403, 403, 404),
    ("jobqueue", "PATCH", "/workspaces/{workspace}/settings"): row(200, 200, 403, 403, 404),
    ("jobqueue", "PUT", "/workspaces/{workspace}/members/{user}"): row(200, 200, 403, 403, 404),
    ("jobqueue", "DELETE", "/workspaces/{workspace}/members/{user}"): row(200, 200, 403, 403, 404),
    ("jobqueue", "POST", "/code"): row(201, 201, 201, 201, 404),
    ("jobqueue", "POST", "/trainings"): row(201, 201, 201, 201, 404),
    ("jobqueue", "GET", "/trainings"): row(200, 200, 200, 200, 200),
    ("jobqueue", "GET", "/trainings/{training_id}"): row(200, 200, 200, 200, 404),
    ("jobqueue", "PUT", "/trainings/{training_id}/owners"): row(200, 200, 200, 403, 404),
    ("jobqueue", "POST", "/trainings/{training_id}/cancel"): row(200, 200, 200, 403, 404),
    ("jobqueue", "POST", "/trainings/{training_id}/pause"): row(200, 200, 200, 403, 404),
    ("jobqueue", "POST", "/trainings/{training_id}/resume"): row(200, 200, 200, 403, 404),
    ("jobqueue", "POST", "/trainings/{training_id}/retry"): row(200, 200, 200, 403, 404),
    ("jobqueue", "DELETE", "/trainings/{training_id}"): row(204, 204, 204, 403, 404),
    ("jobqueue", "GET", "/jobs"): row(200, 200, 200, 200, 200),
    ("jobqueue", "GET", "/jobs/{job_id}"): row(200, 200, 200, 200, 404),
    ("jobqueue", "GET", "/jobs/{job_id}/logs"): row(200, 200, 200, 200, 404),
    ("jobqueue", "GET", "/jobs/{job_id}/metrics"): row(200, 200, 200, 200, 404),
    ("jobqueue", "POST", "/jobs/{job_id}/cancel"): row(200, 200, 200, 403, 404),
    ("jobqueue", "GET", "/queue"): row(200, 200, 200, 200, 200),
    # administrators and the workspace's managers (the admin page's buttons); requeue: a running job
    ("jobqueue", "PUT", "/jobs/{job_id}/priority"): row(200, 200, 403, 403, 404),
    ("jobqueue", "POST", "/jobs/{job_id}/requeue"): row(200, 200, 403, 403, 404),
    # the pages' data (flightbase_jobqueue/pages): a workspace's dashboard, asked for the world's
    # workspace; the installation's overview, administrators only. The pages themselves (dashboard/,
    # admin/) are not in the API: tests/pages/test_pages_platform.py checks who gets them
    ("jobqueue", "GET", "/dashboard"): row(200, 200, 200, 200, 404),
    ("jobqueue", "GET", "/admin/overview"): row(200, 403, 403, 403, 403),
    # GPU usage, asked for the world's workspace (unfiltered, everyone gets 200: their own workspaces)
    ("jobqueue", "GET", "/usage"): row(200, 200, 200, 200, 404),
    # Jupyter trainings' GPU leases (the spawner asks with the server's token, i.e. as the user);
    # the request names a dataset that is not there: authorised callers get 422, nothing is held
    ("jobqueue", "POST", "/leases"): row(422, 422, 422, 422, 404),
    ("jobqueue", "GET", "/leases"): row(200, 200, 200, 200, 200),
    ("jobqueue", "GET", "/leases/{lease_id}"): row(200, 200, 200, 200, 404),
    ("jobqueue", "DELETE", "/leases/{lease_id}"): row(200, 200, 200, 403, 404),
    # built-in models: the catalogue is for everyone; a built-in training is a training (members)
    ("jobqueue", "GET", "/builtin-models"): row(200, 200, 200, 200, 200),
    ("jobqueue", "GET", "/builtin-models/{name}"): row(200, 200, 200, 200, 200),
    ("jobqueue", "POST", "/builtin-trainings"): row(201, 201, 201, 201, 404),
    # the audit log (flightbase/service/audit.py), unfiltered: administrators, and managers (their workspaces' rows)
    ("jobqueue", "GET", "/audit"): row(200, 200, 403, 403, 403),
    ("registry", "GET", "/audit"): row(200, 200, 403, 403, 403),
    ("registry", "GET", "/workspaces/{workspace}/datasets"): row(200, 200, 200, 200, 404),
    ("registry", "POST", "/workspaces/{workspace}/datasets"): row(201, 201, 201, 201, 404),
    ("registry", "GET", "/workspaces/{workspace}/datasets/{name}"): row(200, 200, 200, 200, 404),
    ("registry", "DELETE", "/workspaces/{workspace}/datasets/{name}"): row(204, 204, 403, 403, 404),
    ("registry", "GET", "/workspaces/{workspace}/images"): row(200, 200, 200, 200, 404),
    ("registry", "POST", "/workspaces/{workspace}/images"): row(201, 201, 201, 201, 404),
    ("registry", "GET", "/workspaces/{workspace}/images/{name}"): row(200, 200, 200, 200, 404),
    ("registry", "DELETE", "/workspaces/{workspace}/images/{name}"): row(204, 204, 403, 403, 404),
    # no image archive in the body: members get as far as the body check (422); outsiders learn nothing
    ("registry", "POST", "/workspaces/{workspace}/images/upload"): row(422, 422, 422, 422, 404),
    ("registry", "GET", "/workspaces/{workspace}/storage"): row(200, 200, 200, 200, 404),
    ("registry", "GET", "/workspaces/{workspace}/datasets/{name}/uploads"): row(200, 200, 200, 200, 404),
    ("registry", "POST", "/workspaces/{workspace}/datasets/{name}/uploads"): row(201, 201, 201, 201, 404),
    ("registry", "GET", "/workspaces/{workspace}/datasets/{name}/uploads/{upload_id}"): row(200, 200, 200, 200, 404),
    ("registry", "DELETE", "/workspaces/{workspace}/datasets/{name}/uploads/{upload_id}"): row(204, 204, 204, 204, 404),
    ("registry", "PATCH", "/workspaces/{workspace}/datasets/{name}/uploads/{upload_id}/files/{index}"): row(200, 200, 200, 200, 404),
    ("registry", "POST", "/workspaces/{workspace}/datasets/{name}/uploads/{upload_id}/commit"): row(201, 201, 201, 201, 404),
    # a data ticket for the upload's chunks (the registry's data endpoint, direct.py)
    ("registry", "POST", "/workspaces/{workspace}/datasets/{name}/uploads/{upload_id}/direct"): row(200, 200, 200, 200, 404),
    ("registry", "GET", "/workspaces/{workspace}/datasets/{name}/versions"): row(200, 200, 200, 200, 404),
    ("registry", "GET", "/workspaces/{workspace}/datasets/{name}/versions/{version}"): row(200, 200, 200, 200, 404),
    ("registry", "DELETE", "/workspaces/{workspace}/datasets/{name}/versions/{version}"): row(204, 204, 403, 403, 404),
    ("registry", "GET", "/workspaces/{workspace}/datasets/{name}/versions/{version}/mount"): row(200, 200, 200, 200, 404),
    ("registry", "GET", "/workspaces/{workspace}/datasets/{name}/versions/{version}/files/{path}"): row(200, 200, 200, 200, 404),
    ("registry", "GET", "/workspaces/{workspace}/datasets/{name}/versions/{version}/archive"): row(200, 200, 200, 200, 404),
    ("registry", "PUT", "/workspaces/{workspace}/datasets/{name}/versions/{version}/uses/{job_id}"): row(200, 200, 200, 200, 404),
    ("registry", "DELETE", "/workspaces/{workspace}/datasets/{name}/versions/{version}/uses/{job_id}"): row(204, 204, 204, 204, 404),
}


def _registry_ids(platform, world, template):
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


def _jobqueue_ids(platform, world, template):
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


def _request(world, role, service, method, template, platform=None):
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
    ids = _registry_ids(platform, world, template) if service == "registry" else _jobqueue_ids(platform, world, template)
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
    elif template in ("/usage", "/dashboard"):
        path += f"?workspace={world.workspace}"
    return path, body


CASES = [(key, role) for key in TABLE for role in ROLES]


@pytest.mark.parametrize(("key", "role"), CASES, ids=[f"{s}-{m}-{p}-{r}" for (s, m, p), r in CASES])
def test_permission(platform, request, key, role):
    """Reads share one world per module; anything that may change state gets a fresh one."""
    service, method, template = key
    world = request.getfixturevalue("shared_world" if method == "GET" else "world")
    path, body = _request(world, role, service, method, template, platform)
    resp = platform.api(service, method, path, world.tokens[role], json=body)
    if "{lease_id}" in template:  # give the slot back at once
        platform.api("jobqueue", "DELETE", path, platform.admin_token)
    expected = TABLE[key][role]
    assert resp.status_code == expected, f"{role} {method} {path}: {resp.status_code} {resp.text}"
    if resp.status_code >= 400:
        assert resp.json()["message"], "every error names its reason"
    if expected == 404:
        assert world.workspace not in resp.text or "not found" in resp.text


def test_listings_hide_other_workspaces(platform, world):
    outsider = world.tokens["outsider"]
    names = {w["name"] for w in platform.api("jobqueue", "GET", "workspaces", outsider).json()}
    assert world.workspace not in names and world.other_workspace in names
    trainings = platform.api("jobqueue", "GET", "trainings", outsider).json()
    assert world.training_id not in {t["id"] for t in trainings}
    mine = platform.api("jobqueue", "GET", "trainings", world.tokens["member"], params={"workspace": world.workspace}).json()
    assert world.training_id in {t["id"] for t in mine}


def test_owner_is_recorded_and_transferable(platform, world):
    t = platform.api("jobqueue", "GET", f"trainings/{world.training_id}", world.tokens["member"]).json()
    assert t["owners"] == [world.names["owner"]] and t["created_by"] == world.names["owner"]
    resp = platform.api("jobqueue", "PUT", f"trainings/{world.training_id}/owners", world.tokens["owner"], json={"owners": [world.names["member"]]})
    assert resp.status_code == 200 and resp.json()["owners"] == [world.names["member"]]
    # the old owner lost control; the new one has it
    again = platform.api("jobqueue", "PUT", f"trainings/{world.training_id}/owners", world.tokens["owner"], json={"owners": [world.names["owner"]]})
    assert again.status_code == 403
    bad = platform.api("jobqueue", "PUT", f"trainings/{world.training_id}/owners", world.tokens["member"], json={"owners": [world.names["outsider"]]})
    assert bad.status_code == 422 and bad.json()["field"] == "owners"


def _routes(platform):
    for service in ("jobqueue", "registry"):
        doc = httpx.get(f"{platform.url}/services/{service}/api/v1/openapi.json").json()
        prefix = f"/services/{service}/api/v1"
        for path, ops in doc["paths"].items():
            if not path.startswith(prefix):
                continue
            for method in ops:
                yield service, method.upper(), path[len(prefix):]


def test_table_covers_every_route(platform):
    assert set(_routes(platform)) == set(TABLE)


def test_every_route_refuses_requests_without_credentials(platform, world):
    """Walks the route table of both services (from their OpenAPI documents)."""
    checked = 0
    for service, method, template in _routes(platform):
        path, body = _request(world, "admin", service, method, template)
        for headers in ({}, {"Authorization": "token not-a-real-token"}):
            resp = platform.api(service, method, path, json=body, headers=dict(headers))
            assert resp.status_code == 401, f"{method} {service}{path} with {headers}: {resp.status_code}"
            assert "message" in resp.json()
        checked += 1
    assert checked == len(TABLE)
    # ...and nothing was changed by those attempts
    assert platform.api("jobqueue", "GET", f"trainings/{world.training_id}", world.tokens["owner"]).status_code == 200

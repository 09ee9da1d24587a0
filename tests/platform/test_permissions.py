"""Permission table: (role, route) -> status, for every route of both services, on a real platform.

The expectations are not written here: each API route declares its access level on the route
(``flightbase_server.service.access``), and tests/helpers/permissions.py turns the level into a status
per role (its ``ROWS``). This test measures them on the running services, so a wrong declaration
fails here; tests/unit/test_route_access.py fails at once for a route without one.

Roles: platform administrator; the workspace's manager; the training's owner
(a plain member who created it); another plain member; an outsider (member of
another workspace only). Each case runs in a fresh workspace so destructive
routes do not disturb each other. A route the services serve but the apps built in
process do not declare fails ``test_table_covers_every_route``.
"""

from __future__ import annotations

import httpx
import pytest

from tests.helpers.permissions import ROLES, declarations, request_for, table

pytestmark = pytest.mark.slow

# (service, method, path template) -> expected status per role: each route's declared access level
# (flightbase_server.service.access.Level) through tests/helpers/permissions.py's ROWS
TABLE = table()


CASES = [(key, role) for key in TABLE for role in ROLES]


@pytest.mark.parametrize(("key", "role"), CASES, ids=[f"{s}-{m}-{p}-{r}" for (s, m, p), r in CASES])
def test_permission(platform, request, key, role):
    """Reads share one world per module; anything that may change state gets a fresh one."""
    service, method, template = key
    world = request.getfixturevalue("shared_world" if method == "GET" else "world")
    path, body = request_for(world, role, service, method, template, platform)
    resp = platform.api(service, method, path, world.tokens[role], json=body)
    if "{lease_id}" in template:  # give the slot back at once
        platform.api("jobqueue", "DELETE", path, platform.admin_token)
    expected = TABLE[key][role]
    assert resp.status_code == expected, f"{role} {method} {path}: {resp.status_code} {resp.text}"
    if resp.status_code >= 400:
        assert resp.json()["message"], "every error names its reason"
    if expected == 404:
        assert "not found" in resp.text
        if world.workspace not in path + repr(body):  # a training, job or lease named by id: not its workspace
            assert world.workspace not in resp.text, resp.text


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
    """The running services serve exactly the routes the apps built in process declare, each once."""
    assert all(len(found) == 1 for found, _ in declarations().values())
    assert set(_routes(platform)) == set(TABLE)


def test_every_route_refuses_requests_without_credentials(platform, world):
    """Walks the route table of both services (from their OpenAPI documents)."""
    checked = 0
    for service, method, template in _routes(platform):
        path, body = request_for(world, "admin", service, method, template)
        for headers in ({}, {"Authorization": "token not-a-real-token"}):
            resp = platform.api(service, method, path, json=body, headers=dict(headers))
            assert resp.status_code == 401, f"{method} {service}{path} with {headers}: {resp.status_code}"
            assert "message" in resp.json()
        checked += 1
    assert checked == len(TABLE)
    # ...and nothing was changed by those attempts
    assert platform.api("jobqueue", "GET", f"trainings/{world.training_id}", world.tokens["owner"]).status_code == 200

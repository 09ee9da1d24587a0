"""Every API route of both services declares its access level on the route.

The two FastAPI apps are built in process (``build(settings)``: nothing started, no hub, no
platform) and every route under ``api/v1`` is walked: each must carry exactly one
``flightbase_server.service.access.Needs`` in its dependencies. What each level answers for each role is
measured on a real platform by tests/platform/test_permissions.py, from the same declarations.
"""

from __future__ import annotations

from typing import Annotated

import pytest
from fastapi import FastAPI

from flightbase_server.service.access import InWorkspace, Level, Needs, Person, declared, workspace
from tests.helpers.permissions import ROWS, api_routes, declarations, service_apps, table


def test_every_api_route_declares_exactly_one_level():
    found = declarations()
    assert len(found) > 60, "both services' API routes were found"
    undeclared = sorted(f"{s} {m} {p}" for (s, m, p), (needs, _) in found.items() if not needs)
    several = sorted(f"{s} {m} {p}: {[n.level.value for n in needs]}"
                     for (s, m, p), (needs, _) in found.items() if len(needs) > 1)
    assert not undeclared, f"routes without a declared access level: {undeclared}"
    assert not several, f"routes with more than one access level: {several}"


def test_each_service_has_its_routes():
    apps = service_apps()
    templates = {name: {p for _, p, _ in api_routes(app)} for name, app in apps.items()}
    assert {"/trainings/{training_id}/cancel", "/jobs/{job_id}/logs", "/audit"} <= templates["jobqueue"]
    assert {"/workspaces/{workspace}/datasets/{name}/uploads/{upload_id}/commit", "/audit"} <= templates["registry"]


def test_every_level_has_a_row_and_every_row_is_used():
    levels = {needs[0].level for needs, _ in declarations().values()}
    assert set(ROWS) == set(Level) == levels


def test_the_table_is_generated_for_every_route():
    rows = table()
    assert set(rows) == set(declarations())
    # a few rows, as the levels say
    assert rows[("jobqueue", "POST", "/trainings/{training_id}/pause")] == {
        "admin": 200, "manager": 200, "owner": 200, "member": 403, "outsider": 404}
    assert rows[("registry", "DELETE", "/workspaces/{workspace}/datasets/{name}")] == {
        "admin": 204, "manager": 204, "owner": 403, "member": 403, "outsider": 404}
    assert rows[("jobqueue", "POST", "/leases")]["member"] == 422  # the body decides (BODY_DECIDES)


def test_the_walk_sees_a_route_without_a_declaration():
    """The walk can fail: a route that only authenticates declares nothing."""
    from flightbase_server.service.deps import CurrentIdentity

    app = FastAPI()

    @app.get("/plain")
    async def plain(identity: CurrentIdentity):
        return {}

    @app.get("/declared/{workspace}")
    async def declared_route(w: Annotated[InWorkspace, workspace(Level.MEMBER, "workspace:read")]):
        return {}

    @app.get("/person")
    async def person(identity: Person):
        return {}

    routes = {r.path: r for r in app.routes if hasattr(r, "dependant")}
    assert declared(routes["/plain"]) == []
    assert declared(routes["/declared/{workspace}"]) == [Needs(Level.MEMBER, "workspace:read")]
    assert declared(routes["/person"]) == [Needs(Level.PERSON)]


@pytest.mark.parametrize(("level", "permission", "why"), [
    (Level.MANAGER, "trainings:write", "needs a manager action"),
    (Level.MEMBER, "datasets:delete", "is a manager action"),
    (Level.LISTING, "workspace:manage", "is a manager action"),
    (Level.MEMBER, "trainings:launch", "unknown permission"),
])
def test_a_declaration_that_contradicts_its_permission_is_refused(level, permission, why):
    with pytest.raises(ValueError, match=why):
        Needs(level, permission)

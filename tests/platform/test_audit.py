"""The audit log on the real platform (flightbase_server/service/audit.py).

- Every state-changing route of both services (the permission table's rows
  that are not GET) is called once, as a member where a member may and else
  by the first role that may, and its row is read straight from the service's
  database: actor, kind, credential, route template, target, workspace, status.
- Requests the guards answer before the route (401, 403 XSRF, 413), and the
  registry's data endpoint (chunks sent with a data ticket), get rows too.
- ``GET /audit``: who may read what, and its filters.
- Nothing secret is ever in the table.
- Retention: rows older than ``FLIGHTBASE_AUDIT_RETENTION_DAYS`` are gone
  after a restart (a platform of its own).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import create_engine, insert, select
from starlette.routing import compile_path

from flightbase_server.service import audit
from flightbase_server.service.db import utcnow
from tests.helpers.direct_uploads import declare, patch, ticket
from tests.helpers.permissions import request_for, table
from tests.helpers.platforms import running_platform

from .harness import form

pytestmark = pytest.mark.slow

TABLE = table()  # the permission table, from the routes' declared access levels
STATE_CHANGING = [key for key in TABLE if key[1] != "GET"]
ACTOR_ORDER = ("member", "owner", "manager", "admin")


def acting_role(key) -> str:
    """A plain member where members may do it; else the first role that may (the table says who)."""
    return next((role for role in ACTOR_ORDER if TABLE[key][role] < 400), "member")


def rows(platform, service: str, **where) -> list[dict]:
    """The service's audit rows, oldest first (read from its SQLite database, as another process may)."""
    engine = create_engine(f"sqlite:///{platform.data_dir / f'{service}.sqlite'}")
    try:
        q = select(audit.events).order_by(audit.events.c.id)
        for column, value in where.items():
            q = q.where(audit.events.c[column] == value)
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]
    finally:
        engine.dispose()


def wait_rows(platform, service: str, check=lambda found: bool(found), timeout: float = 10,
              since: dt.datetime | None = None, **where) -> list[dict]:
    """The rows matching ``where`` (and, with ``since``, of requests that arrived since then) once
    ``check`` accepts them. The writer commits about 0.2 s after the answer (``audit.LINGER_SECONDS``):
    a test waiting for its own request's row must not take an earlier test's row for it (``since``)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [r for r in rows(platform, service, **where) if since is None or r["at"] >= since]
        if check(found):
            return found
        assert time.monotonic() < deadline, f"no such audit rows in {service}: {where}; got {found[-3:]}"
        time.sleep(0.05)


def target_of(template: str, path: str) -> dict:
    match = compile_path(template)[0].match(urlsplit(path).path)
    assert match, (template, path)
    return match.groupdict()


@pytest.mark.parametrize("key", STATE_CHANGING, ids=[f"{s}-{m}-{p}" for s, m, p in STATE_CHANGING])
def test_every_state_changing_route_gets_a_row(platform, world, key):
    service, method, template = key
    role = acting_role(key)
    path, body = request_for(world, role, service, method, template, platform)
    started = utcnow()
    resp = platform.api(service, method, path, world.tokens[role], json=body)
    if "{lease_id}" in template:  # give the slot back at once (the administrator's own row)
        platform.api("jobqueue", "DELETE", path, platform.admin_token)
    assert resp.status_code == TABLE[key][role], resp.text
    found = wait_rows(platform, service, method=method, route=template, actor=world.names[role],
                      check=lambda found: any(r["at"] >= started - dt.timedelta(seconds=1) for r in found))
    got = found[-1]
    assert got["service"] == service
    assert got["actor_kind"] == "user" and got["credential"] == "token"
    assert got["target"] == target_of(template, path)
    assert got["status"] == resp.status_code
    # the workspace: named by the path or the query, else the one the route authorised in (a body's)
    expected = None if template == "/workspaces" else world.workspace
    if "{lease_id}" in template:  # one lease serves every world: the one of the world that asked first
        expected = platform.api("jobqueue", "GET", path, platform.admin_token).json()["workspace"]
    assert got["workspace"] == expected
    assert abs(got["at"] - started) < dt.timedelta(seconds=30)


def test_requests_refused_before_the_route_get_rows(platform, world):
    admin = platform.admin_token
    started = utcnow()
    after = {"check": lambda found: any(r["at"] >= started - dt.timedelta(seconds=1) for r in found)}
    # no credentials (limits.py: 401 before the body)
    assert platform.api("jobqueue", "POST", f"trainings/{world.training_id}/cancel").status_code == 401
    got = wait_rows(platform, "jobqueue", route="/trainings/{training_id}/cancel", status=401, credential="none", **after)[-1]
    assert (got["actor"], got["actor_kind"], got["target"]) == (None, "anonymous", {"training_id": world.training_id})
    # a token the hub does not know (the route's 401)
    assert platform.api("registry", "DELETE", f"workspaces/{world.workspace}/images/img", "not-a-token").status_code == 401
    got = wait_rows(platform, "registry", route="/workspaces/{workspace}/images/{name}", status=401, **after)[-1]
    assert (got["actor"], got["actor_kind"], got["credential"], got["workspace"]) == (None, "anonymous", "token",
                                                                                      world.workspace)
    # a body over the cap with a good token (limits.py: 413 before the route; who sent it is not known yet)
    big = platform.api("jobqueue", "POST", "trainings", admin, content=b"x" * (2 << 20),
                       headers={"Content-Type": "application/json"})
    assert big.status_code == 413
    got = wait_rows(platform, "jobqueue", route="/trainings", status=413, **after)[-1]
    assert (got["actor"], got["credential"]) == (None, "token")
    # the browser's cookie without the page's XSRF token (xsrf.py: 403), then with it (the registry's page)
    with httpx.Client(base_url=platform.url, follow_redirects=True, timeout=30) as browser:
        form(browser, "/hub/login", {"username": "admin", "password": platform.admin_password}).raise_for_status()
        assert browser.get("/services/registry/", headers={"Accept": "text/html"}).status_code == 200
        base = f"/services/registry/api/v1/workspaces/{world.workspace}/datasets"
        assert browser.post(base, json={"name": "by-cookie"}).status_code == 403
        token = browser.cookies.get("flightbase-registry-xsrf")
        assert browser.post(base, json={"name": "by-cookie"}, headers={"X-XSRF-Token": token}).status_code == 201
    refused, made = wait_rows(platform, "registry", route="/workspaces/{workspace}/datasets", credential="cookie",
                              check=lambda found: len([r for r in found if r["at"] >= started]) >= 2)[-2:]
    assert (refused["status"], refused["actor"], refused["actor_kind"]) == (403, None, "anonymous")
    assert (made["status"], made["actor"], made["actor_kind"]) == (201, "admin", "user")
    assert made["workspace"] == refused["workspace"] == world.workspace


def test_data_endpoint_chunks_get_rows(platform, world):
    """PATCHes to the registry's data port carry a data ticket instead of a hub token."""
    up = declare(platform, world, b"hello")
    t = ticket(platform, world, up).json()
    status, _ = patch(t, 0, 0, b"hello", t["token"])
    assert status == 200
    refused, _ = patch(t, 0, 5, b"", "not-a-ticket")
    assert refused == 401
    route = "/uploads/{upload_id}/files/{index}"
    good, bad = wait_rows(platform, "registry", route=route, check=lambda found: len(
        [r for r in found if r["target"]["upload_id"] == up["id"]]) >= 2)[-2:]
    assert good == {**good, "service": "registry", "actor": world.names["member"], "actor_kind": "user",
                    "credential": "ticket", "method": "PATCH", "target": {"upload_id": up["id"], "index": "0"},
                    "workspace": world.workspace, "status": 200}
    assert (bad["actor"], bad["actor_kind"], bad["credential"], bad["status"]) == (None, "anonymous", "ticket", 401)
    dump = json.dumps(rows(platform, "registry"), default=str)
    assert t["token"] not in dump and t["token"].rsplit(".", 1)[1] not in dump
    platform.api("registry", "DELETE", f"workspaces/{world.workspace}/datasets/d/uploads/{up['id']}", world.tokens["admin"])


def audit_api(platform, service: str, role_token: str, **params) -> httpx.Response:
    return platform.api(service, "GET", "audit", role_token, params=params)


def test_who_may_read_the_audit_log(platform, world):
    admin, tokens = platform.admin_token, world.tokens
    began = utcnow()
    # a change in each workspace: the world's, and the other one (where the manager is nobody)
    for ws in (world.workspace, world.other_workspace):
        resp = platform.api("jobqueue", "PATCH", f"workspaces/{ws}/settings", admin, json={"idle_timeout_minutes": 30})
        assert resp.status_code == 200, resp.text
    for ws in (world.workspace, world.other_workspace):
        wait_rows(platform, "jobqueue", route="/workspaces/{workspace}/settings", workspace=ws, since=began)
    managed = {w["name"] for w in platform.api("jobqueue", "GET", "workspaces", admin).json()
               if world.names["manager"] in w["managers"]}
    for service in ("jobqueue", "registry"):
        everything = audit_api(platform, service, admin, limit=1000)
        assert everything.status_code == 200 and everything.json()
        mine = audit_api(platform, service, tokens["manager"], limit=1000)
        assert mine.status_code == 200 and mine.json()
        assert {e["workspace"] for e in mine.json()} <= managed, "a manager sees their workspaces' rows only"
        assert {world.workspace} == {e["workspace"] for e in
                                     audit_api(platform, service, tokens["manager"], workspace=world.workspace).json()}
        # (role, workspace filter) -> status
        for role, ws, expected in (("manager", world.other_workspace, 404), ("member", world.workspace, 403),
                                   ("owner", None, 403), ("outsider", world.workspace, 404), ("outsider", None, 403),
                                   ("admin", world.other_workspace, 200)):
            resp = audit_api(platform, service, tokens[role], **({"workspace": ws} if ws else {}))
            assert resp.status_code == expected, (service, role, ws, resp.text)
            if expected != 200:
                assert resp.json()["message"]
    other = audit_api(platform, "jobqueue", admin, workspace=world.other_workspace).json()
    assert other and {e["workspace"] for e in other} == {world.other_workspace}
    # rows without a workspace (creating one; anonymous refusals) are the administrators' alone
    assert any(e["workspace"] is None for e in audit_api(platform, "jobqueue", admin, limit=1000).json())


def test_audit_filters(platform, world):
    admin, owner, member = platform.admin_token, world.tokens["owner"], world.tokens["member"]
    ws, tid = world.workspace, world.training_id
    first = utcnow()
    assert platform.api("jobqueue", "POST", f"trainings/{tid}/pause", member).status_code == 403
    time.sleep(0.05)
    middle = utcnow()
    assert platform.api("jobqueue", "POST", f"trainings/{tid}/pause", owner).status_code == 200
    assert platform.api("jobqueue", "POST", f"trainings/{tid}/resume", owner).status_code == 200
    wait_rows(platform, "jobqueue", route="/trainings/{training_id}/resume", actor=world.names["owner"], since=middle)

    def events(**params) -> list[dict]:
        resp = audit_api(platform, "jobqueue", admin, workspace=ws, **params)
        assert resp.status_code == 200, resp.text
        return resp.json()

    everything = events(limit=1000)
    times = [dt.datetime.fromisoformat(e["at"]) for e in everything]
    assert times == sorted(times, reverse=True) and all(t.utcoffset() == dt.timedelta(0) for t in times), "newest first"
    assert [e["route"] for e in everything[:3]] == ["/trainings/{training_id}/resume", "/trainings/{training_id}/pause",
                                                    "/trainings/{training_id}/pause"]
    assert {e["workspace"] for e in everything} == {ws}
    by_owner = events(actor=world.names["owner"])
    assert by_owner and {e["actor"] for e in by_owner} == {world.names["owner"]}
    assert {e["method"] for e in events(action="post")} == {"POST"}
    paused = events(action="/trainings/{training_id}/pause")
    assert [(e["actor"], e["status"]) for e in paused] == [(world.names["owner"], 200), (world.names["member"], 403)]
    assert events(action="DELETE /trainings/{training_id}/pause") == []
    assert [e["actor"] for e in events(status="403", action="/trainings/{training_id}/pause")] == [world.names["member"]]
    assert {e["status"] // 100 for e in events(status="2xx")} == {2}
    since = events(**{"from": middle.isoformat()})
    assert [e["route"] for e in since] == ["/trainings/{training_id}/resume", "/trainings/{training_id}/pause"]
    until = events(to=middle.isoformat(), action="/trainings/{training_id}/pause")
    assert [e["actor"] for e in until] == [world.names["member"]]
    assert first - dt.timedelta(seconds=1) <= dt.datetime.fromisoformat(until[0]["at"]) < middle
    assert len(events(limit=1)) == 1 and events(limit=1)[0] == everything[0]
    for params, field in (({"status": "2"}, "status"), ({"from": "yesterday"}, "from"), ({"limit": "0"}, "limit"),
                          ({"action": "GET"}, "action"), ({"from": "2027-02-01", "to": "2027-01-01"}, "from")):
        resp = audit_api(platform, "jobqueue", admin, **params)
        assert resp.status_code == 422 and resp.json()["field"] == field, (params, resp.text)


def test_nothing_secret_is_recorded(platform, world):
    """Tokens, passwords and secret values sent in every place a request has: none is in either table."""
    owner = world.tokens["owner"]
    began = utcnow()
    secret_value, query_token, bad_token, password = ("sv-" + "7" * 20, "qt-" + "8" * 20, "bt-" + "9" * 20,
                                                      "pw-" + "6" * 20)
    made = platform.api("jobqueue", "POST", "trainings", owner, json={
        "workspace": world.workspace, "name": "s", "entrypoint": "x.py", "secret_env": {"API_KEY": secret_value}})
    assert made.status_code == 201, made.text
    platform.api("jobqueue", "POST", f"trainings/{made.json()['id']}/cancel", owner, params={"token": query_token})
    assert platform.api("jobqueue", "POST", "workspaces", bad_token, json={"name": "x"}).status_code == 401
    platform.api("registry", "POST", f"workspaces/{world.workspace}/images", owner,
                 json={"name": "p", "reference": "example.org/p:1", "password": password})
    with httpx.Client(base_url=platform.url, follow_redirects=True, timeout=30) as browser:
        form(browser, "/hub/login", {"username": "admin", "password": platform.admin_password})
        browser.get("/services/registry/", headers={"Accept": "text/html"})
        cookies = [c.value for c in browser.cookies.jar]
        browser.post(f"/services/registry/api/v1/workspaces/{world.workspace}/datasets", json={"name": "c"})
    wait_rows(platform, "registry", route="/workspaces/{workspace}/datasets", credential="cookie", since=began)
    wait_rows(platform, "registry", route="/workspaces/{workspace}/images", since=began)
    wait_rows(platform, "jobqueue", route="/workspaces", status=401, since=began)
    wait_rows(platform, "jobqueue", route="/trainings/{training_id}/cancel", actor=world.names["owner"],
              check=lambda found: any(r["target"]["training_id"] == made.json()["id"] for r in found))
    dump = json.dumps([rows(platform, "jobqueue"), rows(platform, "registry")], default=str)
    for secret in (secret_value, query_token, bad_token, password, owner, platform.admin_token,
                   platform.admin_password, *[c for c in cookies if len(c) >= 16], *world.tokens.values()):
        assert secret not in dump


def test_old_rows_are_pruned_at_start(tmp_path_factory):
    """A platform of its own, keeping rows 30 days: a row of 31 days is gone after a restart, one of 29 stays."""
    with running_platform(tmp_path_factory, "retention", extra_env={"FLIGHTBASE_AUDIT_RETENTION_DAYS": "30"},
                          gpus="1") as p:
        now = utcnow()
        for service in ("jobqueue", "registry"):
            engine = create_engine(f"sqlite:///{p.data_dir / f'{service}.sqlite'}")
            with engine.begin() as conn:
                conn.execute(insert(audit.events), [
                    audit.make_row(at=now - dt.timedelta(days=days), service=service, actor="x", actor_kind="user",
                                   credential="token", method="POST", route=f"/{days}-days-old", target={},
                                   workspace=None, status=200) for days in (31, 29)])
            engine.dispose()
        p.stop()
        p.start()
        for service in ("jobqueue", "registry"):
            left = wait_rows(p, service, check=lambda found: not any(r["route"] == "/31-days-old" for r in found))
            assert "/29-days-old" in {r["route"] for r in left}

"""The audit log's parts without a platform: filters, rows, the writer, the middleware in a service.

The middleware runs inside an application made by the kit's own
``create_app`` (every guard of a real service: credentials, body limits,
XSRF) over a real SQLite database migrated by the registry's own migrations;
the writer's thread writes there. Only the hub is missing: the routes'
``current_identity`` is replaced by one that knows two tokens, because what
is tested is what the middleware makes of the identity a route
authenticated, not how the hub authenticates (the real hub, both services
and every route: ``tests/platform/test_audit.py``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi import APIRouter, Request
from flightbase_server.service.hub_login import HubLogin
from sqlalchemy import create_engine, insert, select, text

from flightbase_server import platform as fb_platform
from flightbase_server.authz import Identity
from flightbase_server.service import audit, db
from flightbase_server.service.app import create_app
from flightbase_server.service.auth import current_identity
from flightbase_server.service.deps import CurrentIdentity
from flightbase_server.service.errors import ApiError
from flightbase_server.settings import PlatformSettings

ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS = {
    "jobqueue": ROOT / "services/jobqueue/flightbase_jobqueue/migrations",
    "registry": ROOT / "services/registry/flightbase_registry/migrations",
}
NOW = dt.datetime(2027, 1, 10, 12, 0, tzinfo=dt.timezone.utc)


# --- filters of GET /audit (pure)

@pytest.mark.parametrize(("given", "expected"), [
    ({}, audit.Filters()),
    ({"actor": "alice", "workspace": "w"}, audit.Filters(actor="alice", workspace="w")),
    ({"action": "post"}, audit.Filters(method="POST")),
    ({"action": "/trainings/{training_id}/cancel"}, audit.Filters(route="/trainings/{training_id}/cancel")),
    ({"action": "DELETE /trainings/{training_id}"}, audit.Filters(method="DELETE", route="/trainings/{training_id}")),
    ({"status": "403"}, audit.Filters(status=(403, 404))),
    ({"status": "4xx"}, audit.Filters(status=(400, 500))),
    ({"from": "2027-01-01", "to": "2027-01-02T00:00:00Z"},
     audit.Filters(since=dt.datetime(2027, 1, 1, tzinfo=dt.timezone.utc), until=dt.datetime(2027, 1, 2, tzinfo=dt.timezone.utc))),
    ({"from": "2027-01-01T01:00:00+01:00"}, audit.Filters(since=dt.datetime(2027, 1, 1, tzinfo=dt.timezone.utc))),
    ({"limit": "1000"}, audit.Filters(limit=1000)),
    ({"limit": ""}, audit.Filters(limit=100)),
    # refused, with the parameter named
    ({"action": "GET"}, "action"),
    ({"action": "trainings"}, "action"),
    ({"action": "POST /a /b"}, "action"),
    ({"status": "600"}, "status"),
    ({"status": "4x"}, "status"),
    ({"status": "abc"}, "status"),
    ({"from": "yesterday"}, "from"),
    ({"to": "2027-13-01"}, "to"),
    ({"from": "2027-01-02", "to": "2027-01-01"}, "from"),
    ({"limit": "0"}, "limit"),
    ({"limit": "1001"}, "limit"),
    ({"limit": "ten"}, "limit"),
])
def test_parse_filters(given, expected):
    kwargs = {{"from": "since", "to": "until"}.get(k, k): v for k, v in given.items()}
    if isinstance(expected, str):
        with pytest.raises(ApiError) as caught:
            audit.parse_filters(**kwargs)
        assert caught.value.status == 422 and caught.value.field == expected and caught.value.message
    else:
        assert audit.parse_filters(**kwargs) == expected


# --- rows and credentials (pure)

def test_make_row_cuts_every_text_to_its_column():
    row = audit.make_row(at=NOW, service="registry", actor="a" * 300, actor_kind="user", credential="token",
                         method="PATCH", route="/x/" + "y" * 300, target={"name": "n" * 1000, "index": 3},
                         workspace="w" * 100, status="200")
    assert len(row["actor"]) == 255 and len(row["route"]) == 255 and len(row["workspace"]) == 64
    assert row["target"] == {"name": "n" * 255, "index": "3"} and row["status"] == 200


@pytest.mark.parametrize(("headers", "expected"), [
    ([], "none"),
    ([(b"authorization", b"token abc")], "token"),
    ([(b"authorization", b"Bearer abc")], "token"),
    ([(b"authorization", b"Basic abc")], "none"),  # not what authentication looks at
    ([(b"cookie", b"hubcookie=abc")], "cookie"),
    ([(b"cookie", b"other=abc")], "none"),
    ([(b"cookie", b"hubcookie=abc"), (b"authorization", b"token abc")], "token"),  # the header wins, as in auth
])
def test_credential_of(headers, expected):
    assert audit.credential_of({"headers": headers}, "hubcookie", HubLogin.auth_header_pat) == expected


def test_retention_setting():
    assert fb_platform.retention_days({}) == 365 == PlatformSettings.audit_retention_days
    assert fb_platform.retention_days({"FLIGHTBASE_AUDIT_RETENTION_DAYS": " 30 "}) == 30
    assert fb_platform.retention_days({"FLIGHTBASE_AUDIT_RETENTION_DAYS": "0"}) == 0
    for bad in ("-1", "thirty", "1.5"):
        with pytest.raises(fb_platform.UsageError, match="FLIGHTBASE_AUDIT_RETENTION_DAYS"):
            fb_platform.retention_days({"FLIGHTBASE_AUDIT_RETENTION_DAYS": bad})
    settings = PlatformSettings(data_dir=Path("/tmp/x"), audit_retention_days=7)
    assert PlatformSettings.from_env(settings.to_env()).audit_retention_days == 7


# --- the table: the migrations of both services make exactly the shared definition

@pytest.mark.parametrize("service", sorted(MIGRATIONS))
def test_migrations_make_the_shared_table(tmp_path, service):
    engine = db.make_engine(f"sqlite:///{tmp_path / 'x.sqlite'}")
    db.upgrade(engine, MIGRATIONS[service])
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), audit.metadata)
        indexes = {row[1] for row in conn.execute(text("PRAGMA index_list('audit_events')"))}
    ours = [d for d in diffs if "audit_events" in repr(d)]
    assert ours == []
    assert {i.name for i in audit.events.indexes} <= indexes
    engine.dispose()


# --- the writer, on a real SQLite database

def migrated(tmp_path, service="registry") -> tuple[db.Sessions, object]:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'audit.sqlite'}")
    db.upgrade(engine, MIGRATIONS[service])
    return db.Sessions(engine), engine


def row(**changes) -> dict:
    base = dict(at=NOW, service="registry", actor="alice", actor_kind="user", credential="token", method="POST",
                route="/x", target={}, workspace="w", status=201)
    return audit.make_row(**{**base, **changes})


def rows_in(engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(audit.events).order_by(audit.events.c.id))]


def wait_for(check, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.02)


def test_writer_keeps_rows_from_before_its_start_and_writes_every_row_by_the_stop(tmp_path):
    sessions, engine = migrated(tmp_path)
    writer = audit.AuditWriter("registry")
    writer.record(row(route="/early"))
    writer.start(sessions, retention_days=0)
    for i in range(5000):
        writer.record(row(target={"i": i}))
    writer.stop()
    found = rows_in(engine)
    assert len(found) == 5001 and found[0]["route"] == "/early"
    assert [r["target"]["i"] for r in found[1:]] == [str(i) for i in range(5000)]  # in order, none twice
    writer.record(row(route="/late"))  # after the stop (a data-endpoint chunk ending late): written at once
    assert rows_in(engine)[-1]["route"] == "/late"
    engine.dispose()


def counting_transactions(sessions) -> list:
    """A list that gets an item each time ``sessions`` begins a write transaction."""
    commits = []
    original = sessions.begin

    def counted():
        commits.append(1)
        return original()

    sessions.begin = counted
    return commits


def test_writer_batches(tmp_path):
    """A burst is written in a few transactions, not one per row."""
    sessions, engine = migrated(tmp_path)
    commits = counting_transactions(sessions)
    writer = audit.AuditWriter("registry")
    writer.start(sessions, retention_days=0)
    for i in range(3000):
        writer.record(row())
    writer.stop()
    assert len(rows_in(engine)) == 3000
    assert len(commits) <= 3000 // audit.MAX_BATCH + 10
    engine.dispose()


def test_writer_gathers_a_trickle_of_rows(tmp_path):
    """Rows that come one at a time, a few milliseconds apart (a steady pace of requests), share
    transactions: the writer, woken by the first, waits ``linger_seconds`` for others. A clean stop
    cuts the wait short and still writes every row."""
    sessions, engine = migrated(tmp_path)
    commits = counting_transactions(sessions)
    writer = audit.AuditWriter("registry")
    writer.linger_seconds = 0.5
    writer.start(sessions, retention_days=0)
    for i in range(20):
        writer.record(row(target={"i": i}))
        time.sleep(0.005)
    wait_for(lambda: len(rows_in(engine)) == 20)
    assert len(commits) <= 3, commits  # without the linger: one transaction per row
    writer.record(row(route="/last"))
    writer.stop()  # during the linger: written all the same
    assert rows_in(engine)[-1]["route"] == "/last"
    engine.dispose()


def test_a_row_the_database_refuses_loses_only_itself(tmp_path):
    sessions, engine = migrated(tmp_path)
    writer = audit.AuditWriter("registry")
    bad = {**row(), "status": None}  # NOT NULL
    for r in (row(route="/a"), bad, row(route="/b")):
        writer.record(r)
    writer.start(sessions, retention_days=0)
    writer.stop()
    assert [r["route"] for r in rows_in(engine)] == ["/a", "/b"]
    assert writer.dropped == 1
    engine.dispose()


def test_rows_wait_while_the_database_cannot_be_written(tmp_path):
    """No table yet (as if the database were down): the rows wait, and are written once it can be."""
    engine = db.make_engine(f"sqlite:///{tmp_path / 'late.sqlite'}")
    writer = audit.AuditWriter("registry")
    writer.start(db.Sessions(engine), retention_days=0)
    writer.record(row(route="/waiting"))
    time.sleep(0.3)  # the first attempt fails
    audit.metadata.create_all(engine)
    wait_for(lambda: len(rows_in(engine)) == 1, timeout=15)
    writer.stop()
    assert rows_in(engine)[0]["route"] == "/waiting"
    engine.dispose()


def test_pruned_at_start_and_then_periodically(tmp_path):
    sessions, engine = migrated(tmp_path)
    now = db.utcnow()
    with engine.begin() as conn:
        conn.execute(insert(audit.events), [row(at=now - dt.timedelta(days=31), route="/old"),
                                            row(at=now - dt.timedelta(days=29), route="/recent")])
    writer = audit.AuditWriter("registry")
    writer.start(sessions, retention_days=30, prune_seconds=0.2)
    wait_for(lambda: [r["route"] for r in rows_in(engine)] == ["/recent"])
    with engine.begin() as conn:  # a row that is old by the next pass
        conn.execute(insert(audit.events), [row(at=now - dt.timedelta(days=40), route="/older")])
    wait_for(lambda: [r["route"] for r in rows_in(engine)] == ["/recent"])
    writer.stop()
    engine.dispose()


def test_prune_in_slices_and_retention_zero_keeps_everything(tmp_path):
    sessions, engine = migrated(tmp_path)
    old = db.utcnow() - dt.timedelta(days=5000)
    with engine.begin() as conn:
        conn.execute(insert(audit.events), [row(at=old) for _ in range(audit.PRUNE_BATCH * 2 + 7)])
    keeper = audit.AuditWriter("registry")
    keeper.start(sessions, retention_days=0)
    keeper.stop()
    assert len(rows_in(engine)) == audit.PRUNE_BATCH * 2 + 7
    writer = audit.AuditWriter("registry")
    writer._sessions = sessions
    assert writer.prune(db.utcnow()) == audit.PRUNE_BATCH * 2 + 7
    assert rows_in(engine) == []
    engine.dispose()


def test_a_negative_retention_is_refused(tmp_path):
    sessions, engine = migrated(tmp_path)
    with pytest.raises(ValueError, match="FLIGHTBASE_AUDIT_RETENTION_DAYS"):
        audit.AuditWriter("registry").start(sessions, retention_days=-1)
    engine.dispose()


# --- the middleware inside a service made by create_app

PREFIX = "/services/registry/"
API = f"{PREFIX}api/v1"
HUB_COOKIE = "registry-services-cookie"
IDENTITIES = {"alice-token": Identity("alice", groups=frozenset({"w"})), "robot-token": Identity("robot", kind="service"),
              "root-token": Identity("root", scopes=frozenset({"admin:groups"}))}
SECRET = "hunter2-secret-value"


async def fake_identity(request: Request) -> Identity:
    """``current_identity`` without a hub: two known tokens (header or cookie), else 401."""
    header = request.headers.get("authorization", "")
    token = header.split(" ", 1)[1] if " " in header else request.cookies.get(HUB_COOKIE, "")
    if token not in IDENTITIES:
        raise ApiError(401, "the token is not valid")
    request.state.identity = IDENTITIES[token]
    return IDENTITIES[token]


def toy_router() -> APIRouter:
    router = APIRouter()

    @router.post("/things/{thing_id}", status_code=201)
    async def make(thing_id: str, identity: CurrentIdentity, body: dict | None = None):
        return {"id": thing_id}

    @router.delete("/workspaces/{workspace}/things/{name}", status_code=204)
    async def remove(workspace: str, name: str, identity: CurrentIdentity):
        return None

    @router.put("/settings")
    async def settings(request: Request, identity: CurrentIdentity, body: dict):
        request.state.workspace = body["workspace"]  # as access.authorize does with a workspace named in a body
        return {}

    @router.post("/broken")
    async def broken(identity: CurrentIdentity):
        raise RuntimeError("a bug")

    @router.get("/things/{thing_id}")
    async def read(thing_id: str, identity: CurrentIdentity):
        return {"id": thing_id}

    return router


@asynccontextmanager
async def service(tmp_path):
    """A service made by ``create_app``, started and stopped through the ASGI lifespan, as uvicorn does."""
    engine = db.make_engine(f"sqlite:///{tmp_path / 'registry.sqlite'}")

    async def startup(app):
        db.upgrade(engine, MIGRATIONS["registry"])
        app.state.sessions = db.Sessions(engine)

    async def shutdown(app):
        engine.dispose()

    hub_auth = HubLogin(api_url="http://127.0.0.1:9/hub/api", api_token="unused", oauth_client_id=HUB_COOKIE,
                        cache_max_age=0)
    app = create_app(name="registry", version="0", description="", routers=[toy_router()], startup=startup,
                     shutdown=shutdown, health=lambda app: {}, hub_auth=hub_auth)
    app.state.settings = SimpleNamespace(max_body_bytes=1000, audit_retention_days=365)
    app.dependency_overrides[current_identity] = fake_identity
    inbox, outbox = asyncio.Queue(), asyncio.Queue()
    lifespan = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}},
                                       inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    assert (await outbox.get())["type"] == "lifespan.startup.complete"
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://test") as client:
            yield client
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        assert (await outbox.get())["type"] == "lifespan.shutdown.complete"
        await lifespan
    check = create_engine(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    client.rows = rows_in(check)
    check.dispose()


TOKEN = {"Authorization": "token alice-token"}
COOKIE = {"Cookie": f"{HUB_COOKIE}=alice-token; flightbase-registry-xsrf=x" + "y" * 40}
XSRF = {"X-XSRF-Token": "x" + "y" * 40}

# (method, path under api/v1, headers, body) -> what the row says
CASES = [
    (("POST", "/things/t1", TOKEN, {"password": SECRET}),
     dict(status=201, actor="alice", actor_kind="user", credential="token", route="/things/{thing_id}",
          target={"thing_id": "t1"}, workspace=None)),
    (("POST", "/things/t2?workspace=w&token=" + SECRET, {"Authorization": "Bearer robot-token"}, None),
     dict(status=201, actor="robot", actor_kind="service", credential="token", route="/things/{thing_id}",
          target={"thing_id": "t2"}, workspace="w")),
    (("DELETE", "/workspaces/w/things/d", {**COOKIE, **XSRF}, None),
     dict(status=204, actor="alice", actor_kind="user", credential="cookie", route="/workspaces/{workspace}/things/{name}",
          target={"workspace": "w", "name": "d"}, workspace="w")),
    (("PUT", "/settings", TOKEN, {"workspace": "w2", "secret": SECRET}),
     dict(status=200, actor="alice", credential="token", route="/settings", target={}, workspace="w2")),
    # answered before the route: without credentials (limits.py), a token the route refuses,
    # a cookie without the XSRF token (xsrf.py), a body over the limit (limits.py)
    (("POST", "/things/t3", {}, {"password": SECRET}),
     dict(status=401, actor=None, actor_kind="anonymous", credential="none", route="/things/{thing_id}",
          target={"thing_id": "t3"})),
    (("POST", "/things/t4", {"Authorization": f"token {SECRET}"}, None),
     dict(status=401, actor=None, actor_kind="anonymous", credential="token", route="/things/{thing_id}")),
    (("DELETE", "/workspaces/w/things/d", COOKIE, None),
     dict(status=403, actor=None, actor_kind="anonymous", credential="cookie",
          route="/workspaces/{workspace}/things/{name}", workspace="w")),
    (("POST", "/things/t5", TOKEN, {"blob": "z" * 2000}),
     dict(status=413, actor=None, actor_kind="anonymous", credential="token", route="/things/{thing_id}")),
    # what the application answers by itself: an error, no such route, the wrong method
    (("POST", "/broken", TOKEN, None), dict(status=500, actor="alice", route="/broken")),
    (("POST", "/nowhere/at-all", TOKEN, None), dict(status=404, actor=None, route=None, target={})),
    (("PATCH", "/things/t6", TOKEN, None), dict(status=405, actor=None, route="/things/{thing_id}")),
]


async def test_each_state_changing_request_gets_one_row(tmp_path):
    async with service(tmp_path) as client:
        for (method, path, headers, body), _ in CASES:
            await client.request(method, API + path, headers=headers, json=body)
        # not recorded: reads, and what is outside the API
        await client.get(API + "/things/t1", headers=TOKEN)
        await client.post(f"{PREFIX}oauth_callback", headers=TOKEN)
    rows = client.rows
    assert len(rows) == len(CASES)
    for got, ((method, path, _, _), expected) in zip(rows, CASES):
        assert got["method"] == method and got["service"] == "registry", path
        assert {k: got[k] for k in expected} == expected, path
        assert got["at"].tzinfo is not None and abs(got["at"] - db.utcnow()) < dt.timedelta(minutes=5)
    # nothing of a body, a query (but its workspace), a header or a token
    dump = json.dumps(rows, default=str)
    for secret in (SECRET, "alice-token", "robot-token", "xyyy"):
        assert secret not in dump


async def test_the_audit_api_is_served_with_the_kit(tmp_path):
    """Each service made by create_app has GET /audit (who may read what: tests/platform/test_audit.py)."""
    admin = {"Authorization": "token root-token"}
    async with service(tmp_path) as client:
        assert (await client.get(API + "/audit")).status_code == 401
        await client.post(API + "/things/t1", headers=TOKEN)
        await client.post(API + "/things/t2", headers={"Authorization": "token robot-token"})
        deadline = time.monotonic() + 10
        while len(found := (await client.get(API + "/audit", headers=admin)).json()) < 2:
            assert time.monotonic() < deadline, found
            await asyncio.sleep(0.05)
        only = await client.get(API + "/audit", headers=admin, params={"actor": "alice", "action": "POST /things/{thing_id}"})
        bad = await client.get(API + "/audit", headers=admin, params={"status": "2"})
    assert [e["actor"] for e in found] == ["robot", "alice"]  # newest first
    assert found[1] == {"id": 1, "at": found[1]["at"], "service": "registry", "actor": "alice", "actor_kind": "user",
                        "credential": "token", "method": "POST", "route": "/things/{thing_id}",
                        "target": {"thing_id": "t1"}, "workspace": None, "status": 201}
    assert [e["target"] for e in only.json()] == [{"thing_id": "t1"}]
    assert bad.status_code == 422 and bad.json()["field"] == "status"

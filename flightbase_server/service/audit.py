"""The audit log: every state-changing request to a service, in its own database.

What is inside:

- ``events``: the table (``audit_events``), one definition for both services;
  each service's own migration creates it (jobqueue ``0005_audit``, registry
  ``0003_audit``; ``tests/unit/test_audit.py`` checks they agree with it).
- ``AuditLog``: a plain ASGI middleware (like ``limits.RequestLimits``) that,
  for POST, PUT, PATCH and DELETE under ``<prefix>api/``, makes one row after
  the response: when the request arrived, the service, the actor (the identity
  the route authenticated, ``request.state.identity``; none when the request
  was refused before that), its kind (user, service, anonymous), the
  credential it showed (``token``: an ``Authorization`` header; ``cookie``:
  the hub's OAuth cookie; ``none``), the method, the route template (e.g.
  ``/trainings/{training_id}/cancel``) and its path parameters (the target),
  the workspace (named by the path or the query, else the one the route
  authorised against: ``access.authorize``) and the response's status. It is
  installed outermost, so the requests the other guards answer before the
  application (401 without credentials, 413, 403 XSRF) are recorded too, with
  what is known. Never a body, a query string (but its ``workspace``), a
  header's value, a token or a ticket.
- ``AuditWriter``: rows go to a queue and a thread writes them in batches
  (one transaction for whatever arrived while the last one committed, as
  ``flightbase_jobqueue/submissions.py`` does for submissions), so a request
  never waits for the database. Woken by a row, the thread lets more gather for
  ``LINGER_SECONDS`` before it writes: waking a thread and committing cost
  about as much CPU as the request itself did, and under a steady trickle of
  requests each row would otherwise be a wake-up and a transaction of its own.
  The thread also deletes rows older than the retention
  (``FLIGHTBASE_AUDIT_RETENTION_DAYS``, 365 days; 0 keeps them for ever) when
  the service starts and then daily. On a clean stop every queued
  row is written before the service's own shutdown ends; a row recorded after
  that (a chunk of the registry's data endpoint finishing late) is written at
  once.
- ``router``: ``GET /api/v1/audit``, newest first, with filters; for
  administrators, and for workspace managers within their workspaces.
- ``install``: what ``app.create_app`` calls to put all this in a service.

The registry's data endpoint (``flightbase_registry/direct.py``) is not ASGI;
it records its chunk requests through the same writer (``app.state.audit``).
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Annotated, Any, Iterable
from urllib.parse import parse_qs

from fastapi import APIRouter, FastAPI, Query, Request
from pydantic import BaseModel
from sqlalchemy import JSON, BigInteger, Column, Index, Integer, MetaData, String, Table, delete, insert, select
from starlette.concurrency import run_in_threadpool
from starlette.routing import compile_path

from flightbase_server.service.access import Level, needs, workspaces_with
from flightbase_server.service.asgi import StatusSend, credential_of
from flightbase_server.service.db import Sessions, UtcDateTime, utcnow
from flightbase_server.service.deps import CurrentIdentity
from flightbase_server.service.errors import ApiError
from flightbase_server.service.xsrf import UNSAFE_METHODS

log = logging.getLogger("flightbase_server.service.audit")

DEFAULT_RETENTION_DAYS = 365
PRUNE_SECONDS = 24 * 3600
MAX_BATCH = 500
PRUNE_BATCH = 5000
# Rows waiting while the database cannot be written: beyond, the newest are dropped (and counted in the log)
MAX_PENDING = 50_000
RETRY_SECONDS = (1, 2, 5, 10, 30)
# How long the writer waits, once woken by a row, for others to join its transaction (a clean stop
# cuts it short). Rows reach the table this much later; a crash could lose this much more of them.
LINGER_SECONDS = 0.2

ACTOR_KINDS = ("user", "service", "anonymous")
CREDENTIALS = ("token", "cookie", "ticket", "none")

metadata = MetaData()

# The one definition of the table. A change here needs a new migration in both services
# (jobqueue and registry), not an edit of 0005_audit / 0003_audit.
events = Table(
    "audit_events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("at", UtcDateTime(), nullable=False),  # when the request arrived
    Column("service", String(32), nullable=False),
    Column("actor", String(255), nullable=True),  # the hub's user or service name; none: not authenticated
    Column("actor_kind", String(16), nullable=False),  # ACTOR_KINDS
    Column("credential", String(16), nullable=False),  # CREDENTIALS
    Column("method", String(8), nullable=False),
    Column("route", String(255), nullable=True),  # the route template under api/v1; none: no such route
    Column("target", JSON, nullable=False),  # the route's path parameters
    Column("workspace", String(64), nullable=True),
    Column("status", Integer, nullable=False),
    Index("ix_audit_events_at", "at"),
    Index("ix_audit_events_workspace_at", "workspace", "at"),
    Index("ix_audit_events_actor_at", "actor", "at"),
)

_LENGTHS = {c.name: c.type.length for c in events.columns if isinstance(c.type, String)}
MAX_TARGET_VALUE = 255


def make_row(*, at: dt.datetime, service: str, actor: str | None, actor_kind: str, credential: str, method: str,
             route: str | None, target: dict[str, Any], workspace: str | None, status: int) -> dict:
    """One row, every text cut to its column (PostgreSQL refuses longer ones; a row must never fail for that)."""
    row = {"at": at, "service": service, "actor": actor, "actor_kind": actor_kind, "credential": credential,
           "method": method, "route": route, "workspace": workspace or None, "status": int(status),
           "target": {str(k)[:64]: str(v)[:MAX_TARGET_VALUE] for k, v in target.items()}}
    for name, length in _LENGTHS.items():
        if isinstance(row[name], str):
            row[name] = row[name][:length]
    return row


def api_routes(routes, templates: str) -> list[tuple[frozenset[str], re.Pattern, str]]:
    """(methods, path regex, template under ``templates``) of the application's routes under ``templates``
    (``<prefix>api/v1``), e.g. ``/trainings/{training_id}/cancel``, in the router's order."""
    try:  # FastAPI >= 0.160 keeps included routers whole; this walks the routes inside them
        from fastapi.routing import iter_route_contexts
    except ImportError:  # before: include_router copied each route into the application's list
        flat = routes
    else:
        flat = iter_route_contexts(routes)
    table = []
    for route in flat:
        path, methods = getattr(route, "path_format", None), getattr(route, "methods", None)
        if path and methods and path.startswith(templates + "/"):
            table.append((frozenset(methods), compile_path(path)[0], path[len(templates):]))
    return table


class AuditWriter:
    """A queue of rows and the thread that writes them in batches (see the module's docstring).

    ``record`` may be called from any thread (the event loop, the data
    endpoint's workers) and never waits for the database.
    """

    def __init__(self, service: str, *, max_pending: int = MAX_PENDING):
        self.service = service
        self.max_pending = max_pending
        self.dropped = 0
        self._pending: collections.deque[dict] = collections.deque()
        self._wake = threading.Event()
        self._stopping = threading.Event()  # set by stop(); also cuts the linger short
        self.linger_seconds = LINGER_SECONDS
        self._lock = threading.Lock()  # around the change to "stopped": a row is either queued or written at once
        self._sessions: Sessions | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False
        self.retention_days = DEFAULT_RETENTION_DAYS
        self.prune_seconds = PRUNE_SECONDS

    def record(self, row: dict) -> None:
        with self._lock:
            if not self._stopped:
                if len(self._pending) >= self.max_pending:
                    self.dropped += 1
                    if self.dropped in (1, 10, 100) or self.dropped % 1000 == 0:
                        log.error("audit log: %d row(s) dropped, %d waiting: the database cannot be written",
                                  self.dropped, len(self._pending))
                    return
                self._pending.append(row)
                self._wake.set()
                return
        self._write_alone([row])  # after stop(): nobody else will write it

    def start(self, sessions: Sessions, *, retention_days: int = DEFAULT_RETENTION_DAYS,
              prune_seconds: float = PRUNE_SECONDS) -> None:
        """Start writing (rows recorded before are kept and written first); prune now, then every ``prune_seconds``."""
        if retention_days < 0:
            raise ValueError(f"FLIGHTBASE_AUDIT_RETENTION_DAYS: {retention_days} is negative (0 keeps rows for ever)")
        self._sessions = sessions
        self.retention_days, self.prune_seconds = retention_days, prune_seconds
        self._thread = threading.Thread(target=self._run, name=f"{self.service}-audit", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 60) -> None:
        """Write every queued row, then end the thread; rows recorded afterwards are written at once."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._lock:
            self._stopped = True
            left = list(self._pending)
            self._pending.clear()
        if left:  # the thread could not write them (no start, a database down at the end)
            self._write_alone(left)

    # --- the writer's thread

    def _run(self) -> None:
        next_prune = time.monotonic()
        failures = 0
        while True:
            now = time.monotonic()
            if self.retention_days and now >= next_prune and not self._stopping.is_set():
                self._prune_safely()
                next_prune = time.monotonic() + self.prune_seconds
            if not self._pending:
                if self._stopping.is_set():
                    return
                wait = max(0.0, next_prune - time.monotonic()) if self.retention_days else None
                if self._wake.wait(wait) and self.linger_seconds:
                    self._stopping.wait(self.linger_seconds)
            self._wake.clear()
            while self._pending:
                batch = [self._pending.popleft() for _ in range(min(MAX_BATCH, len(self._pending)))]
                written = self._write(batch)
                if written:
                    failures = 0
                    continue
                # the database refused every row: keep them (in order) and try again later
                self._pending.extendleft(reversed(batch))
                if self._stopping.is_set():
                    log.error("audit log: %d row(s) could not be written before the stop", len(self._pending))
                    with self._lock:
                        self._pending.clear()
                    return
                time.sleep(RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)])
                failures += 1

    def _write(self, batch: list[dict]) -> bool:
        """Write ``batch``; on failure one row at a time, dropping the rows the database refuses alone.
        False when it refused them all (it is down, or locked: try again later)."""
        try:
            self._insert(batch)
            return True
        except Exception:
            if len(batch) == 1:
                log.exception("audit log: a batch could not be written")
                return False
        written = 0
        for row in batch:
            try:
                self._insert([row])
                written += 1
            except Exception:
                log.exception("audit log: a row could not be written (%s %s)", row.get("method"), row.get("route"))
        if not written:
            return False
        self.dropped += len(batch) - written
        return True

    def _insert(self, rows: list[dict]) -> None:
        with self._sessions.begin() as session:
            session.execute(insert(events), rows)

    def _write_alone(self, rows: list[dict]) -> None:
        if self._sessions is None:
            log.error("audit log: %d row(s) recorded before the service started were not written", len(rows))
            return
        try:
            self._insert(rows)
        except Exception:
            log.exception("audit log: %d row(s) could not be written", len(rows))

    def _prune_safely(self) -> None:
        try:
            removed = self.prune(utcnow() - dt.timedelta(days=self.retention_days))
            if removed:
                log.info("audit log: %d row(s) older than %d days removed", removed, self.retention_days)
        except Exception:
            log.exception("audit log: old rows could not be removed")

    def prune(self, before: dt.datetime) -> int:
        """Delete the rows older than ``before``, a few thousand per transaction (writers take turns between)."""
        removed = 0
        while True:
            with self._sessions.begin() as session:
                ids = select(events.c.id).where(events.c.at < before).limit(PRUNE_BATCH).scalar_subquery()
                count = session.execute(delete(events).where(events.c.id.in_(ids))).rowcount
            removed += count
            if count < PRUNE_BATCH:
                return removed


class AuditLog:
    """ASGI middleware: one audit row per state-changing API request, after its response.

    It also starts the writer once the service has started (its database is
    migrated and ``state.sessions`` set) and stops it, writing what is queued,
    once the service's own shutdown is done, by watching the lifespan messages.
    """

    def __init__(self, app, *, service: str, prefix: str, hub_cookie: str, header_pattern: re.Pattern,
                 writer: AuditWriter, state, routes: list):
        self.app = app
        self.service = service
        self.api = prefix + "api/"
        self.templates = prefix + "api/v1"
        self.hub_cookie = hub_cookie
        self.header_pattern = header_pattern
        self.writer = writer
        self.state = state
        self.routes = routes
        self._table: list[tuple[frozenset[str], re.Pattern, str]] | None = None  # api_routes(), on first use

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            return await self._lifespan(scope, receive, send)
        if scope["type"] != "http" or scope["method"] not in UNSAFE_METHODS or not scope["path"].startswith(self.api):
            return await self.app(scope, receive, send)
        at = utcnow()
        watched = StatusSend(send)
        try:
            await self.app(scope, receive, watched)
        finally:
            try:
                self.writer.record(self.row(scope, at, watched.status))
            except Exception:  # the request's answer is what matters to the client
                log.exception("audit log: a row could not be made")

    def row(self, scope, at: dt.datetime, status: int) -> dict:
        state = scope.get("state") or {}
        identity = state.get("identity")
        route, params = self._route(scope)
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        workspace = params.get("workspace") or (query.get("workspace") or [None])[0] or state.get("workspace")
        return make_row(at=at, service=self.service, actor=identity.name if identity else None,
                        actor_kind=identity.kind if identity else "anonymous",
                        credential=credential_of(scope, self.hub_cookie, self.header_pattern),
                        method=scope["method"], route=route, target=params, workspace=workspace, status=status)

    def _route(self, scope) -> tuple[str | None, dict]:
        """The route template and path parameters of the request, as the router matches them (a request
        answered before the router ran has them too): the first route of its method whose path matches,
        else the first whose path matches (405)."""
        if self._table is None:
            self._table = api_routes(self.routes, self.templates)
        method, path = scope["method"], scope["path"]
        partial = None
        for methods, regex, template in self._table:
            match = regex.match(path)
            if match is None:
                continue
            if method in methods:
                return template, match.groupdict()
            if partial is None:
                partial = template, match.groupdict()
        return partial or (None, {})

    async def _lifespan(self, scope, receive, send):
        async def watched(message):
            if message["type"] == "lifespan.startup.complete":
                self.writer.start(self.state.sessions, retention_days=self.state.settings.audit_retention_days)
            elif message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                await asyncio.to_thread(self.writer.stop)
            await send(message)

        await self.app(scope, receive, watched)


# --- the API

router = APIRouter(tags=["audit"])


class AuditEventOut(BaseModel):
    id: int
    at: dt.datetime
    service: str
    actor: str | None
    actor_kind: str
    credential: str
    method: str
    route: str | None
    target: dict[str, str]
    workspace: str | None
    status: int


@dataclass(frozen=True)
class Filters:
    actor: str | None = None
    workspace: str | None = None
    method: str | None = None
    route: str | None = None
    status: tuple[int, int] | None = None  # [low, high)
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    limit: int = 100


_STATUS_RE = re.compile(r"^([1-5])([0-9]{2}|xx)$")
MAX_LIMIT = 1000


def parse_filters(*, actor: str | None = None, workspace: str | None = None, action: str | None = None,
                  status: str | None = None, since: str | None = None, until: str | None = None,
                  limit: str | int | None = None) -> Filters:
    """The query parameters of ``GET /audit``, checked (pure): ``ApiError`` 422 naming the parameter."""
    method = route = None
    if action:
        words = action.split()
        if len(words) == 2 and words[0].upper() in UNSAFE_METHODS and words[1].startswith("/"):
            method, route = words[0].upper(), words[1]
        elif len(words) == 1 and words[0].upper() in UNSAFE_METHODS:
            method = words[0].upper()
        elif len(words) == 1 and words[0].startswith("/"):
            route = words[0]
        else:
            raise ApiError(422, "action: a method (POST, PUT, PATCH, DELETE), a route template "
                                "(/trainings/{training_id}/cancel) or both ('POST /trainings')", field="action")
    span = None
    if status:
        match = _STATUS_RE.match(status.strip())
        if match is None:
            raise ApiError(422, "status: a status (403) or a class of them (4xx)", field="status")
        if match.group(2) == "xx":
            low = int(match.group(1)) * 100
            span = (low, low + 100)
        else:
            span = (int(status), int(status) + 1)
    since_at, until_at = _when(since, "from"), _when(until, "to")
    if since_at and until_at and since_at > until_at:
        raise ApiError(422, "from: later than 'to'", field="from")
    if limit is None or limit == "":
        count = 100
    else:
        try:
            count = int(limit)
        except ValueError:
            count = 0
        if not 1 <= count <= MAX_LIMIT:
            raise ApiError(422, f"limit: a whole number from 1 to {MAX_LIMIT}", field="limit")
    return Filters(actor=actor or None, workspace=workspace or None, method=method, route=route, status=span,
                   since=since_at, until=until_at, limit=count)


def _when(raw: str | None, field: str) -> dt.datetime | None:
    if not raw:
        return None
    try:
        when = dt.datetime.fromisoformat(raw.strip())
    except ValueError:
        raise ApiError(422, f"{field}: an ISO 8601 date or time (2026-01-31, 2026-01-31T12:00:00Z)",
                       field=field) from None
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)  # without a zone: UTC


def select_events(filters: Filters, workspaces: Iterable[str] | None):
    """The query of ``GET /audit``; ``workspaces``: the ones the caller may see (None: all, rows without one too)."""
    q = select(events)
    if workspaces is not None:
        q = q.where(events.c.workspace.in_(list(workspaces)))
    if filters.actor:
        q = q.where(events.c.actor == filters.actor)
    if filters.workspace:
        q = q.where(events.c.workspace == filters.workspace)
    if filters.method:
        q = q.where(events.c.method == filters.method)
    if filters.route:
        q = q.where(events.c.route == filters.route)
    if filters.status:
        q = q.where(events.c.status >= filters.status[0], events.c.status < filters.status[1])
    if filters.since:
        q = q.where(events.c.at >= filters.since)
    if filters.until:
        q = q.where(events.c.at < filters.until)
    return q.order_by(events.c.at.desc(), events.c.id.desc()).limit(filters.limit)


@dataclass(frozen=True)
class AuditScope:
    """What ``GET /audit`` may show: its filters, and the workspaces whose rows (``None``: all)."""

    filters: Filters
    workspaces: list[str] | None


async def _auditor(
    request: Request,
    identity: CurrentIdentity,
    actor: str | None = Query(default=None, description="Only this user's or service's requests"),
    workspace: str | None = Query(default=None, description="Only requests in this workspace"),
    action: str | None = Query(default=None, description="A method (DELETE), a route template "
                                                         "(/trainings/{training_id}/cancel), or both ('POST /trainings')"),
    status: str | None = Query(default=None, description="A status (403) or a class (4xx)"),
    since: str | None = Query(default=None, alias="from", description="From this time (ISO 8601; UTC without a zone)"),
    until: str | None = Query(default=None, alias="to", description="Before this time"),
    limit: str | None = Query(default=None, description=f"At most this many (1-{MAX_LIMIT}, 100 by default)"),
) -> AuditScope:
    """Level.AUDITOR: administrators (every row), managers (their workspaces' rows); the filters are
    checked first (422), then who asks (a named workspace they may not see: 404; nothing managed: 403)."""
    filters = parse_filters(actor=actor, workspace=workspace, action=action, status=status, since=since,
                            until=until, limit=limit)
    visible: list[str] | None = None
    if not identity.is_admin:  # a workspace that is gone is still in the log: administrators see it
        visible = await workspaces_with(request, identity, "workspace:manage", filters.workspace)
        if not visible:
            raise ApiError(403, "only administrators and workspace managers may read the audit log")
    return AuditScope(filters, visible)


@router.get("/audit", response_model=list[AuditEventOut],
            summary="State-changing requests to this service, newest first (administrators; managers: their workspaces)")
async def list_audit(request: Request,
                     scope: Annotated[AuditScope, needs(Level.AUDITOR, "workspace:manage", _auditor)]):
    filters, visible = scope.filters, scope.workspaces
    sessions = request.app.state.sessions

    def query():
        with sessions() as session:
            return [AuditEventOut(**row._mapping) for row in session.execute(select_events(filters, visible))]

    return await run_in_threadpool(query)


def install(app: FastAPI, *, service: str, prefix: str, hub_auth) -> None:
    """Record ``app``'s state-changing requests and serve ``GET <prefix>api/v1/audit``.

    Called last by ``create_app``, so that the middleware is the outermost and
    sees the answers of the guards added before it.
    """
    writer = AuditWriter(service)
    app.state.audit = writer
    app.include_router(router, prefix=f"{prefix}api/v1")
    app.add_middleware(AuditLog, service=service, prefix=prefix, hub_cookie=hub_auth.cookie_name,
                       header_pattern=hub_auth.auth_header_pat, writer=writer, state=app.state,
                       routes=app.router.routes)

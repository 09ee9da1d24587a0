"""The registry's data endpoint: chunk bodies straight from the client to disk.

The upload protocol's control steps (declare, resume, commit, cancel) go
through the hub's proxy like every API call. The bytes of a large upload can
take a shorter road: ``POST .../uploads/{id}/direct`` (an API call, so the
hub authenticates the caller and the route checks ``datasets:write`` in the
workspace) answers a data URL on the registry's own port and a short-lived
ticket for that one upload, the way object stores hand out pre-signed URLs.
The client then sends each chunk as::

    PATCH {url}/files/{index}?offset=N
    Authorization: Bearer {token}
    Content-Length: L

    <L bytes>

and gets the same answer as ``PATCH .../uploads/{id}/files/{index}``: the
file's offset and whether it is complete, or the same JSON error. Both roads
share ``writer.Chunk``: the same checks, the same writer, the same
resumable state (and the same count, ``flightbase_upload_bytes_total``), so a
client may switch between them at any offset. That writer is
``flightbase_registry.writer`` (``app.state.writer``); this module is the
HTTP side only.

Why: every byte through configurable-http-proxy costs its single Node.js
thread about 2 s of CPU per GB on the benchmark machine, and uvicorn's event
loop another 1.3 s per GB to receive it; here a worker thread reads the body
with ``readinto`` straight into the writer's page-aligned buffers
(docs/benchmarks.md, "Registry uploads").

The ticket is ``<upload id>.<user>.<expiry>.<HMAC-SHA256>`` under a key that
lives only in this process's memory: a restart invalidates every ticket, and
a client asks for a new one (the CLI does so on a 401). Tickets travel in the
``Authorization`` header, never in a URL, and nothing here logs headers. A
ticket lives an hour, but each chunk also asks the hub (cached for a few
seconds) whether its holder may still write in the upload's workspace
(``HubWriters``): a person removed from it is refused within seconds.

What is inside, in the order a request meets it:

- ``DataServer``: one thread waits on every connection with a selector and
  reads request headers without blocking, under a total deadline, a size cap
  and a cap on how many connections may wait (a slow or silent client holds
  a socket, never a thread). It answers what needs no disk on its own (CORS
  preflights, bad or missing tickets, the limits) and hands a PATCH with a
  good ticket to a worker thread: at most ``max_connections`` at once, and
  ``max_per_user`` for one ticket holder. After the answer the connection
  comes back to wait for its next request's headers (HTTP/1.1 keep-alive),
  or to drain the unread body of a refused one.
- ``_Handler``: one request in a worker thread, through the standard
  library's ``BaseHTTPRequestHandler``, reading first the bytes the selector
  already read (``_Prefixed``) and then the socket; ``chunk_range`` reads
  the chunk's offset and length from the request.
- ``Tickets`` and ``HubWriters``: who may send chunks to which upload.

Every PATCH (and any other state-changing method) gets an audit row, as the
API's requests do (``flightbase_server.service.audit``): the ticket's holder as the
actor, credential ``ticket``, route ``/uploads/{upload_id}/files/{index}``,
the upload's workspace, and the status; the ones the selector refuses too
(a bad ticket: no actor). Never the ticket.
"""

from __future__ import annotations

import base64
import collections
import datetime as dt
import email.utils
import errno
import hashlib
import hmac
import http.client
import io
import json
import logging
import re
import secrets
import selectors
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, quote, urlsplit

import httpx

from flightbase_server.service import audit
from flightbase_server.service.db import utcnow
from flightbase_server.service.errors import ApiError
from flightbase_server.settings import HubServiceEnv
from flightbase_registry.models import Upload
from flightbase_registry.writer import UploadWriter

log = logging.getLogger("flightbase.registry.direct")

TICKET_SECONDS = 3600
LINGER_SECONDS = 10  # longest wait for the rest of a refused body
# A connection's request line and headers must all arrive within this long of its
# first byte being awaited (a total, not a per-read timeout: a client that trickles
# a byte at a time gets no more time than a silent one).
HEADER_SECONDS = 10
BODY_SECONDS = 60  # longest silence in the middle of a body (what arrived is kept)
MAX_HEADER_BYTES = 16 << 10  # request line + headers; larger gets 431
MAX_WAITING = 1024  # connections waiting for their headers; beyond, the oldest is closed
MAX_CONNECTIONS = 64  # chunks received at once (a worker thread each); more get 503 at once
MAX_PER_USER = 8  # chunks of one ticket holder received at once; more get 429
WRITERS_CACHE_SECONDS = 5  # longest a removed member's ticket keeps working
PATH_RE = re.compile(r"^/uploads/([0-9a-f]{32})/files/([0-9]+)$")
AUDIT_ROUTE = "/uploads/{upload_id}/files/{index}"  # the route of PATH_RE, in audit rows
SERVER = "flightbase-registry-data"
_HEAD_END = re.compile(rb"\n\r?\n")  # the blank line that ends the headers (a bare LF is tolerated, as http.server does)
_RECV = 64 << 10


class Tickets:
    """Signs and checks data tickets (one upload, one user, an expiry)."""

    def __init__(self, key: bytes | None = None, lifetime: int = TICKET_SECONDS):
        self.key = key or secrets.token_bytes(32)
        self.lifetime = lifetime

    def _sign(self, body: str) -> str:
        mac = hmac.new(self.key, body.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def issue(self, upload_id: str, user: str, now: float | None = None) -> tuple[str, dt.datetime]:
        expires = int((now if now is not None else time.time()) + self.lifetime)
        who = base64.urlsafe_b64encode(user.encode()).decode().rstrip("=")
        body = f"{upload_id}.{who}.{expires}"
        return f"{body}.{self._sign(body)}", dt.datetime.fromtimestamp(expires, dt.timezone.utc)

    def check(self, token: str, upload_id: str, now: float | None = None) -> str:
        """The user the ticket was issued to; ``ApiError`` 401/403 when it does not allow this upload."""
        parts = token.split(".")
        if len(parts) != 4 or not token.isascii():  # compare_digest takes ASCII strings only
            raise ApiError(401, "Authorization: not a data ticket; ask POST .../uploads/{id}/direct for one",
                           field="Authorization")
        body, mac = ".".join(parts[:3]), parts[3]
        if not hmac.compare_digest(self._sign(body), mac):
            raise ApiError(401, "Authorization: the data ticket is not valid here (the registry may have restarted); "
                                "ask POST .../uploads/{id}/direct for a new one", field="Authorization")
        ticket_upload, who, expires = parts[:3]
        if int(expires) < (now if now is not None else time.time()):
            raise ApiError(401, "Authorization: the data ticket has expired; ask POST .../uploads/{id}/direct for a new one",
                           field="Authorization")
        if ticket_upload != upload_id:
            raise ApiError(403, "Authorization: this data ticket is for another upload", field="Authorization")
        return base64.urlsafe_b64decode(who + "=" * (-len(who) % 4)).decode()


class HubWriters:
    """Whether a ticket's holder may still write datasets in a workspace, as the hub says now.

    ``datasets:write`` in a workspace is held by its members (the hub group of
    that name) and by hub administrators (flightbase_server.authz); the hub's user
    model carries both (``groups`` and ``admin``, under the ``read:users``
    scope the registry holds; flightbase_server.hub.rbac). The answer is cached for
    ``cache_seconds`` per user, so a burst of chunks costs the hub one
    request; a hub that cannot be asked refuses the chunk (503), never lets
    it through.
    Synchronous (httpx.Client): it is called from the data endpoint's worker
    threads, not from the service's event loop. ``api_url`` and ``token``: the
    hub's API and the registry's token for it (``HubServiceEnv``).
    """

    def __init__(self, api_url: str, token: str, cache_seconds: float = WRITERS_CACHE_SECONDS, timeout: float = 10.0):
        self.api_url = api_url.rstrip("/")
        self._http = httpx.Client(base_url=self.api_url, timeout=timeout, follow_redirects=False,
                                  headers={"Authorization": f"token {token}"})
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, frozenset[str], bool]] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self._http.close()

    def check(self, user: str, workspace: str) -> None:
        """Nothing when ``user`` may write datasets in ``workspace``; ``ApiError`` 403 (or 503) otherwise."""
        groups, admin = self._lookup(user)
        if admin or workspace in groups:
            return
        raise ApiError(403, f"Authorization: {user!r} is no longer a member of workspace {workspace!r}, so this "
                            "data ticket may not write there any more", field="Authorization")

    def _lookup(self, user: str) -> tuple[frozenset[str], bool]:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(user)
        if hit is not None and now - hit[0] < self.cache_seconds:
            return hit[1], hit[2]
        unavailable = ApiError(503, "the registry cannot ask the hub whether this data ticket's holder may still write "
                                    "in the workspace; try again shortly")
        try:
            resp = self._http.get(f"/users/{quote(user, safe='')}")
        except httpx.HTTPError as exc:
            log.warning("data endpoint: the hub could not be asked about a ticket's holder: %s", exc)
            raise unavailable from None
        if resp.status_code == 404:  # the user is gone, and every right with them
            groups, admin = frozenset(), False
        elif resp.status_code == 200 and isinstance(model := _json(resp), dict):
            groups, admin = frozenset(model.get("groups") or ()), bool(model.get("admin"))
        else:
            log.warning("data endpoint: the hub answered %d when asked about a ticket's holder", resp.status_code)
            raise unavailable
        with self._lock:
            if len(self._cache) > 4096:  # forget the expired ones now and then
                self._cache = {k: v for k, v in self._cache.items() if now - v[0] < self.cache_seconds}
            self._cache[user] = (now, groups, admin)
        return groups, admin


def _json(resp: httpx.Response):
    try:
        return resp.json()
    except ValueError:
        return None


class _Conn:
    """A connection the selector holds: waiting for its headers, or draining a refused body."""

    __slots__ = ("sock", "addr", "buf", "scanned", "deadline")

    def __init__(self, sock: socket.socket, addr, buf: bytes = b""):
        self.sock, self.addr = sock, addr
        self.buf = bytearray(buf)
        self.scanned = 0  # how far buf was searched for the end of the headers
        self.deadline = 0.0


class _Refusal(Exception):
    """An answer the selector gives on its own, after which the connection is drained and closed."""

    def __init__(self, status: int, body: dict, headers: tuple[str, ...] = ()):
        super().__init__(body.get("message"))
        self.status, self.body, self.headers = status, body, headers


class DataServer:
    """The data endpoint: an HTTP/1.1 server in the registry process, sharing its state.

    ``state`` is the app's state (sessions, settings, writer: the upload
    writer, ``flightbase_registry.writer.UploadWriter``; audit, when there is
    one). The limits, each with its default above:

    - ``max_connections``: chunks received at once, a worker thread each; the
      next get 503 without a thread.
    - ``max_per_user``: of those, how many one ticket holder may have; the
      next get 429 (one person's uploads cannot take every worker).
    - ``header_seconds``: the time a connection has to send a request's line
      and headers, all of them (408 and closed after).
    - ``max_header_bytes``: their largest size (431).
    - ``max_waiting``: connections waiting for headers (or draining a refused
      body) at once; when one more arrives the oldest is closed.
    - ``body_seconds``: the longest silence inside a body; what arrived is kept.
    - ``writers``: who may still write in a workspace (``HubWriters``); by
      default the hub of ``hub_env`` (``JUPYTERHUB_API_URL``, with the
      service's ``JUPYTERHUB_API_TOKEN``, read once at start-up), cached for
      the platform's ``auth_cache_seconds`` (at most 5 s).
    """

    def __init__(self, state, host: str, port: int, tickets: Tickets | None = None,
                 max_connections: int = MAX_CONNECTIONS, *, max_per_user: int = MAX_PER_USER,
                 header_seconds: float = HEADER_SECONDS, max_header_bytes: int = MAX_HEADER_BYTES,
                 max_waiting: int = MAX_WAITING, body_seconds: float = BODY_SECONDS,
                 writers: HubWriters | None = None, hub_env: HubServiceEnv | None = None):
        self.state = state
        self.hub_env = hub_env
        self.tickets = tickets or Tickets()
        self.max_connections, self.max_per_user = max_connections, max_per_user
        self.header_seconds, self.max_header_bytes = header_seconds, max_header_bytes
        self.max_waiting, self.body_seconds = max(1, max_waiting), body_seconds
        self._writers = writers
        self._writers_lock = threading.Lock()
        self._listener = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET,
                                              backlog=socket.SOMAXCONN)
        self._listener.setblocking(False)
        self.port = self._listener.getsockname()[1]
        self._slots = threading.BoundedSemaphore(max_connections)
        self._per_user: collections.Counter[str] = collections.Counter()
        self._counts_lock = threading.Lock()
        # Only the selector's thread touches these: connections by deadline (insertion order is
        # deadline order, as every entry of one dict waits the same time).
        self._heads: dict[_Conn, None] = {}
        self._drains: dict[_Conn, None] = {}
        self._sel = selectors.DefaultSelector()
        # Workers give connections back through this queue and wake the selector with a byte.
        self._returned: collections.deque = collections.deque()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._sel.register(self._listener, selectors.EVENT_READ, "listener")
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._thread = threading.Thread(target=self._loop, name="registry-data", daemon=True)
        self._thread.start()
        log.info("data endpoint on port %d", self.port)

    def stop(self) -> None:
        self._stopping = True
        if self._thread is not None:
            self._wake()
            self._thread.join(10)
        for c in [*self._heads, *self._drains]:
            c.sock.close()
        self._heads.clear()
        self._drains.clear()
        self._sel.close()
        self._listener.close()
        self._wake_r.close()
        self._wake_w.close()
        if self._writers is not None:
            self._writers.close()

    def audit(self, method: str, target: str, headers, user: str | None, status: int,
              workspace: str | None = None, at=None) -> None:
        """Record a state-changing request in the registry's audit log (``state.audit``, when there is one)."""
        writer = getattr(self.state, "audit", None)
        if writer is None or method not in audit.UNSAFE_METHODS:
            return
        try:
            match = PATH_RE.match(urlsplit(target).path)
            scheme = headers.get("Authorization", "").partition(" ")[0].lower()
            writer.record(audit.make_row(
                at=at or utcnow(), service="registry", actor=user, actor_kind="user" if user else "anonymous",
                credential="ticket" if scheme == "bearer" else "none", method=method,
                route=AUDIT_ROUTE if match else None,
                target={"upload_id": match.group(1), "index": match.group(2)} if match else {},
                workspace=workspace, status=status))
        except Exception:  # the chunk's answer is what matters to the client
            log.exception("data endpoint: an audit row could not be made")

    def upload_of(self, upload_id: str) -> Upload:
        with self.state.sessions() as session:
            up = session.get(Upload, upload_id)
            if up is None:
                raise ApiError(404, f"upload {upload_id!r} not found")
            session.expunge(up)
            return up

    def writers(self) -> HubWriters:
        """The hub's answer to who may write where, made on first use (a DataServer that never
        serves a chunk needs no hub)."""
        with self._writers_lock:
            if self._writers is None:
                hub = (self.hub_env or HubServiceEnv()).require("api_url", "api_token")
                self._writers = HubWriters(hub.api_url, hub.api_token,
                                           cache_seconds=min(WRITERS_CACHE_SECONDS, self.state.settings.auth_cache_seconds))
            return self._writers

    # --- the selector's thread: connections waiting for headers, or draining

    def _loop(self) -> None:
        while not self._stopping:
            for key, _ in self._sel.select(self._timeout()):
                try:
                    if key.data == "listener":
                        self._accept()
                    elif key.data == "wake":
                        self._take_returned()
                    else:
                        self._read(key.data)
                except Exception:  # one connection's surprise must not stop the endpoint
                    log.exception("data endpoint: selector loop")
                    if isinstance(key.data, _Conn):
                        self._close(key.data)
            self._expire(time.monotonic())
        for sock, _, _, _ in self._returned:
            sock.close()

    def _timeout(self) -> float | None:
        firsts = [next(iter(d)).deadline for d in (self._heads, self._drains) if d]
        return max(0.0, min(firsts) - time.monotonic()) if firsts else None

    def _accept(self) -> None:
        for _ in range(64):  # then let the others be served too
            try:
                sock, addr = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    # out of descriptors: the oldest waiting connection makes room; with none, a pause
                    # instead of a busy loop on a listener that stays readable
                    if not self._evict_oldest():
                        time.sleep(0.05)
                    return
                if exc.errno == errno.ECONNABORTED:
                    continue
                raise
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._wait_for_headers(_Conn(sock, addr))

    def _wait_for_headers(self, c: _Conn) -> None:
        self._make_room()
        c.deadline = time.monotonic() + self.header_seconds
        self._heads[c] = None
        self._sel.register(c.sock, selectors.EVENT_READ, c)

    def _make_room(self) -> None:
        while len(self._heads) + len(self._drains) >= self.max_waiting:
            self._evict_oldest()

    def _evict_oldest(self) -> bool:
        """Close the connection that waited longest (one already answered first); False when none waits."""
        for d in (self._drains, self._heads):
            if d:
                self._close(next(iter(d)))
                return True
        return False

    def _close(self, c: _Conn) -> None:
        self._forget(c)
        c.sock.close()

    def _forget(self, c: _Conn) -> None:
        self._heads.pop(c, None)
        self._drains.pop(c, None)
        try:
            self._sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass

    def _read(self, c: _Conn) -> None:
        try:
            data = c.sock.recv(self.max_header_bytes if c in self._heads else _RECV)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(c)
            return
        if not data:
            self._close(c)
        elif c in self._heads:
            c.buf += data
            self._advance(c)
        # else draining: the rest of a refused body, thrown away

    def _expire(self, now: float) -> None:
        while self._drains and next(iter(self._drains)).deadline <= now:
            self._close(next(iter(self._drains)))
        while self._heads and next(iter(self._heads)).deadline <= now:
            c = next(iter(self._heads))
            if c.buf.strip():  # partway through a request: say why (an idle keep-alive connection just closes)
                self._send(c, _response(408, {"status": 408, "message": f"the request's line and headers did not all "
                                                                        f"arrive within {self.header_seconds:g} s"}))
            self._close(c)

    def _advance(self, c: _Conn) -> None:
        """Act on each request whose headers ``c.buf`` holds in full (a client may send several at once)."""
        while c in self._heads:
            start = 0
            while start < len(c.buf) and c.buf[start] in b"\r\n":  # empty lines before a request are ignored (RFC 9112 2.2)
                start += 1
            if start:
                del c.buf[:start]
                c.scanned = 0
            end = _HEAD_END.search(c.buf, max(0, c.scanned - 2), self.max_header_bytes)
            if end is None:
                c.scanned = len(c.buf)
                if len(c.buf) >= self.max_header_bytes:
                    self._refuse(c, _Refusal(431, {"status": 431, "message": f"the request's line and headers are over "
                                                                             f"{self.max_header_bytes} bytes"}))
                return
            head = bytes(c.buf[:end.end()])
            del c.buf[:end.end()]
            c.scanned = 0
            method = target = headers = user = None
            try:
                method, target, keep_alive, headers = _parse_head(head)
                if method == "OPTIONS":
                    if not self._send(c, _preflight(keep_alive)) or not keep_alive:
                        self._close(c)
                        return
                    del self._heads[c]  # the next request, with a fresh deadline (at the end of the line)
                    c.deadline = time.monotonic() + self.header_seconds
                    self._heads[c] = None
                    continue
                if method != "PATCH":
                    raise _Refusal(501, {"status": 501, "message": f"unsupported method ({method!r}); chunks are sent "
                                                                   "with PATCH"})
                try:
                    upload_id, _ = _data_path(target)
                    user = _ticket_holder(self.tickets, headers, upload_id)
                except ApiError as exc:
                    raise _Refusal(exc.status, exc.body()) from None
                self._admit(user)
            except _Refusal as refusal:
                if method is not None:
                    self.audit(method, target, headers, user, refusal.status)
                self._refuse(c, refusal)
                return
            self._hand_over(c, head, user)
            return

    def _hand_over(self, c: _Conn, head: bytes, user: str) -> None:
        """To a worker thread (its slot taken by ``_admit``), with every byte read so far."""
        self._forget(c)
        try:
            c.sock.settimeout(self.body_seconds)  # blocking, and a silence this long ends the body
            threading.Thread(target=self._serve, args=(c.sock, c.addr, head + bytes(c.buf), user),
                             name="registry-data-chunk", daemon=True).start()
        except BaseException:
            self._release(user)
            c.sock.close()
            raise

    def _admit(self, user: str) -> None:
        """Take a worker slot for ``user``'s chunk, or refuse: 429 past its share, 503 when all are taken."""
        with self._counts_lock:
            if self._per_user[user] >= self.max_per_user:
                raise _Refusal(429, {"status": 429, "message": f"this ticket's holder is already sending "
                                                               f"{self.max_per_user} chunks at once, the most one person "
                                                               "may (max_per_user); send this one when one of them is done"},
                               ("Retry-After: 1",))
            if not self._slots.acquire(blocking=False):
                raise _Refusal(503, {"status": 503, "message": "the data endpoint is serving as many uploads as it may; "
                                                               "try again shortly, or send the chunk through the API"},
                               ("Retry-After: 1",))
            self._per_user[user] += 1

    def _release(self, user: str) -> None:
        with self._counts_lock:
            self._per_user[user] -= 1
            if self._per_user[user] <= 0:
                del self._per_user[user]
            self._slots.release()

    def _refuse(self, c: _Conn, refusal: _Refusal) -> None:
        """Answer, then let the client finish sending (its bytes are thrown away) so that it reads the
        answer, instead of a reset that would lose it (Apache's "lingering close"); no thread waits."""
        if not self._send(c, _response(refusal.status, refusal.body, refusal.headers)):
            self._close(c)
            return
        self._drain(c)

    def _drain(self, c: _Conn) -> None:
        self._forget(c)
        try:
            c.sock.shutdown(socket.SHUT_WR)
        except OSError:
            c.sock.close()
            return
        self._make_room()
        c.buf.clear()
        c.deadline = time.monotonic() + LINGER_SECONDS
        self._drains[c] = None
        self._sel.register(c.sock, selectors.EVENT_READ, c)

    @staticmethod
    def _send(c: _Conn, data: bytes) -> bool:
        """Send a short answer without blocking; False when it does not fit at once (a client that sent
        requests without reading the answers) or the connection is gone."""
        try:
            return c.sock.send(data) == len(data)
        except OSError:
            return False

    def _take_returned(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        while self._returned:
            sock, addr, leftover, drain = self._returned.popleft()
            if self._stopping:
                sock.close()
                continue
            c = _Conn(sock, addr, leftover)
            try:
                sock.setblocking(False)
                if drain:
                    self._drain(c)
                else:
                    self._wait_for_headers(c)
                    self._advance(c)  # a request the client sent right behind the last one
            except Exception:
                log.exception("data endpoint: a connection given back")
                self._close(c)

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # a byte is already waiting (or the endpoint is closing): the selector wakes anyway

    # --- a worker thread: one request

    def _serve(self, sock: socket.socket, addr, prefix: bytes, user: str) -> None:
        back = None
        done = _Once(lambda: self._release(user))
        try:
            handler = _Handler(sock, addr, self, prefix, done)
            if handler.drain:
                back = (sock, addr, b"", True)
            elif not handler.close_connection:
                back = (sock, addr, handler.leftover, False)
        except Exception:
            log.exception("data endpoint: request failed")
        finally:
            done()
        if back is None or self._stopping:
            sock.close()
        else:  # the connection waits for its next request (or drains) in the selector, without this thread
            self._returned.append(back)
            self._wake()


class _Once:
    """Calls ``fn`` the first time it is called, never again."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self) -> None:
        fn, self.fn = self.fn, None
        if fn is not None:
            fn()


def _parse_head(head: bytes) -> tuple[str, str, bool, http.client.HTTPMessage]:
    """Method, target, whether the connection may stay open, and the headers of a complete head;
    ``_Refusal`` 400/431 when it cannot be read."""
    line, _, rest = head.partition(b"\n")
    words = line.decode("iso-8859-1").split()
    if len(words) != 3 or not re.fullmatch(r"HTTP/1\.[0-9]", words[2]):
        raise _Refusal(400, {"status": 400, "message": "bad request line; it is METHOD TARGET HTTP/1.1"})
    try:
        headers = http.client.parse_headers(io.BytesIO(rest))
    except http.client.HTTPException as exc:  # over 100 header lines
        raise _Refusal(431, {"status": 431, "message": f"the request's headers: {exc}"}) from None
    connection = headers.get("Connection", "").lower()
    keep_alive = "close" not in connection and (words[2] != "HTTP/1.0" or "keep-alive" in connection)
    return words[0], words[1], keep_alive, headers


def _data_path(target: str) -> tuple[str, int]:
    path = urlsplit(target).path
    match = PATH_RE.match(path)
    if match is None:
        raise ApiError(404, f"no such data URL {path!r}; it is {{url}}/files/{{index}} with the url POST .../direct answered")
    return match.group(1), int(match.group(2))


def chunk_range(target: str, headers) -> tuple[int, int]:
    """Where a chunk starts (the ``offset`` query parameter) and its length (``Content-Length``);
    ``ApiError`` 422 naming ``offset``, or 411 naming ``Content-Length`` (a chunked body is refused:
    the writer must know the length before the first byte)."""
    raw = parse_qs(urlsplit(target).query).get("offset", [""])[0]
    if not (raw.isascii() and raw.isdigit()):
        raise ApiError(422, "offset: a whole number of bytes (where this chunk starts) is required", field="offset")
    length = headers.get("Content-Length", "")
    if "chunked" in headers.get("Transfer-Encoding", "").lower() or not (length.isascii() and length.isdigit()):
        raise ApiError(411, "Content-Length: the chunk's length is required (no chunked encoding)", field="Content-Length")
    return int(raw), int(length)


def _ticket_holder(tickets: Tickets, headers, upload_id: str) -> str:
    scheme, _, token = headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "Authorization: 'Bearer <ticket>' is required; POST .../uploads/{id}/direct gives the ticket",
                       field="Authorization")
    return tickets.check(token.strip(), upload_id)


def _response(status: int, body: dict, headers: tuple[str, ...] = (), close: bool = True) -> bytes:
    data = json.dumps(body).encode()
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", f"Server: {SERVER}",
             f"Date: {email.utils.formatdate(usegmt=True)}", "Content-Type: application/json",
             f"Content-Length: {len(data)}", "Access-Control-Allow-Origin: *", *headers]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + data


def _preflight(keep_alive: bool) -> bytes:
    """CORS preflight: the registry's page (on the hub's origin) sends chunks here with fetch.
    Any origin may: a request carries its ticket in a header, never a cookie, so a page of
    another origin can do nothing it could not do without the browser."""
    lines = ["HTTP/1.1 204 No Content", f"Server: {SERVER}", f"Date: {email.utils.formatdate(usegmt=True)}",
             "Access-Control-Allow-Methods: PATCH", "Access-Control-Allow-Headers: Authorization, Content-Type",
             "Access-Control-Max-Age: 600", "Access-Control-Allow-Origin: *", "Content-Length: 0"]
    if not keep_alive:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class _Prefixed(io.RawIOBase):
    """The bytes the selector already read from a connection, then the connection's own.

    Under an ``io.BufferedReader`` it is what ``makefile("rb")`` gives
    ``BaseHTTPRequestHandler``: a large ``readinto`` goes straight to
    ``recv_into`` once the prefix is used up. With ``cut`` set it ends where
    the bytes already read end, to take them back without blocking.
    """

    def __init__(self, sock: socket.socket, prefix: bytes):
        self.sock = sock
        self.prefix = memoryview(prefix)
        self.cut = False

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        if self.prefix:
            n = min(len(b), len(self.prefix))
            memoryview(b).cast("B")[:n] = self.prefix[:n]
            self.prefix = self.prefix[n:]
            return n
        if self.cut:
            return 0
        return self.sock.recv_into(b)


class _SocketWriter(io.BufferedIOBase):
    """Writes go out whole (``sendall``), as socketserver's own writer does."""

    def __init__(self, sock: socket.socket):
        self.sock = sock

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        self.sock.sendall(b)
        return memoryview(b).nbytes


class _Handler(BaseHTTPRequestHandler):
    """One request, in a worker thread; the selector already checked its ticket and its share."""

    protocol_version = "HTTP/1.1"
    server_version = SERVER

    def __init__(self, sock: socket.socket, addr, endpoint: DataServer, prefix: bytes, received):
        self.endpoint = endpoint
        self.prefix = prefix
        self.received = received  # gives the worker's slot back: called once the body is in, before the answer
        self.drain = False  # answered before its body was read: the selector drains what the client still sends
        self.leftover = b""  # bytes read past this request: the start of the next one
        super().__init__(sock, addr, endpoint)

    def setup(self):
        self.connection = self.request
        self.source = _Prefixed(self.connection, self.prefix)
        self.rfile = io.BufferedReader(self.source)
        self.wfile = _SocketWriter(self.connection)

    def handle(self):
        self.close_connection = True
        self.handle_one_request()
        if not self.close_connection and not self.drain:
            self.source.cut = True
            self.leftover = self.rfile.read()

    def finish(self):
        pass  # the connection outlives this request: the endpoint closes it or gives it back to the selector

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass  # no access log (as for the API): nothing about a request is worth a line

    def send_error(self, code, message=None, explain=None):
        """Errors of the HTTP layer itself (what ``parse_request`` refuses) as JSON too."""
        self.close_connection = True
        self.drain = True
        self._answer(code, {"status": code, "message": message or self.responses.get(code, ("error",))[0]})

    def end_headers(self):
        self.send_header("Access-Control-Allow-Origin", "*")
        super().end_headers()

    def do_PATCH(self):
        self.body_read = False
        self.user = self.workspace = None  # what _chunk learns, for the audit row
        at = utcnow()
        try:
            status, body = 200, self._chunk()
        except ApiError as exc:
            status, body = exc.status, exc.body()
            self.close_connection = True  # the body may be unread: start afresh
        except Exception:
            log.exception("data endpoint: chunk failed")
            status, body = 500, {"status": 500, "message": "the registry could not store this chunk; see its log"}
            self.close_connection = True
        # The slot is free before the answer goes out: a client that sends its next chunk as soon as it
        # reads this one's answer must find it free (a short answer fits the socket's buffer: no wait).
        self.received()
        self._answer(status, body)
        self.endpoint.audit(self.command, self.path, self.headers, self.user, status, self.workspace, at)
        if not self.body_read:
            self.drain = True

    def _chunk(self) -> dict:
        upload_id, index = _data_path(self.path)
        user = self.user = _ticket_holder(self.endpoint.tickets, self.headers, upload_id)
        offset, length = chunk_range(self.path, self.headers)
        up = self.endpoint.upload_of(upload_id)
        self.workspace = up.workspace
        self.endpoint.writers().check(user, up.workspace)  # a ticket outlives a membership; the hub knows
        writer: UploadWriter = self.endpoint.state.writer
        with writer.chunk(up, index, offset, length) as chunk:
            chunk.open()
            got = chunk.sink.receive(self.rfile.readinto, length)
            chunk.position += got
            self.body_read = True
            if got < length:
                self.close_connection = True  # the sender stopped mid-body: this connection is spent
            return json.loads(chunk.finish().model_dump_json())

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            self.close_connection = True  # the client is gone; what arrived is kept

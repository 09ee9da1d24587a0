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
share ``api.uploads.Chunk``: the same checks, the same writer, the same
resumable state, so a client may switch between them at any offset.

Why: every byte through configurable-http-proxy costs its single Node.js
thread about 2 s of CPU per GB on the benchmark machine, and uvicorn's event
loop another 1.3 s per GB to receive it; here a thread per connection reads
the body with ``readinto`` straight into the writer's page-aligned buffers
(docs/benchmarks.md, "Registry uploads").

The ticket is ``<upload id>.<user>.<expiry>.<HMAC-SHA256>`` under a key that
lives only in this process's memory: a restart invalidates every ticket, and
a client asks for a new one (the CLI does so on a 401). Tickets travel in the
``Authorization`` header, never in a URL, and nothing here logs headers.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
import re
import secrets
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from flightbase.service.errors import ApiError
from flightbase_registry.api.uploads import Chunk
from flightbase_registry.models import Upload

log = logging.getLogger("flightbase.registry.direct")

TICKET_SECONDS = 3600
LINGER_SECONDS = 10  # longest wait for the rest of a refused body
HEADER_SECONDS = 30  # a connection that sends no complete request line and headers in this long is closed
BODY_SECONDS = 300  # longest silence in the middle of a body (what arrived is kept)
MAX_CONNECTIONS = 64  # connections served at once; more get 503 at once
PATH_RE = re.compile(r"^/uploads/([0-9a-f]{32})/files/([0-9]+)$")


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
        if len(parts) != 4:
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


class DataServer:
    """The data endpoint: a threaded HTTP/1.1 server in the registry process, sharing its state."""

    def __init__(self, state, host: str, port: int, tickets: Tickets | None = None, max_connections: int = MAX_CONNECTIONS):
        self.state = state  # the app's state: sessions, settings, registry_settings, hashers, upload_locks
        self.tickets = tickets or Tickets()
        handler = type("Handler", (_Handler,), {"endpoint": self})
        self.httpd = _Server((host, port), handler, max_connections)
        self.port = self.httpd.server_address[1]
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="registry-data", daemon=True)
        self._thread.start()
        log.info("data endpoint on port %d", self.port)

    def stop(self) -> None:
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(10)
        self.httpd.server_close()

    def upload_of(self, upload_id: str) -> Upload:
        with self.state.sessions() as session:
            up = session.get(Upload, upload_id)
            if up is None:
                raise ApiError(404, f"upload {upload_id!r} not found")
            session.expunge(up)
            return up


class _Server(ThreadingHTTPServer):
    """A thread per connection, at most ``limit`` at once: the next ones are answered 503 and closed
    without a thread (each connection may hold a file's 32 MB of buffers)."""

    daemon_threads = True

    def __init__(self, address, handler, limit: int):
        super().__init__(address, handler)
        self.slots = threading.BoundedSemaphore(limit)

    def process_request(self, request, client_address):
        if not self.slots.acquire(blocking=False):
            body = json.dumps({"status": 503, "message": "the data endpoint is serving as many uploads as it may; "
                                                         "try again shortly, or send the chunk through the API"}).encode()
            try:
                request.settimeout(1)
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                                b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "flightbase-registry-data"
    timeout = HEADER_SECONDS  # until a request's headers are in; BODY_SECONDS while its body arrives
    endpoint: DataServer

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass  # no access log (as for the API): nothing about a request is worth a line

    def send_error(self, code, message=None, explain=None):
        """Errors of the HTTP layer itself (bad request line, unknown method) as JSON too."""
        self.close_connection = True
        self._answer(code, {"status": code, "message": message or self.responses.get(code, ("error",))[0]})

    def do_OPTIONS(self):
        """CORS preflight: the registry's page (on the hub's origin) sends chunks here with fetch.
        Any origin may: a request carries its ticket in a header, never a cookie, so a page of
        another origin can do nothing it could not do without the browser."""
        self.send_response(204)
        self.send_header("Access-Control-Allow-Methods", "PATCH")
        self.send_header("Access-Control-Allow-Headers", "Authorization, Content-Type")
        self.send_header("Access-Control-Max-Age", "600")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def end_headers(self):
        self.send_header("Access-Control-Allow-Origin", "*")
        super().end_headers()

    def do_PATCH(self):
        self.body_read = False
        self.connection.settimeout(BODY_SECONDS)
        try:
            status, body = 200, self._chunk()
        except ApiError as exc:
            status, body = exc.status, exc.body()
            self.close_connection = True  # the body may be unread: start afresh
        except Exception:
            log.exception("data endpoint: chunk failed")
            status, body = 500, {"status": 500, "message": "the registry could not store this chunk; see its log"}
            self.close_connection = True
        self._answer(status, body)
        if not self.body_read:
            self._linger()
        self.connection.settimeout(HEADER_SECONDS)  # until the next request on this connection

    def _linger(self) -> None:
        """Refused before its body was read: let the client finish sending (its bytes are thrown away)
        so that it reads the answer, instead of a reset that would lose it (Apache's "lingering close")."""
        try:
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(LINGER_SECONDS)
            while self.rfile.read1(1 << 20):
                pass
        except OSError:
            pass

    def _chunk(self) -> dict:
        url = urlsplit(self.path)
        match = PATH_RE.match(url.path)
        if match is None:
            raise ApiError(404, f"no such data URL {url.path!r}; it is {{url}}/files/{{index}} with the url POST .../direct answered")
        upload_id, index = match.group(1), int(match.group(2))
        query = parse_qs(url.query)
        raw = query.get("offset", [""])[0]
        if not raw.isdigit():
            raise ApiError(422, "offset: a whole number of bytes (where this chunk starts) is required", field="offset")
        offset = int(raw)
        auth = self.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise ApiError(401, "Authorization: 'Bearer <ticket>' is required; POST .../uploads/{id}/direct gives the ticket",
                           field="Authorization")
        self.endpoint.tickets.check(token.strip(), upload_id)
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower() or not self.headers.get("Content-Length", "").isdigit():
            raise ApiError(411, "Content-Length: the chunk's length is required (no chunked encoding)", field="Content-Length")
        length = int(self.headers["Content-Length"])
        up = self.endpoint.upload_of(upload_id)
        with Chunk(self.endpoint.state, up, index, offset, length) as chunk:
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

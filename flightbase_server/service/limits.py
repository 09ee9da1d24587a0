"""What a request must show before its body is read: credentials, and a size within its route's limit.

FastAPI reads and parses a JSON body before it resolves the route's
dependencies, authentication included; without this middleware an
anonymous client could make a service hold a multi-gigabyte body in memory.
``RequestLimits`` looks at the request line and headers only, before the
application runs:

- under the API prefix (``<prefix>api/``), a request that carries no
  credentials at all (no ``Authorization: token|bearer ...`` header, no hub
  OAuth cookie) is answered 401 at once, its body unread. Open as before: the
  OpenAPI document, and a browser's ``GET`` (the route sends it to log in);
  ``/health`` and the OAuth callback are outside the API prefix. Paths outside
  it that need credentials all the same are named in ``guarded_paths`` (the
  Prometheus page, ``<prefix>metrics``: 401 for a browser too, it has no login
  page). Whether the credentials are valid is still decided by the route
  (``auth.current_identity``, ``metrics.check_access``).
- every request's body is capped: ``PlatformSettings.max_body_bytes`` (1 MiB
  unless ``FLIGHTBASE_MAX_BODY_BYTES`` says otherwise) or its route's own
  limit from ``LARGE_BODIES``. A declared ``Content-Length`` over the limit is
  answered 413 unread; a body without one (chunked) is counted as it streams
  and cut off with 413 as soon as the count passes the limit: the application
  never receives more than the limit.

A plain ASGI class (not ``BaseHTTPMiddleware``), so that upload bodies stream
through untouched, piece by piece.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable

from starlette.exceptions import HTTPException
from starlette.routing import compile_path

from flightbase_server.service.asgi import answer, credential_of, header


def default_limit(state) -> int:
    return state.settings.max_body_bytes  # PlatformSettings, FLIGHTBASE_MAX_BODY_BYTES


# JSON bytes allowed per file in the declaration of a dataset upload (path,
# size, sha256 and extract of each file; paths average well under 400 bytes)
DECLARED_FILE_BYTES = 512

# The routes whose bodies may be larger than the default, and each one's limit.
# The streamed ones write their body to disk as it arrives and check the same
# limit themselves; this table makes the middleware let them through.
# (service, method, route under <prefix>api/v1) -> the limit, read from the
# application's state when a request comes (settings are loaded by then).
LARGE_BODIES: dict[tuple[str, str, str], Callable[[Any], int]] = {
    # a chunk of a dataset upload, streamed to the staging area (registry api/uploads.py)
    ("registry", "PATCH", "/workspaces/{workspace}/datasets/{name}/uploads/{upload_id}/files/{index}"):
        lambda state: state.registry_settings.max_chunk_bytes,
    # an image archive, streamed to the image staging area (registry api/image_uploads.py)
    ("registry", "POST", "/workspaces/{workspace}/images/upload"):
        lambda state: state.registry_settings.max_file_bytes,
    # the declaration of a dataset upload (JSON): one entry per file, up to max_files of them
    ("registry", "POST", "/workspaces/{workspace}/datasets/{name}/uploads"):
        lambda state: max(default_limit(state), state.registry_settings.max_files * DECLARED_FILE_BYTES),
    # training code, streamed to the code area (jobqueue api/code.py: MAX_CODE_BYTES)
    ("jobqueue", "POST", "/code"):
        lambda state: state.max_code_bytes,
}

UNAUTHENTICATED = "authentication required: send 'Authorization: token <your hub API token>'"


@dataclass
class BodyLimits:
    """How many body bytes a request may carry, by method and path."""

    default: Callable[[], int]
    # (method, compiled path, limit)
    routes: list[tuple[str, re.Pattern, Callable[[], int]]] = field(default_factory=list)

    def limit(self, method: str, path: str) -> int:
        for route_method, regex, limit in self.routes:
            if route_method == method and regex.match(path):
                return limit()
        return self.default()

    @classmethod
    def of_service(cls, service: str, prefix: str, state) -> "BodyLimits":
        """The limits of one service's routes (``LARGE_BODIES``), read from ``state`` at request time."""
        routes = [(method, compile_path(f"{prefix}api/v1{template}")[0], partial(limit, state))
                  for (owner, method, template), limit in LARGE_BODIES.items() if owner == service]
        return cls(default=partial(default_limit, state), routes=routes)


class BodyTooLarge(HTTPException):
    """Raised to the application by ``receive`` once the body passed its limit.

    An ``HTTPException`` so that FastAPI's body parsing re-raises it instead of
    turning it into a 400; whatever the application answers then, the
    middleware answers 413 in its place.
    """

    def __init__(self, limit: int):
        super().__init__(413, too_large(limit))


def too_large(limit: int) -> str:
    return f"the body is more than the {limit} bytes this request may carry"


class RequestLimits:
    """ASGI middleware: 401 before the body for requests without credentials; 413 past the body limit."""

    def __init__(self, app, *, prefix: str, hub_cookie: str, header_pattern: re.Pattern, limits: BodyLimits,
                 open_paths: frozenset[str] = frozenset(), guarded_paths: frozenset[str] = frozenset()):
        self.app = app
        self.api = prefix + "api/"
        self.hub_cookie = hub_cookie
        self.header_pattern = header_pattern
        self.limits = limits
        self.open_paths = open_paths
        self.guarded_paths = guarded_paths

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if self._needs_credentials(scope) and not self._has_credentials(scope):
            return await answer(send, 401, UNAUTHENTICATED)
        limit = self.limits.limit(scope["method"], scope["path"])
        declared = header(scope, b"content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > limit:
            # field "body", as every other refusal of a body's size
            return await answer(send, 413, f"Content-Length: the body is {int(declared)} bytes, more than the {limit} "
                                           "bytes this request may carry", field="body")
        await _Capped(self.app, limit)(scope, receive, send)

    def _needs_credentials(self, scope) -> bool:
        path = scope["path"]
        if path in self.guarded_paths:
            return True
        if not path.startswith(self.api) or path in self.open_paths:
            return False
        # a browser's page load: the route redirects it to the hub's login (auth.current_identity)
        return not (scope["method"] == "GET" and "text/html" in (header(scope, b"accept") or ""))

    def _has_credentials(self, scope) -> bool:
        """Whether the request carries what authentication would look at (auth._token_from), valid or not."""
        return credential_of(scope, self.hub_cookie, self.header_pattern) != "none"


class _Capped:
    """One request whose body is counted as the application receives it."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit
        self.received = 0
        self.cut = False  # the body passed the limit: the answer is 413
        self.started = False  # the application's response started before that

    async def __call__(self, scope, receive, send):
        async def counted_receive():
            if self.cut:
                raise BodyTooLarge(self.limit)
            message = await receive()
            if message["type"] == "http.request":
                self.received += len(message.get("body", b""))
                if self.received > self.limit:  # this piece is never handed over
                    self.cut = True
                    raise BodyTooLarge(self.limit)
            return message

        async def guarded_send(message):
            if self.cut and not self.started:
                return  # the application's answer to a body it was not given in full: ours goes instead
            if message["type"] == "http.response.start":
                self.started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            # BodyTooLarge, or what the application made of it; anything else is the application's own error
            if not self.cut or self.started:
                raise
        if self.cut and not self.started:
            await answer(send, 413, too_large(self.limit), field="body")

"""The kit's request guards as plain ASGI: credentials and body size before the body, XSRF on state changes.

The middlewares are driven with hand-made ASGI messages (the server's side
of the protocol) around a small application that records what it received:
that is what shows which bytes an application was handed and whether
``receive`` was called at all, which a client over a socket cannot see. The
real services behind the real proxy are tested in
``tests/security/test_requests.py``.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from fastapi import FastAPI
from flightbase_server.service.hub_login import HubLogin
from pydantic import BaseModel

from flightbase_server.service.limits import BodyLimits, RequestLimits
from flightbase_server.service.xsrf import XsrfCheck, cookie_name
from starlette.routing import compile_path

PREFIX = "/services/jobqueue/"
HUB_COOKIE = "service-jobqueue"
PATTERN = HubLogin.auth_header_pat
TOKEN_HEADER = (b"authorization", b"token abc")
CAP = 1000
BIG_ROUTE = f"{PREFIX}api/v1/code"
BIG_CAP = 10 << 20
PIECE = b"x" * 65536


def limits() -> BodyLimits:
    return BodyLimits(default=lambda: CAP, routes=[("POST", compile_path(BIG_ROUTE)[0], lambda: BIG_CAP)])


class Recorder:
    """An ASGI application that reads its whole body (as FastAPI would), then answers 200."""

    def __init__(self):
        self.called = False
        self.received = 0

    async def __call__(self, scope, receive, send):
        self.called = True
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            self.received += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def guarded(app):
    return RequestLimits(app, prefix=PREFIX, hub_cookie=HUB_COOKIE, header_pattern=PATTERN, limits=limits(),
                         open_paths=frozenset({f"{PREFIX}api/v1/openapi.json"}))


def run(asgi, path: str, *, method: str = "POST", headers=(), body_pieces=(), piece_count: int | None = None):
    """Run one request; returns (status, headers, json-or-bytes body, how many times receive was called)."""
    scope = {"type": "http", "method": method, "path": path, "headers": list(headers), "query_string": b"",
             "root_path": "", "scheme": "http", "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 1),
             "http_version": "1.1", "asgi": {"version": "3.0"}}
    pieces = iter(body_pieces)
    state = {"receives": 0, "sent": []}

    async def receive():
        state["receives"] += 1
        piece = next(pieces, None)
        if piece is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        return {"type": "http.request", "body": piece, "more_body": True}

    async def send(message):
        state["sent"].append(message)

    asyncio.run(asgi(scope, receive, send))
    start = next(m for m in state["sent"] if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in state["sent"] if m["type"] == "http.response.body")
    assert sum(1 for m in state["sent"] if m["type"] == "http.response.start") == 1, "one response, not two"
    try:
        body = json.loads(body)
    except ValueError:
        pass
    return start["status"], dict(start["headers"]), body, state["receives"]


def endless():
    while True:
        yield PIECE


# --- credentials before the body

def test_finding7_no_credentials_is_401_before_any_receive():
    app = Recorder()
    status, headers, body, receives = run(guarded(app), f"{PREFIX}api/v1/trainings",
                                          headers=[(b"content-type", b"application/json")], body_pieces=endless())
    assert status == 401 and "Authorization: token" in body["message"]
    assert receives == 0 and not app.called


@pytest.mark.parametrize("headers", [
    [TOKEN_HEADER],
    [(b"authorization", b"Bearer abc")],
    [(b"cookie", f"other=1; {HUB_COOKIE}=tok".encode())],
])
def test_credentials_of_either_kind_reach_the_app(headers):
    app = Recorder()
    status, _, _, _ = run(guarded(app), f"{PREFIX}api/v1/trainings", headers=headers, body_pieces=[b"{}"])
    assert status == 200 and app.called  # whether they are valid is the route's decision


@pytest.mark.parametrize("headers", [
    [(b"authorization", b"junk")],  # authentication ignores it
    [(b"cookie", f"{HUB_COOKIE}=".encode())],  # an empty cookie is none
    [(b"cookie", b"flightbase-jobqueue-xsrf=abc")],
])
def test_what_authentication_would_ignore_is_no_credentials(headers):
    app = Recorder()
    status, _, _, _ = run(guarded(app), f"{PREFIX}api/v1/trainings", headers=headers)
    assert status == 401 and not app.called


@pytest.mark.parametrize(("method", "path", "headers"), [
    ("GET", f"{PREFIX}api/v1/openapi.json", []),
    ("GET", f"{PREFIX}health", []),
    ("GET", f"{PREFIX}oauth_callback", []),
    ("GET", PREFIX, []),  # a page: its route sends the browser to log in
    ("GET", f"{PREFIX}api/v1/info", [(b"accept", b"text/html,application/xhtml+xml")]),
])
def test_open_routes_stay_open(method, path, headers):
    app = Recorder()
    status, _, _, _ = run(guarded(app), path, method=method, headers=headers)
    assert status == 200 and app.called


# --- the body's size

def test_finding7_declared_content_length_over_the_cap_is_413_unread():
    app = Recorder()
    status, headers, body, receives = run(guarded(app), f"{PREFIX}api/v1/trainings",
                                          headers=[TOKEN_HEADER, (b"content-length", str(CAP + 1).encode())],
                                          body_pieces=endless())
    assert status == 413 and body["field"] == "body" and f"Content-Length: the body is {CAP + 1} bytes" in body["message"]
    assert receives == 0 and not app.called


def test_finding7_undeclared_body_is_cut_at_the_cap_while_streaming():
    app = Recorder()
    pieces = [b"x" * 300] * 10  # 3000 bytes, chunked: no Content-Length
    status, headers, body, _ = run(guarded(app), f"{PREFIX}api/v1/trainings", headers=[TOKEN_HEADER],
                                   body_pieces=pieces)
    assert status == 413 and body["field"] == "body" and str(CAP) in body["message"]
    assert app.received <= CAP, "the piece that passes the cap is never handed over"
    assert app.received == 900


def test_finding7_endless_body_is_cut_at_the_cap():
    app = Recorder()
    status, _, _, receives = run(guarded(app), f"{PREFIX}api/v1/trainings", headers=[TOKEN_HEADER],
                                 body_pieces=endless())
    assert status == 413 and app.received == 0 and receives == 1


def test_a_body_within_the_cap_passes():
    app = Recorder()
    status, _, _, _ = run(guarded(app), f"{PREFIX}api/v1/trainings",
                          headers=[TOKEN_HEADER, (b"content-length", str(CAP).encode())], body_pieces=[b"x" * CAP])
    assert status == 200 and app.received == CAP


def test_finding7_streaming_route_takes_a_big_body():
    """The route's own limit (LARGE_BODIES) applies, not the default."""
    app = Recorder()
    count = BIG_CAP // len(PIECE)
    status, _, _, _ = run(guarded(app), BIG_ROUTE, headers=[TOKEN_HEADER], body_pieces=[PIECE] * count)
    assert status == 200 and app.received == count * len(PIECE) > 100 * CAP
    # ...and is cut at its own limit
    app = Recorder()
    status, _, body, _ = run(guarded(app), BIG_ROUTE, headers=[TOKEN_HEADER], body_pieces=[PIECE] * (count + 1))
    assert status == 413 and app.received <= BIG_CAP and str(BIG_CAP) in body["message"]
    # the route's limit is for its method only
    app = Recorder()
    status, _, _, _ = run(guarded(app), BIG_ROUTE, method="PUT", headers=[TOKEN_HEADER], body_pieces=[PIECE])
    assert status == 413


class Item(BaseModel):
    name: str


def _fastapi_app():
    app = FastAPI()

    @app.post(f"{PREFIX}api/v1/items")
    async def create(item: Item):
        return {"name": item.name}

    return app


def test_finding7_fastapi_body_parsing_gets_413_not_400():
    """With FastAPI itself reading the body (a JSON model), the cut is still answered 413, once."""
    app = _fastapi_app()
    status, _, body, _ = run(guarded(app), f"{PREFIX}api/v1/items",
                             headers=[TOKEN_HEADER, (b"content-type", b"application/json")],
                             body_pieces=[b'{"name": "' + b"a" * 600, b"a" * 600 + b'"}'])
    assert status == 413 and body["field"] == "body"
    status, _, body, _ = run(guarded(app), f"{PREFIX}api/v1/items",
                             headers=[TOKEN_HEADER, (b"content-type", b"application/json")],
                             body_pieces=[b'{"name": "small"}'])
    assert status == 200 and body == {"name": "small"}


def test_limits_of_a_service_come_from_its_state():
    from types import SimpleNamespace

    state = SimpleNamespace(settings=SimpleNamespace(max_body_bytes=123),
                            registry_settings=SimpleNamespace(max_chunk_bytes=456, max_file_bytes=789, max_files=2))
    reg = BodyLimits.of_service("registry", "/services/registry/", state)
    base = "/services/registry/api/v1/workspaces/w/datasets/d/uploads"
    assert reg.limit("PATCH", f"{base}/u1/files/0") == 456
    assert reg.limit("POST", "/services/registry/api/v1/workspaces/w/images/upload") == 789
    assert reg.limit("POST", base) == 2 * 512
    state.settings.max_body_bytes = 5000
    assert reg.limit("POST", base) == 5000, "never less than the default"
    assert reg.limit("POST", f"{base}/u1/commit") == 5000
    state.settings.max_body_bytes = 123
    assert reg.limit("POST", f"{base}/u1/commit") == 123
    assert reg.limit("POST", "/services/jobqueue/api/v1/code") == 123  # another service's route
    state.registry_settings = SimpleNamespace(max_chunk_bytes=1, max_file_bytes=1, max_files=1)
    assert reg.limit("PATCH", f"{base}/u1/files/0") == 1, "read when the request comes"


# --- XSRF

def xsrf_guarded(app):
    return XsrfCheck(app, prefix=PREFIX, hub_cookie=HUB_COOKIE, header_pattern=PATTERN,
                     xsrf_cookie=cookie_name("jobqueue"))


def test_finding7_cookie_state_change_without_xsrf_token_is_403():
    app = Recorder()
    status, _, body, receives = run(xsrf_guarded(app), f"{PREFIX}api/v1/trainings",
                                    headers=[(b"cookie", f"{HUB_COOKIE}=tok".encode())], body_pieces=endless())
    assert status == 403 and body["field"] == "X-XSRF-Token" and "X-XSRF-Token" in body["message"]
    assert "flightbase-jobqueue-xsrf" in body["message"] and receives == 0 and not app.called


def test_xsrf_token_or_authorization_header_passes():
    token = "t" * 43
    for headers in ([TOKEN_HEADER, (b"cookie", f"{HUB_COOKIE}=tok".encode())],
                    [(b"cookie", f"{HUB_COOKIE}=tok; flightbase-jobqueue-xsrf={token}".encode()),
                     (b"x-xsrf-token", token.encode())]):
        app = Recorder()
        status, _, _, _ = run(xsrf_guarded(app), f"{PREFIX}api/v1/trainings", headers=headers)
        assert status == 200 and app.called
    # reading needs no token
    app = Recorder()
    assert run(xsrf_guarded(app), f"{PREFIX}api/v1/trainings", method="GET",
               headers=[(b"cookie", f"{HUB_COOKIE}=tok".encode())])[0] == 200
    # another service's XSRF cookie is not this one's
    app = Recorder()
    status, _, _, _ = run(xsrf_guarded(app), f"{PREFIX}api/v1/trainings",
                          headers=[(b"cookie", f"{HUB_COOKIE}=tok; flightbase-registry-xsrf={token}".encode()),
                                   (b"x-xsrf-token", token.encode())])
    assert status == 403

"""Answering from a plain ASGI middleware, before the application (and its error handlers) runs."""

from __future__ import annotations

import json
import re

from starlette.requests import cookie_parser

from flightbase_server.service.errors import ApiError


async def answer(send, status: int, message: str, *, field: str | None = None) -> None:
    """Send a complete JSON error response, in the body format of every other error (``ApiError``).

    Whatever of the request's body was not read is left to the server, which
    discards it as it arrives once the response is complete (uvicorn), and
    keeps the connection. Not ``Connection: close``: closing at once while the
    hub's proxy is still forwarding the body makes the proxy answer 503
    instead of passing this response on.
    """
    body = json.dumps(ApiError(status, message, field=field).body()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def header(scope, name: bytes) -> str | None:
    """The first value of a request header (``name`` in lower case), as text."""
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def credential_of(scope, hub_cookie: str, header_pattern: re.Pattern) -> str:
    """What the request showed to authenticate, in the order ``auth._token_from`` looks (valid or not):
    "token", "cookie" or "none". The request limits refuse "none" before the body; the audit log
    records which."""
    if header_pattern.match(header(scope, b"authorization") or ""):
        return "token"
    if cookie_parser(header(scope, b"cookie") or "").get(hub_cookie):
        return "cookie"
    return "none"


class StatusSend:
    """``send`` that remembers the status it passed on: 500 until the application answers (what the
    server sends when it raises before responding)."""

    def __init__(self, send):
        self.send = send
        self.status = 500

    async def __call__(self, message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        await self.send(message)

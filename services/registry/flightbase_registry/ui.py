"""The service's page: a workspace's datasets (with browser uploads) and images.

Served at the service's prefix (``/services/registry/``) to a logged-in user
(the hub's OAuth cookie); the page itself calls the REST API with that cookie,
using the same chunked upload protocol as the CLI.

Because a browser sends that cookie with any request to this origin, requests
that change state (POST, PUT, PATCH, DELETE) authenticated by the cookie must
also carry the page's XSRF token: the page sets it as a cookie and writes it
into itself, and its requests echo it in the ``X-XSRF-Token`` header (the
double-submit pattern; another site can make the browser send the cookie but
cannot read it to fill the header). Requests with an ``Authorization`` header
(the CLI, other services) are not affected. See
https://cheatsheetseries.owasp.org/cheatsheets/Cross-Site_Request_Forgery_Prevention_Cheat_Sheet.html#alternative-using-a-double-submit-cookie-pattern
"""

from __future__ import annotations

import hmac
import html
import json
import re
import secrets
from http.cookies import SimpleCookie
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse

from flightbase import authz
from flightbase.authz import Identity
from flightbase.service.deps import CurrentIdentity

PAGE = Path(__file__).parent / "static" / "index.html"
XSRF_COOKIE = "flightbase-registry-xsrf"
XSRF_HEADER = "x-xsrf-token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{32,64}$")


def install(app: FastAPI) -> None:
    prefix = app.state.prefix

    @app.get(prefix, include_in_schema=False)
    async def page(request: Request, identity: CurrentIdentity) -> HTMLResponse:
        workspaces = await visible_workspaces(request, identity)
        token = request.cookies.get(XSRF_COOKIE, "")
        if not _TOKEN_RE.match(token):
            token = secrets.token_urlsafe(32)
        page = (PAGE.read_text().replace("{{api}}", f"{prefix}api/v1")
                .replace("{{user}}", html.escape(identity.name))
                .replace("{{workspaces_json}}", json.dumps(workspaces).replace("<", "\\u003c"))
                .replace("{{xsrf_json}}", json.dumps(token)))
        response = HTMLResponse(page, headers={"Cache-Control": "no-store"})
        response.set_cookie(XSRF_COOKIE, token, path=prefix, httponly=True, samesite="strict")
        return response

    auth = app.state.hub_auth
    app.add_middleware(XsrfCheck, prefix=prefix, cookie_name=auth.cookie_name, header_pattern=auth.auth_header_pat)


async def visible_workspaces(request: Request, identity: Identity) -> list[str]:
    """The workspaces the page offers: all of them to an administrator, else the user's own."""
    if identity.is_admin:
        return sorted(await request.app.state.hub.workspaces())
    filtered = {s.split("!group=", 1)[1] for s in identity.scopes
                if s.startswith(authz.PREFIX) and "!group=" in s}
    return sorted(set(identity.groups) | filtered)


class XsrfCheck:
    """ASGI middleware: refuse cookie-authenticated state changes without the XSRF token.

    A plain ASGI class (not ``BaseHTTPMiddleware``) so that upload bodies
    stream through untouched.
    """

    def __init__(self, app, prefix: str, cookie_name: str, header_pattern: re.Pattern):
        self.app = app
        self.api = prefix + "api/"
        self.cookie_name = cookie_name
        self.header_pattern = header_pattern

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] in UNSAFE_METHODS and scope["path"].startswith(self.api):
            problem = xsrf_problem(dict(scope["headers"]), self.cookie_name, self.header_pattern)
            if problem:
                body = json.dumps({"status": 403, "message": problem, "field": "X-XSRF-Token",
                                   "errors": {"X-XSRF-Token": problem}}).encode()
                await send({"type": "http.response.start", "status": 403,
                            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def xsrf_problem(headers: dict[bytes, bytes], hub_cookie: str, header_pattern: re.Pattern) -> str | None:
    """Why a state-changing request must be refused, or None (pure: raw ASGI headers in).

    ``header_pattern`` is the one authentication uses (HubAuth.auth_header_pat):
    a request whose Authorization header it accepts is authenticated by that
    token, which a browser never adds by itself.
    """
    if header_pattern.match(headers.get(b"authorization", b"").decode("latin-1")):
        return None
    cookies = SimpleCookie()
    try:
        cookies.load(headers.get(b"cookie", b"").decode("latin-1"))
    except Exception:  # http.cookies raises CookieError on junk
        return "unreadable Cookie header"
    if hub_cookie not in cookies:
        return None  # no credentials at all: the route answers 401
    expected = cookies[XSRF_COOKIE].value if XSRF_COOKIE in cookies else ""
    sent = headers.get(XSRF_HEADER.encode(), b"").decode("latin-1")
    if not expected or not sent or not hmac.compare_digest(expected, sent):
        return ("requests authenticated by the browser's cookie must send the page's XSRF token in the "
                "X-XSRF-Token header (reload the page); scripts should send 'Authorization: token ...' instead")
    return None

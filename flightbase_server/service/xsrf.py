"""Cookie-authenticated state changes must carry the service's XSRF token (double-submit cookie).

A browser sends a service's hub OAuth cookie with any request to its origin,
whichever site made it. So requests that change state (POST, PUT, PATCH,
DELETE) under the API prefix, authenticated by that cookie, must also carry
the service's XSRF token: a service's page sets it as the cookie
``flightbase-<service>-xsrf`` and writes it into itself, and the page's
requests echo it in the ``X-XSRF-Token`` header (another site can make the
browser send the cookie but cannot read it to fill the header). A service
without a page (the jobqueue, today) never sets the cookie, so it refuses
every cookie-authenticated state change. Requests with an ``Authorization``
header (the CLI, other services, scripts) are not affected: a browser never
adds one by itself. See
https://cheatsheetseries.owasp.org/cheatsheets/Cross-Site_Request_Forgery_Prevention_Cheat_Sheet.html#alternative-using-a-double-submit-cookie-pattern
"""

from __future__ import annotations

import hmac
import re
import secrets
from http.cookies import SimpleCookie

from flightbase_server.service.asgi import answer

XSRF_HEADER = "x-xsrf-token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{32,64}$")


def cookie_name(service: str) -> str:
    """The XSRF cookie of one service (each its own: both share the hub's origin)."""
    return f"flightbase-{service}-xsrf"


def page_token(current: str | None) -> str:
    """The token a page sets and writes into itself: the browser's current one when well formed
    (so pages open in two tabs both work), else a new one."""
    return current if current and _TOKEN_RE.match(current) else secrets.token_urlsafe(32)


class XsrfCheck:
    """ASGI middleware: refuse cookie-authenticated state changes without the XSRF token.

    A plain ASGI class (not ``BaseHTTPMiddleware``) so that upload bodies
    stream through untouched.
    """

    def __init__(self, app, *, prefix: str, hub_cookie: str, header_pattern: re.Pattern, xsrf_cookie: str):
        self.app = app
        self.api = prefix + "api/"
        self.hub_cookie = hub_cookie
        self.header_pattern = header_pattern
        self.xsrf_cookie = xsrf_cookie

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] in UNSAFE_METHODS and scope["path"].startswith(self.api):
            problem = xsrf_problem(dict(scope["headers"]), self.hub_cookie, self.header_pattern, self.xsrf_cookie)
            if problem:
                return await answer(send, 403, problem, field="X-XSRF-Token")
        await self.app(scope, receive, send)


def xsrf_problem(headers: dict[bytes, bytes], hub_cookie: str, header_pattern: re.Pattern, xsrf_cookie: str) -> str | None:
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
        return None  # no credentials at all: the request is answered 401
    expected = cookies[xsrf_cookie].value if xsrf_cookie in cookies else ""
    sent = headers.get(XSRF_HEADER.encode(), b"").decode("latin-1")
    if not expected or not sent or not hmac.compare_digest(expected, sent):
        return (f"requests authenticated by the browser's cookie must send the XSRF token of the service's page "
                f"(its cookie {xsrf_cookie}) in the X-XSRF-Token header (reload the page); scripts should send "
                "'Authorization: token ...' instead")
    return None

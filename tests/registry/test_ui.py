"""The browser page: XSRF protection of its state-changing requests, and the workspaces it offers.

Which workspaces the page offers is tested on identities directly: through
the real hub, the page's OAuth cookie token carries only the scopes the hub
grants the service's OAuth client (no admin:groups, no custom:flightbase
scopes, as `flightbase/hub/config.py` stands), so a browser sees no workspace.
"""

from __future__ import annotations

import asyncio
import re
from contextlib import contextmanager
from types import SimpleNamespace

import httpx
import pytest
from jupyterhub.services.auth import HubOAuth

from flightbase import authz
from flightbase.authz import Identity
from flightbase.service.xsrf import xsrf_problem
from flightbase_registry.ui import XSRF_COOKIE, visible_workspaces

HUB_COOKIE = "registry-cookie"
PATTERN = HubOAuth.auth_header_pat
TOKEN = "t" * 43


@pytest.mark.parametrize(("headers", "refused"), [
    ({}, False),  # no credentials: the route itself answers 401
    ({b"authorization": b"token abc"}, False),
    ({b"authorization": b"Bearer abc", b"cookie": f"{HUB_COOKIE}=x".encode()}, False),
    ({b"cookie": f"{HUB_COOKIE}=x".encode()}, True),
    ({b"cookie": f"{HUB_COOKIE}=x; {XSRF_COOKIE}={TOKEN}".encode()}, True),
    ({b"cookie": f"{HUB_COOKIE}=x".encode(), b"x-xsrf-token": TOKEN.encode()}, True),
    ({b"cookie": f"{HUB_COOKIE}=x; {XSRF_COOKIE}={TOKEN}".encode(), b"x-xsrf-token": b"u" * 43}, True),
    ({b"cookie": f"{HUB_COOKIE}=x; {XSRF_COOKIE}={TOKEN}".encode(), b"x-xsrf-token": TOKEN.encode()}, False),
    # an Authorization header that authentication would ignore (it falls back to the cookie) does not exempt
    ({b"authorization": b"junk", b"cookie": f"{HUB_COOKIE}=x".encode()}, True),
])
def test_xsrf_problem(headers, refused):
    assert (xsrf_problem(headers, HUB_COOKIE, PATTERN, XSRF_COOKIE) is not None) is refused


@contextmanager
def browser(platform, username: str, password: str):
    """An httpx client logged in through the hub's login form, as a browser is."""
    with httpx.Client(base_url=platform.url, follow_redirects=True, timeout=30) as client:
        client.get("/hub/login")
        resp = client.post("/hub/login", data={"username": username, "password": password, "_xsrf": client.cookies.get("_xsrf")})
        resp.raise_for_status()
        yield client


class _Hub:
    async def workspaces(self):
        return {"vision": object(), "nlp": object(), "audio": object()}


def _request():
    return SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(hub=_Hub())))


MEMBER = frozenset(authz.scope_name(p) for p in authz.all_permissions())


@pytest.mark.parametrize(("identity", "offered"), [
    (Identity("root", scopes=MEMBER | {"admin:groups"}), ["audio", "nlp", "vision"]),
    (Identity("ann", groups=frozenset({"vision"}), scopes=MEMBER), ["vision"]),
    (Identity("aud", scopes=frozenset({f"{authz.PREFIX}datasets:read!group=nlp"})), ["nlp"]),
    (Identity("nobody"), []),
])
def test_visible_workspaces(identity, offered):
    assert asyncio.run(visible_workspaces(_request(), identity)) == offered


PAGE_TOKEN = re.compile(r'const XSRF = "([^"]+)";')


@pytest.mark.slow
def test_page_sets_an_xsrf_token_that_cookie_authenticated_changes_must_send(platform, world):
    with browser(platform, "admin", platform.admin_password) as client:
        page = client.get("/services/registry/", headers={"Accept": "text/html"})
        assert page.status_code == 200, page.text
        token = PAGE_TOKEN.search(page.text).group(1)
        assert client.cookies.get(XSRF_COOKIE) == token

        url = f"/services/registry/api/v1/workspaces/{world.workspace}/datasets"
        for method in ("POST", "PATCH", "DELETE", "PUT"):
            forged = client.request(method, url + "/forged", json={"name": "forged"})
            assert forged.status_code == 403 and forged.json()["field"] == "X-XSRF-Token", (method, forged.text)
        read = client.get(url)  # reading needs no token
        assert read.status_code == 200 and isinstance(read.json(), list), read.text
        # with the token the request goes through, with the administrator's rights
        sent = client.post(url, json={"name": "from-page"}, headers={"X-XSRF-Token": token})
        assert sent.status_code == 201, sent.text

        # a reload keeps the same token, so pages open in two tabs both work
        again = client.get("/services/registry/", headers={"Accept": "text/html"})
        assert PAGE_TOKEN.search(again.text).group(1) == token

    # the CLI's way (a token in the Authorization header) needs no XSRF token
    resp = platform.api("registry", "POST", f"workspaces/{world.workspace}/datasets", world.tokens["member"], json={"name": "cli"})
    assert resp.status_code == 201, resp.text

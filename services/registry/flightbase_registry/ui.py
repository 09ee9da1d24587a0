"""The service's page: a workspace's datasets (with browser uploads) and images.

Served at the service's prefix (``/services/registry/``) to a logged-in user
(the hub's OAuth cookie); the page itself calls the REST API with that cookie,
using the same chunked upload protocol as the CLI.

State-changing requests the page makes with that cookie carry its XSRF token
(the cookie ``flightbase-registry-xsrf``, echoed in the ``X-XSRF-Token``
header); the check is the kit's, for both services: ``flightbase.service.xsrf``.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse

from flightbase import authz
from flightbase.authz import Identity
from flightbase.service import xsrf
from flightbase.service.deps import CurrentIdentity

PAGE = Path(__file__).parent / "static" / "index.html"
XSRF_COOKIE = xsrf.cookie_name("registry")


def install(app: FastAPI) -> None:
    prefix = app.state.prefix

    @app.get(prefix, include_in_schema=False)
    async def page(request: Request, identity: CurrentIdentity) -> HTMLResponse:
        workspaces = await visible_workspaces(request, identity)
        token = xsrf.page_token(request.cookies.get(XSRF_COOKIE))
        page = (PAGE.read_text().replace("{{api}}", f"{prefix}api/v1")
                .replace("{{user}}", html.escape(identity.name))
                .replace("{{workspaces_json}}", json.dumps(workspaces).replace("<", "\\u003c"))
                .replace("{{xsrf_json}}", json.dumps(token)))
        response = HTMLResponse(page, headers={"Cache-Control": "no-store"})
        response.set_cookie(XSRF_COOKIE, token, path=prefix, httponly=True, samesite="strict")
        return response


async def visible_workspaces(request: Request, identity: Identity) -> list[str]:
    """The workspaces the page offers: all of them to an administrator, else the user's own."""
    if identity.is_admin:
        return sorted(await request.app.state.hub.workspaces())
    filtered = {s.split("!group=", 1)[1] for s in identity.scopes
                if s.startswith(authz.PREFIX) and "!group=" in s}
    return sorted(set(identity.groups) | filtered)

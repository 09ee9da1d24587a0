"""The service's page: a workspace's datasets (with browser uploads) and images.

Served at the service's prefix (``/services/registry/``) to a logged-in user
(the hub's OAuth cookie); the page itself calls the REST API with that cookie,
using the same chunked upload protocol as the CLI.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse

from flightbase.service.deps import CurrentIdentity

PAGE = Path(__file__).parent / "static" / "index.html"


def install(app: FastAPI) -> None:
    prefix = app.state.prefix

    @app.get(prefix, include_in_schema=False)
    async def page(request: Request, identity: CurrentIdentity) -> HTMLResponse:
        groups = json.dumps(sorted(identity.groups)).replace("<", "\\u003c")
        page = (PAGE.read_text().replace("{{api}}", f"{prefix}api/v1")
                .replace("{{user}}", html.escape(identity.name)).replace("{{groups_json}}", groups))
        return HTMLResponse(page)

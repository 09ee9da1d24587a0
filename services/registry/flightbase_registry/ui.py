"""The service's page: a workspace's datasets (versions, browser uploads) and images, in the hub's look.

Served at the service's prefix (``/services/registry/?workspace=W``) to a
logged-in user (the hub's OAuth cookie). It is rendered with JupyterHub's own
templates (``flightbase_server.service.pages.HubPages``: the hub's nav bar with its
"Flightbase" entry, Bootstrap 5, light and dark as the hub) from
``templates/registry.html``, and links to the jobqueue's dashboard and, for
administrators, its admin page. Its script (``static/registry.js``, served at
``<prefix>static/`` behind the same login) calls the REST API with that cookie,
using the same chunked upload protocol as the CLI.

State-changing requests the page makes with that cookie carry its XSRF token
(the cookie ``flightbase-registry-xsrf``, which ``HubPages.render`` sets and
writes into the page as ``data-xsrf``, echoed in the ``X-XSRF-Token``
header); the check is the kit's, for both services: ``flightbase_server.service.xsrf``.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse

from flightbase_server.service import xsrf
from flightbase_server.service.deps import CurrentIdentity
from flightbase_server.service.pages import HubPages, install_static, visible_workspaces

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
XSRF_COOKIE = xsrf.cookie_name("registry")

__all__ = ["XSRF_COOKIE", "install", "visible_workspaces"]


def install(app: FastAPI) -> None:
    prefix = app.state.prefix
    pages = HubPages("registry", prefix, template_dirs=[TEMPLATES], static_dir=STATIC)
    app.state.pages = pages
    api = f"{prefix}api/v1"

    @app.get(prefix, include_in_schema=False)
    async def page(request: Request, identity: CurrentIdentity, workspace: str | None = None) -> HTMLResponse:
        workspaces = await visible_workspaces(request, identity)
        # a workspace the person cannot see is not offered, nor named back: the first of theirs instead
        selected = workspace if workspace in workspaces else (workspaces[0] if workspaces else None)
        image_uploads = request.app.state.oci is not None
        data = {"api": api, "workspaces": workspaces, "workspace": selected, "user": identity.name,
                "image_uploads": image_uploads, "links": pages.links()}
        return pages.render(request, identity, "registry.html", title="Datasets and images", page="registry",
                            page_data=data, workspaces=workspaces, selected=selected, image_uploads=image_uploads)

    install_static(app, STATIC)

"""The jobqueue's pages, in the hub's look (``flightbase_server.service.pages``).

- ``<prefix>`` (the hub's Services menu links here): to the dashboard.
- ``<prefix>dashboard/?workspace=W``: a workspace's dashboard, for its
  members (a picker of the viewer's workspaces). Its script reads
  ``GET /api/v1/dashboard`` and ``GET /api/v1/usage`` (the chart).
- ``<prefix>admin/``: the administrators' page (others get a 403 page). Its
  script reads ``GET /api/v1/admin/overview``, ``/jobs``, ``/usage`` and
  ``/audit``, and changes jobs (cancel, priority, requeue) with the page's
  XSRF token in ``X-XSRF-Token``.
- ``<prefix>static/``: the pages' scripts and the charting library, Chart.js
  from npm, which the Makefile copies into ``static/vendor/`` from the root's
  node_modules: the file travels with this package (a wheel, a service image),
  where node_modules does not, and nothing is loaded from a CDN.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse

from flightbase_server.service.deps import CurrentIdentity
from flightbase_server.service.pages import HubPages, install_static, visible_workspaces

HERE = Path(__file__).parent
STATIC = HERE / "static"
CHART_JS = "vendor/chart.umd.min.js"  # the Makefile copies it from node_modules/chart.js/dist/
REFRESH_SECONDS = 5


def install(app: FastAPI) -> None:
    prefix = app.state.prefix
    pages = HubPages("jobqueue", prefix, template_dirs=[HERE / "templates"], static_dir=STATIC)
    app.state.pages = pages
    api = f"{prefix}api/v1"

    def chart_url() -> str | None:
        return pages.own_static_url(CHART_JS) if (STATIC / CHART_JS).is_file() else None

    @app.get(prefix, include_in_schema=False)
    async def home(identity: CurrentIdentity) -> RedirectResponse:
        return RedirectResponse(f"{prefix}dashboard/", status_code=302)

    @app.get(f"{prefix}dashboard/", include_in_schema=False)
    async def dashboard(request: Request, identity: CurrentIdentity, workspace: str | None = None):
        workspaces = await visible_workspaces(request, identity)
        selected = workspace if workspace in workspaces else (workspaces[0] if workspaces else None)
        data = {"api": api, "workspaces": workspaces, "workspace": selected, "user": identity.name,
                "refresh_seconds": REFRESH_SECONDS, "links": pages.links(), "chart": chart_url() is not None}
        return pages.render(request, identity, "dashboard.html", title="Dashboard", page="dashboard",
                            page_data=data, chart_url=chart_url(), workspaces=workspaces, selected=selected)

    @app.get(f"{prefix}admin/", include_in_schema=False)
    async def admin(request: Request, identity: CurrentIdentity):
        if not identity.is_admin:
            return pages.error(request, identity, 403, "Forbidden",
                               "This page is for the platform's administrators. Your workspaces' dashboard "
                               "is under Flightbase > Dashboard.")
        data = {"api": api, "user": identity.name, "refresh_seconds": REFRESH_SECONDS, "links": pages.links()}
        return pages.render(request, identity, "admin.html", title="Administration", page="admin", page_data=data,
                            retention_days=app.state.settings.audit_retention_days)

    install_static(app, STATIC)

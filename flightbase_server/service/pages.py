"""Pages in the hub's look: a service renders JupyterHub's own templates.

Both services' pages extend JupyterHub's ``page.html`` (Bootstrap 5, its nav
bar, login widget and dark-mode toggle), as ``rcthomas/jupyterhub-announcement``
does, so they look like the hub's own pages and follow its light or dark
theme. What is inside:

- ``HubPages``: a Jinja environment over, in order, the service's templates,
  this kit's (``templates/flightbase.html``, the frame every Flightbase page
  extends), Flightbase's ``page.html`` override (``flightbase_server/hub/templates``:
  the "Flightbase" entry of the nav bar, which the hub loads too, through
  ``c.JupyterHub.template_paths``) and JupyterHub's own templates, also
  reachable as ``templates/<name>`` (what the override extends). ``render``
  gives a template what ``page.html`` needs (see ``namespace``) and sets the
  service's XSRF cookie (``flightbase_server.service.xsrf``); ``error`` answers an
  error in the same look (JupyterHub's ``error.html``).
- ``static_url``: the hub's static files (stylesheet, Bootstrap, dark mode) are
  served by the hub at ``<hub prefix>static/``; the service only links them,
  with the hub's cache-busting ``?v=`` (tornado's: the MD5 of the file).
- ``install_static``: a service's own static files (its scripts, the charting
  library) at ``<prefix>static/``, behind the same login as its pages. Nothing
  is loaded from another site: no CDN.
- ``visible_workspaces``: the workspaces a page offers (its picker).
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

import jinja2
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from flightbase_server import authz
from flightbase_server.authz import Identity
from flightbase_server.service import xsrf
from flightbase_server.service.deps import CurrentIdentity
from flightbase_server.service.errors import not_found
from flightbase_server.settings import HubServiceEnv

KIT_TEMPLATES = Path(__file__).parent / "templates"
# Flightbase's page.html override (the nav bar's "Flightbase" entry): the hub loads it too
# (package data of flightbase_server.hub)
NAV_TEMPLATES = Path(str(resources.files("flightbase_server.hub") / "templates"))
# The services in the nav bar's Services menu (the hub lists those with display: True)
SERVICES = ("jobqueue", "registry")


def jupyterhub_data() -> Path:
    from jupyterhub._data import DATA_FILES_PATH

    return Path(DATA_FILES_PATH)


@lru_cache(maxsize=256)
def _file_version(path: str) -> str:
    """Tornado's static file version (what the hub's ``static_url`` appends): the MD5 of the content."""
    try:
        return hashlib.md5(Path(path).read_bytes()).hexdigest()
    except OSError:
        return ""


@dataclass(frozen=True)
class PageUser:
    """What ``page.html`` and the nav bar read of ``user`` (the hub passes its own User object)."""

    name: str
    admin: bool

    @property
    def json_escaped_name(self) -> str:
        return json.dumps(self.name)[1:-1].replace("<", "\\u003c").replace(">", "\\u003e")


@dataclass(frozen=True)
class ServiceLink:
    name: str
    href: str


class HubPages:
    """The pages of one service, rendered with JupyterHub's templates."""

    def __init__(self, service: str, prefix: str, *, hub_prefix: str | None = None, base_url: str | None = None,
                 template_dirs: Iterable[Path] = (), static_dir: Path | None = None):
        self.service = service
        self.prefix = prefix  # the service's own, e.g. /services/jobqueue/
        self.base_url = base_url or HubServiceEnv.from_env().base_url or "/"  # the hub's, e.g. /
        if not self.base_url.endswith("/"):
            self.base_url += "/"
        self.hub_prefix = hub_prefix or f"{self.base_url}hub/"
        self.static_dir = static_dir
        self.xsrf_cookie = xsrf.cookie_name(service)
        hub_templates = jupyterhub_data() / "templates"
        self.hub_static = jupyterhub_data() / "static"
        loader = jinja2.ChoiceLoader([
            jinja2.PrefixLoader({"templates": jinja2.FileSystemLoader([str(hub_templates)])}, "/"),
            jinja2.FileSystemLoader([str(d) for d in (*template_dirs, KIT_TEMPLATES, NAV_TEMPLATES, hub_templates)]),
        ])
        # autoescape, as the hub's own environment (page.html relies on it)
        self.env = jinja2.Environment(loader=loader, autoescape=True)

    # -- URLs ---------------------------------------------------------------------------------
    def static_url(self, path: str, include_version: bool = True) -> str:
        """A file of the hub's static folder, as the hub serves it (``page.html`` calls this)."""
        url = f"{self.hub_prefix}static/{path}"
        if include_version:
            version = _file_version(str(self.hub_static / path))
            if version:
                url += f"?v={version}"
        return url

    def own_static_url(self, path: str) -> str:
        """A file of this service's static folder (``install_static``), versioned like the hub's."""
        version = _file_version(str(self.static_dir / path)) if self.static_dir else ""
        return f"{self.prefix}static/{path}" + (f"?v={version}" if version else "")

    def links(self) -> dict[str, str]:
        """The Flightbase pages, for the links between them."""
        services = f"{self.base_url}services/"
        return {
            "dashboard": f"{services}jobqueue/dashboard/",
            "admin": f"{services}jobqueue/admin/",
            "registry": f"{services}registry/",
            "hub_admin": f"{self.hub_prefix}admin",
            "hub_home": f"{self.hub_prefix}home",
        }

    # -- rendering -------------------------------------------------------------------------------
    def namespace(self, identity: Identity) -> dict[str, Any]:
        """What JupyterHub's ``page.html`` reads (the hub's ``BaseHandler.template_namespace``)."""
        return {
            "base_url": self.hub_prefix,
            "prefix": self.base_url,
            "user": PageUser(identity.name, identity.is_admin),
            "admin_access": identity.is_admin,
            # the nav bar shows the hub's Admin link for this scope; an administrator holds it
            "parsed_scopes": {"admin-ui": set()} if identity.is_admin else {},
            "services": [ServiceLink(name, f"{self.base_url}services/{name}/") for name in SERVICES],
            "login_url": f"{self.hub_prefix}login",
            "logout_url": f"{self.hub_prefix}logout",
            "static_url": self.static_url,
            "own_static_url": self.own_static_url,
            "version_hash": "",
            "no_spawner_check": True,  # no spawner here: page.html would ask for its options form
            "xsrf_token": "",  # the hub's own token is the hub's; the service's is ``xsrf`` below
            "announcement": None,
            "links": self.links(),
            "service": self.service,
        }

    def render(self, request: Request, identity: Identity, template: str, *, status: int = 200,
               **values: Any) -> HTMLResponse:
        """The page, with the service's XSRF token set as its cookie and given to the template as ``xsrf``."""
        token = xsrf.page_token(request.cookies.get(self.xsrf_cookie))
        ns = {**self.namespace(identity), "xsrf": token, **values}
        html = self.env.get_template(template).render(**ns)
        response = HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})
        response.set_cookie(self.xsrf_cookie, token, path=self.prefix, httponly=True, samesite="strict")
        return response

    def error(self, request: Request, identity: Identity, status: int, title: str, message: str) -> HTMLResponse:
        """An error page in the hub's look (JupyterHub's ``error.html``)."""
        return self.render(request, identity, "error.html", status=status, status_code=status,
                           status_message=title, message=message)


def install_static(app: FastAPI, directory: Path) -> None:
    """Serve ``directory`` at ``<prefix>static/`` to logged-in users (the pages' scripts and libraries)."""
    root = directory.resolve()

    @app.get(app.state.prefix + "static/{path:path}", include_in_schema=False)
    async def static(path: str, identity: CurrentIdentity) -> Response:
        target = (root / path).resolve()
        if not target.is_relative_to(root) or not target.is_file():
            raise not_found(f"static file {path!r}")
        media_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if target.suffix in (".js", ".mjs"):
            media_type = "text/javascript"
        # versioned URLs (own_static_url): a changed file gets a new URL, so browsers may keep this one
        return FileResponse(target, media_type=media_type, headers={"Cache-Control": "private, max-age=86400"})


async def visible_workspaces(request: Request, identity: Identity) -> list[str]:
    """The workspaces a page offers: all of them to an administrator, else the person's own
    (the groups they are a member of now, authz.is_member, and any a filtered scope names)."""
    found = await request.app.state.hub.workspaces()
    return sorted(name for name, ws in found.items() if authz.can_see(identity, name, ws.members))

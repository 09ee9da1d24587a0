"""The browser page: XSRF protection of its state-changing requests, the workspaces it offers,
and the page itself in the hub's look (flightbase_server.service.pages: the hub's nav bar with the
"Flightbase" entry, Bootstrap, links to the jobqueue's dashboard and admin page).

Which workspaces the page offers is tested on identities directly (a table), and through the
real hub for a member who logs in with a password and an administrator.
"""

from __future__ import annotations

import asyncio
import re
from contextlib import contextmanager
from types import SimpleNamespace

import httpx
import pytest
from flightbase_server.service.hub_login import HubLogin

from flightbase_server import authz
from flightbase_server.authz import Identity
from flightbase_server.service.xsrf import xsrf_problem
from flightbase_registry.ui import XSRF_COOKIE, visible_workspaces

HUB_COOKIE = "registry-cookie"
PATTERN = HubLogin.auth_header_pat
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
    """The hub's groups as the service last read them (a stand-in for HubClient's listing)."""

    async def workspaces(self):
        return {"vision": SimpleNamespace(members=("ann", "newcomer")), "nlp": SimpleNamespace(members=()),
                "audio": SimpleNamespace(members=())}


def _request():
    return SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(hub=_Hub())))


MEMBER = frozenset(authz.scope_name(p) for p in authz.all_permissions())


@pytest.mark.parametrize(("identity", "offered"), [
    (Identity("root", scopes=MEMBER | {"admin:groups"}), ["audio", "nlp", "vision"]),
    (Identity("ann", groups=frozenset({"vision"}), scopes=MEMBER), ["vision"]),
    (Identity("aud", scopes=frozenset({f"{authz.PREFIX}datasets:read!group=nlp"})), ["nlp"]),
    (Identity("nobody"), []),
    # the groups as the hub lists them now decide, not the token's cached lookup: a member removed
    # at the hub is no longer offered the workspace, one added is
    (Identity("gone", groups=frozenset({"vision"}), scopes=MEMBER), []),
    (Identity("newcomer", scopes=MEMBER), ["vision"]),
])
def test_visible_workspaces(identity, offered):
    assert asyncio.run(visible_workspaces(_request(), identity)) == offered


PAGE_TOKEN = re.compile(r'id="flightbase-page"[^>]* data-xsrf="([^"]+)"')


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


# -- the page in the hub's look -------------------------------------------------------------------

def _render(identity: Identity, workspaces: list[str], selected: str | None, image_uploads: bool) -> str:
    """The page's template as ui.install renders it, without a platform."""
    from flightbase_server.service.pages import HubPages
    from flightbase_registry import ui

    pages = HubPages("registry", "/services/registry/", template_dirs=[ui.TEMPLATES], static_dir=ui.STATIC)
    data = {"api": "/services/registry/api/v1", "workspaces": workspaces, "workspace": selected,
            "user": identity.name, "image_uploads": image_uploads, "links": pages.links()}
    resp = pages.render(SimpleNamespace(cookies={}), identity, "registry.html", title="Datasets and images",
                        page="registry", page_data=data, workspaces=workspaces, selected=selected,
                        image_uploads=image_uploads)
    assert resp.status_code == 200
    return resp.body.decode()


@pytest.mark.parametrize(("identity", "workspaces", "image_uploads", "present", "absent"), [
    (Identity("ann", groups=frozenset({"vision"}), scopes=MEMBER), ["vision"], True,
     {"ws", "datasets", "images", "upload", "image-register", "archive-upload", "storage-card"},
     {"no-workspace", "archive-unavailable"}),
    # no OCI registry: archives cannot be uploaded, references can
    (Identity("ann", groups=frozenset({"vision"}), scopes=MEMBER), ["vision"], False,
     {"image-register", "archive-unavailable"}, {"archive-upload"}),
    # no workspace yet: a note, and nothing to act on
    (Identity("new", scopes=MEMBER), [], True, {"no-workspace"}, {"datasets", "upload", "storage-card"}),
])
def test_page_template(identity, workspaces, image_uploads, present, absent):
    from tests.hubnav.markup import elements

    html = _render(identity, workspaces, workspaces[0] if workspaces else None, image_uploads)
    ids = {e.attrs.get("id") for e in elements(html)}
    assert present <= ids and not (absent & ids), (present - ids, absent & ids)
    # the hub's frame: its stylesheet and scripts from the hub's static files (nothing from another site)
    assert "/hub/static/css/style.min.css?v=" in html and "/hub/static/js/darkmode.js?v=" in html
    assert "/services/registry/static/registry.js?v=" in html
    assert not re.search(r'(src|href)="(https?:)?//', html)


@contextmanager
def member_browser(platform, world, name: str):
    """A person with a password, a member of the world's workspace, logged in as a browser is."""
    password = "a-long-page-password-9"
    platform.sign_up(name, password)
    assert platform.api("jobqueue", "PUT", f"workspaces/{world.workspace}/members/{name}",
                        platform.admin_token).status_code == 200
    with browser(platform, name, password) as client:
        yield client


def _page(client, query: str = "") -> str:
    resp = client.get(f"/services/registry/{query}", headers={"Accept": "text/html"})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html"), resp.text[-2000:]
    return resp.text


@pytest.mark.slow
def test_page_for_a_member_offers_only_their_workspaces(platform, world):
    from tests.hubnav.markup import find, nav_menu

    with member_browser(platform, world, f"pg{world.workspace[-6:]}") as client:
        html = _page(client)
        assert [e.attrs["value"] for e in find(html, "option") if e.within(id="ws")] == [world.workspace]
        # asking for another workspace neither shows it nor names it back
        other = _page(client, f"?workspace={world.other_workspace}")
        assert world.other_workspace not in other
        assert [e.attrs["value"] for e in find(other, "option", selected="")] == [world.workspace]
        # the hub's look: its nav bar with the Flightbase entry, links to the dashboard, none to the admin page
        assert nav_menu(html, "Flightbase") == {"Dashboard": "/services/jobqueue/dashboard/",
                                                "Datasets and images": "/services/registry/"}
        links = {e.text: e.attrs["href"] for e in find(html, "a") if e.within(id="flightbase-links")}
        assert links == {"Dashboard": "/services/jobqueue/dashboard/", "Datasets and images": "/services/registry/"}
        assert find(html, "a", id="dashboard-link")[0].attrs["href"] == f"/services/jobqueue/dashboard/?workspace={world.workspace}"
        # the page's script, behind the same login
        src = [e.attrs["src"] for e in find(html, "script") if "registry.js" in e.attrs.get("src", "")]
        assert len(src) == 1 and src[0].startswith("/services/registry/static/registry.js?v="), src
        script = client.get(src[0])
        assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
        assert client.get("/services/registry/static/../app.py").status_code == 404
        # the token the page carries works for the member's own workspace
        token = PAGE_TOKEN.search(html).group(1)
        made = client.post(f"/services/registry/api/v1/workspaces/{world.workspace}/datasets",
                           json={"name": "from-member-page"}, headers={"X-XSRF-Token": token})
        assert made.status_code == 201, made.text
        hidden = client.get(f"/services/registry/api/v1/workspaces/{world.other_workspace}/datasets")
        assert hidden.status_code == 404, hidden.text
    with httpx.Client(base_url=platform.url, timeout=30) as anonymous:
        assert anonymous.get("/services/registry/static/registry.js").status_code in (302, 401, 403)


@pytest.mark.slow
def test_page_for_an_administrator(platform, world):
    from tests.hubnav.markup import find, nav_menu

    with browser(platform, "admin", platform.admin_password) as client:
        html = _page(client, f"?workspace={world.other_workspace}")
    offered = [e.attrs["value"] for e in find(html, "option") if e.within(id="ws")]
    assert {world.workspace, world.other_workspace} <= set(offered)
    assert [e.attrs["value"] for e in find(html, "option", selected="")] == [world.other_workspace]
    links = {e.text: e.attrs["href"] for e in find(html, "a") if e.within(id="flightbase-links")}
    assert links["Administration"] == "/services/jobqueue/admin/" and links["Accounts and groups"] == "/hub/admin"
    assert nav_menu(html, "Flightbase")["Administration"] == "/services/jobqueue/admin/"
    assert find(html, "button", id="archive-upload")  # this platform has an OCI registry

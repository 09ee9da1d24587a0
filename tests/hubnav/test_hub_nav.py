"""The hub's nav bar, on the real hub (tests.platform.harness): every hub page carries the
"Flightbase" entry of flightbase_server/hub/templates/page.html (c.JupyterHub.template_paths), its
links open Flightbase's pages, the two services are in the Services menu, and the hub's own
pages (home, token, its admin panel, its error pages) still render with the override."""

from __future__ import annotations

from contextlib import contextmanager

import httpx
import pytest

from tests.helpers.platforms import running_platform
from tests.hubnav.markup import find, nav_menu
from tests.platform.harness import form

pytestmark = pytest.mark.slow

MEMBER, MEMBER_PASSWORD = "navmember", "a-long-nav-password-5"
FLIGHTBASE = {"Dashboard": "/services/jobqueue/dashboard/", "Datasets and images": "/services/registry/"}
ADMINISTRATION = {"Administration": "/services/jobqueue/admin/"}
SERVICES = {"jobqueue": "/services/jobqueue/", "registry": "/services/registry/"}


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    with running_platform(tmp_path_factory, "hubnav") as p:
        p.sign_up(MEMBER, MEMBER_PASSWORD)
        resp = p.api("jobqueue", "POST", "workspaces", p.admin_token, json={"name": "navws"})
        assert resp.status_code == 201, resp.text
        assert p.api("jobqueue", "PUT", f"workspaces/navws/members/{MEMBER}", p.admin_token).status_code == 200
        yield p


@contextmanager
def browser(platform, who: str):
    """An httpx client logged in through the hub's login form, as a browser is."""
    password = platform.admin_password if who == "admin" else MEMBER_PASSWORD
    with httpx.Client(base_url=platform.url, follow_redirects=True, timeout=30) as client:
        form(client, "/hub/login", {"username": who, "password": password}).raise_for_status()
        yield client


def page(client: httpx.Client, path: str, status: int = 200) -> str:
    resp = client.get(path, headers={"Accept": "text/html"})
    assert resp.status_code == status, (path, resp.status_code, resp.text[-2000:])
    assert resp.headers["content-type"].startswith("text/html"), (path, resp.headers)
    return resp.text


@pytest.mark.parametrize("who", ["admin", MEMBER])
def test_home_has_the_flightbase_entry_and_the_services(platform, who):
    with browser(platform, who) as client:
        home = page(client, "/hub/home")
    expected = FLIGHTBASE | (ADMINISTRATION if who == "admin" else {})
    assert nav_menu(home, "Flightbase") == expected
    assert nav_menu(home, "Services") == SERVICES
    # the hub's own entries are still there, before Flightbase's
    nav = [e.text for e in find(home, "a", cls="nav-link") if e.within(id="thenavbar")]
    assert nav[:2] == ["Home", "Token"], nav
    assert ("Admin" in nav) is (who == "admin"), nav
    assert nav.index("Flightbase") > nav.index("Services"), nav


@pytest.mark.parametrize("who", ["admin", MEMBER])
def test_the_entries_open_flightbases_pages_in_the_same_look(platform, who):
    with browser(platform, who) as client:
        entries = nav_menu(page(client, "/hub/home"), "Flightbase") | nav_menu(page(client, "/hub/home"), "Services")
        for label, href in entries.items():
            html = page(client, href)
            # the service's page is in the hub's look: the same nav bar, the same entries, the hub's stylesheet
            assert nav_menu(html, "Flightbase") == FLIGHTBASE | (ADMINISTRATION if who == "admin" else {}), label
            assert nav_menu(html, "Services") == SERVICES, label
            assert find(html, "link", rel="stylesheet") and "/hub/static/css/style.min.css" in html, label
            assert find(html, "button", id="dark-theme-toggle"), label


def test_the_hubs_own_pages_still_render(platform):
    with browser(platform, "admin") as client:
        admin = page(client, "/hub/admin")
        assert find(admin, "div", id="react-admin-hook") and "js/admin-react.js" in admin
        assert nav_menu(admin, "Flightbase") == FLIGHTBASE | ADMINISTRATION
        token = page(client, "/hub/token")
        assert find(token, "form", id="request-token-form")
        assert nav_menu(token, "Flightbase") == FLIGHTBASE | ADMINISTRATION
        # the admin panel's API still answers it
        assert client.get("/hub/api/users", headers={"X-XSRFToken": client.cookies.get("_xsrf")}).status_code == 200
    with browser(platform, MEMBER) as client:
        # the hub's error pages (error.html, 404.html extend page.html) render with the entry too
        denied = page(client, "/hub/admin", status=403)
        assert nav_menu(denied, "Flightbase") == FLIGHTBASE
        missing = page(client, "/hub/no-such-page", status=404)
        assert nav_menu(missing, "Flightbase") == FLIGHTBASE


def test_logged_out_pages_have_no_flightbase_entry(platform):
    with httpx.Client(base_url=platform.url, follow_redirects=True, timeout=30) as anon:
        login = page(anon, "/hub/login")
    assert find(login, "form") and not find(login, "li", id="flightbase-nav")

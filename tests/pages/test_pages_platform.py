"""The jobqueue's pages on a real platform (tests.platform.harness: the hub, its proxy and both
services as processes; nothing mocked), read as a browser reads them, with httpx: the hub's
login form, then the hub's OAuth round trip to the service's cookie.

- ``/services/jobqueue/`` sends to ``dashboard/``; a browser without the cookie is sent through
  the hub's OAuth (its login form), an API client gets 401.
- The dashboard offers only the viewer's workspaces; another workspace asked for with
  ``?workspace=`` is not shown, and its data (``GET /api/v1/dashboard``) answers 404.
- ``admin/`` is a 403 page, in the hub's look, to a member; an administrator gets the page.
- The pages' scripts and Chart.js are served by the service, behind the same login.
- The figures the page draws (``GET /dashboard``, ``GET /admin/overview``) match the world.
- The page's XSRF token is what a cookie-authenticated change (``PUT /jobs/{id}/priority``) needs.
"""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.helpers.pages import HTML, JOBQUEUE, browser, person, require_chart_js
from tests.platform.world import wait_state

pytestmark = pytest.mark.slow

API = JOBQUEUE + "api/v1/"


def options(page: str) -> list[str]:
    """The workspace picker's choices."""
    select = re.search(r'<select[^>]*id="workspace".*?</select>', page, re.S)
    return re.findall(r'<option value="([^"]*)"', select.group(0)) if select else []


def page_data(page: str) -> dict:
    found = re.search(r'<script type="application/json" id="flightbase-data">(.*?)</script>', page, re.S)
    return json.loads(found.group(1))


@pytest.fixture(scope="module")
def member(platform, world):
    """A member of the world's workspace only, logged in as in a browser."""
    name, password = person(platform, world.workspace)
    client = browser(platform, name, password)
    try:
        client.get(JOBQUEUE, headers=HTML).raise_for_status()  # the OAuth round trip: the service's cookie
        yield name, client
    finally:
        client.close()


@pytest.fixture(scope="module")
def admin(platform):
    client = browser(platform, "admin", platform.admin_password)
    try:
        client.get(JOBQUEUE, headers=HTML).raise_for_status()
        yield client
    finally:
        client.close()


def test_home_sends_to_the_dashboard_and_strangers_to_the_hubs_login(platform):
    with httpx.Client(base_url=platform.url, timeout=30) as anon:
        resp = anon.get(JOBQUEUE, headers=HTML)
        assert resp.status_code == 302, resp.text
        target = urlsplit(resp.headers["location"])
        assert target.path == "/hub/api/oauth2/authorize"
        query = parse_qs(target.query)
        assert query["client_id"] == ["service-jobqueue"] and query["response_type"] == ["code"]
        assert query["redirect_uri"][0].endswith("/services/jobqueue/oauth_callback")
        login = anon.get(resp.headers["location"], follow_redirects=True)
        assert urlsplit(str(login.url)).path == "/hub/login" and 'name="username"' in login.text
        # an API client (no text/html) gets 401 JSON, never a redirect
        for path in (JOBQUEUE + "dashboard/", JOBQUEUE + "admin/", API + "dashboard?workspace=x",
                     JOBQUEUE + "static/pages.js"):
            resp = anon.get(path)
            assert resp.status_code == 401 and resp.json()["message"], (path, resp.text)


def test_login_through_the_hub_lands_on_the_dashboard(platform, world):
    name, password = person(platform, world.workspace)
    with httpx.Client(base_url=platform.url, follow_redirects=True, timeout=30) as client:
        first = client.get(JOBQUEUE, headers=HTML)  # no cookie yet: to the hub's login form
        assert urlsplit(str(first.url)).path == "/hub/login"
        resp = client.post(first.url, data={"username": name, "password": password,
                                            "_xsrf": client.cookies.get("_xsrf")}, headers=HTML)
        assert resp.status_code == 200, resp.text
        assert urlsplit(str(resp.url)).path == JOBQUEUE + "dashboard/"
        assert [h.status_code for h in resp.history][-1] == 302  # the home's redirect, after the callback
        assert page_data(resp.text)["user"] == name


def test_dashboard_offers_only_the_members_workspaces(platform, world, member):
    name, client = member
    resp = client.get(JOBQUEUE + "dashboard/", headers=HTML)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/html")
    assert options(resp.text) == [world.workspace]
    data = page_data(resp.text)
    assert data["workspace"] == world.workspace and data["workspaces"] == [world.workspace]
    assert data["api"] == "/services/jobqueue/api/v1" and data["user"] == name
    # the hub's look: its stylesheet, its nav bar with Flightbase's entry; no Administration for a member
    assert re.search(r'href="/hub/static/css/style\.min\.css\?v=[0-9a-f]{32}"', resp.text)
    assert 'id="flightbase-nav"' in resp.text and ">Administration<" not in resp.text
    assert world.other_workspace not in resp.text
    # another workspace by name: not offered, not shown; the member's own is
    for other in (world.other_workspace, "no-such-workspace"):
        resp = client.get(JOBQUEUE + "dashboard/", params={"workspace": other}, headers=HTML)
        assert resp.status_code == 200 and options(resp.text) == [world.workspace]
        assert page_data(resp.text)["workspace"] == world.workspace and other not in resp.text


def test_another_workspaces_dashboard_data_is_404(world, member):
    _, client = member
    for other in (world.other_workspace, "no-such-workspace"):
        resp = client.get(API + "dashboard", params={"workspace": other})
        assert resp.status_code == 404, resp.text
        assert resp.json()["message"] == f"workspace {other!r} not found"  # as for a workspace that is not there
    assert client.get(API + "dashboard", params={"workspace": world.workspace}).status_code == 200
    missing = client.get(API + "dashboard")
    assert missing.status_code == 422 and missing.json()["field"] == "workspace"


def test_admin_page_is_a_403_page_for_a_member(member):
    _, client = member
    resp = client.get(JOBQUEUE + "admin/", headers=HTML)
    assert resp.status_code == 403
    assert resp.headers["content-type"].startswith("text/html")
    assert "Forbidden" in resp.text and "administrators" in resp.text
    assert 'id="flightbase-nav"' in resp.text and 'id="jobs"' not in resp.text  # the hub's error page, no data
    assert client.get(API + "admin/overview").status_code == 403


def test_admin_page_and_every_workspace_for_an_administrator(world, admin):
    resp = admin.get(JOBQUEUE + "admin/", headers=HTML)
    assert resp.status_code == 200, resp.text
    assert 'id="jobs"' in resp.text and 'id="nodes"' in resp.text and "/hub/admin" in resp.text
    # the audit logs' retention (FLIGHTBASE_AUDIT_RETENTION_DAYS, not set here: the default)
    assert re.search(r'id="audit-retention">Both logs keep their rows\s+for 365 days', resp.text), resp.text
    assert re.search(r'src="/services/jobqueue/static/admin\.js\?v=[0-9a-f]{32}"', resp.text)
    offered = options(admin.get(JOBQUEUE + "dashboard/", headers=HTML).text)
    assert {world.workspace, world.other_workspace} <= set(offered) and offered == sorted(offered)


def test_scripts_and_chart_js_are_served_behind_the_login(platform, member):
    require_chart_js()
    _, client = member
    page = client.get(JOBQUEUE + "dashboard/", headers=HTML).text
    scripts = re.findall(r'<script src="(/services/jobqueue/static/[^"]+)"', page)
    assert {urlsplit(s).path.rsplit("/", 1)[1] for s in scripts} >= {"chart.umd.min.js", "charts.js", "pages.js",
                                                                       "dashboard.js"}, scripts
    for src in scripts:
        resp = client.get(src)
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/javascript"), src
    chart = client.get(JOBQUEUE + "static/vendor/chart.umd.min.js")
    assert b"Chart" in chart.content and len(chart.content) > 100_000
    assert "cdn" not in page.lower()  # nothing from another site
    assert client.get(JOBQUEUE + "static/no-such.js").status_code == 404
    assert client.get(JOBQUEUE + "static/%2e%2e/__init__.py").status_code == 404
    assert httpx.get(f"{platform.url}{JOBQUEUE}static/vendor/chart.umd.min.js").status_code == 401


def test_figures_match_the_world(platform, world, member, admin):
    """What the pages draw: the world's sleeping 1-GPU job against its quota of 4, its dataset and image."""
    owner = world.tokens["owner"]
    wait_state(platform, owner, f"jobs/{world.job_id}", ("running",))
    wait_state(platform, owner, f"trainings/{world.failed_training_id}", ("failed",))
    _, client = member
    d = client.get(API + "dashboard", params={"workspace": world.workspace}).json()
    assert d["workspace"] == world.workspace and d["gpu_kind"] == "cpu-slot"
    assert (d["gpus"]["in_use"], d["gpus"]["quota"], d["gpus"]["trainings"], d["gpus"]["percent"]) == (1, 4, 1, 25)
    assert d["gpus"]["cluster_total"] == 4
    job = platform.api("jobqueue", "GET", f"jobs/{world.job_id}", owner).json()
    [running] = d["running"]
    assert (running["job_id"], running["user"], running["gpus"], running["placement"]) == (
        world.job_id, world.names["owner"], 1, job["placement"])
    assert running["elapsed_seconds"] >= 0 and d["queue"] == []
    assert [(t["training_id"], t["outcome"]) for t in d["recent"]] == [(world.failed_training_id, "failed")]
    assert [x["name"] for x in d["datasets"]] == ["d"] and "img" in [x["name"] for x in d["images"]]
    assert d["storage"] is not None and d["registry_error"] is None
    assert d["window"]["state"] == "unlimited"

    overview = admin.get(API + "admin/overview").json()
    [node] = overview["nodes"]
    held = [s for s in node["slots"] if s["holder"] and s["holder"]["job_id"] == world.job_id]
    assert [s["index"] for s in held] == [g for gpus in job["placement"].values() for g in gpus]
    assert held[0]["holder"]["workspace"] == world.workspace and held[0]["since"] == job["started_at"]
    [row] = [w for w in overview["workspaces"] if w["name"] == world.workspace]
    assert (row["in_use"], row["quota"], row["queued"]) == (1, 4, 0) and row["members"] >= 4
    assert row["managers"] == [world.names["manager"]]
    people = {u["name"]: u["workspaces"] for u in overview["users"]}
    assert {"workspace": world.workspace, "manager": True} in people[world.names["manager"]]
    assert overview["registry_audit"]["available"] is True


def test_the_pages_xsrf_token_is_what_cookie_changes_need(platform, world, admin):
    admin.get(JOBQUEUE + "admin/", headers=HTML).raise_for_status()
    token = admin.cookies.get("flightbase-jobqueue-xsrf", path="/services/jobqueue/")
    assert token
    path = API + f"jobs/{world.job_id}/priority"
    refused = admin.put(path, json={"priority": 7})
    assert refused.status_code == 403 and refused.json()["field"] == "X-XSRF-Token"
    resp = admin.put(path, json={"priority": 7}, headers={"X-XSRF-Token": token})
    assert resp.status_code == 200 and resp.json()["priority"] == 7, resp.text
    assert platform.api("jobqueue", "GET", f"jobs/{world.job_id}", platform.admin_token).json()["priority"] == 7
    bad = admin.put(path, json={"priority": 1000}, headers={"X-XSRF-Token": token})
    assert bad.status_code == 422 and bad.json()["field"] == "priority"


def test_a_person_in_no_workspace_is_told_so(platform):
    name, password = person(platform, None)
    client = browser(platform, name, password)
    try:
        resp = client.get(JOBQUEUE + "dashboard/", headers=HTML)
        assert resp.status_code == 200 and 'id="no-workspace"' in resp.text and options(resp.text) == []
        assert page_data(resp.text)["workspace"] is None
    finally:
        client.close()

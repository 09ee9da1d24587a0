"""What the pages' tests share (tests/pages): the jobqueue's page paths, Chart.js being there, and
people who log in as a browser does, through the hub's login form."""

from __future__ import annotations

import itertools
from pathlib import Path

import httpx

from tests.platform.harness import form

JOBQUEUE = "/services/jobqueue/"
HTML = {"Accept": "text/html"}
_people = itertools.count()
CHART_JS = (Path(__file__).resolve().parents[2] / "services/jobqueue/flightbase_jobqueue/pages/static/vendor"
            / "chart.umd.min.js")


def require_chart_js() -> None:
    """The dashboards' Chart.js is copied from node_modules by the Makefile (make install / make test)."""
    assert CHART_JS.is_file(), f"{CHART_JS} is missing: `make install` copies it from node_modules/chart.js/dist/"


def person(platform, workspace: str | None, prefix: str = "pg") -> tuple[str, str]:
    """A person with a password (signed up and approved, as in the browser), a member of ``workspace``."""
    name, password = f"{prefix}{next(_people)}", "a-long-pages-password-5"
    platform.sign_up(name, password)
    if workspace:
        resp = platform.api("jobqueue", "PUT", f"workspaces/{workspace}/members/{name}", platform.admin_token)
        assert resp.status_code == 200, resp.text
    return name, password


def browser(platform, name: str, password: str) -> httpx.Client:
    """An HTTP client that logged in to the hub with the login form (it holds the hub's cookies)."""
    client = httpx.Client(base_url=platform.url, follow_redirects=True, timeout=30)
    form(client, "/hub/login", {"username": name, "password": password}).raise_for_status()
    return client

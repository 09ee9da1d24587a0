"""Logging in as a person does: sign-up, approval, login form, and OAuth into a service."""

from __future__ import annotations

import re
from contextlib import contextmanager

import httpx


def _form(client: httpx.Client, url: str, data: dict) -> httpx.Response:
    client.get(url)
    xsrf = client.cookies.get("_xsrf")
    return client.post(url, data={**data, "_xsrf": xsrf})


@contextmanager
def login(platform, username: str, password: str):
    with httpx.Client(base_url=platform.url, follow_redirects=True, timeout=30) as client:
        resp = _form(client, "/hub/login", {"username": username, "password": password})
        resp.raise_for_status()
        yield client


def _logged_in(client: httpx.Client) -> bool:
    # the hub answers its home page only to a logged-in browser; others are sent to /hub/login
    return client.get("/hub/home").url.path == "/hub/home"


def test_initial_admin_logs_in_with_bootstrapped_password(platform):
    with login(platform, "admin", platform.admin_password) as client:
        assert _logged_in(client)
        assert client.get("/hub/admin").status_code == 200


def test_wrong_password_is_refused(platform):
    with login(platform, "admin", "not-the-password") as client:
        assert not _logged_in(client)


def test_signup_needs_admin_approval(platform):
    name, password = "newcomer", "correct-horse-battery-9"
    with httpx.Client(base_url=platform.url, follow_redirects=True, timeout=30) as anon:
        resp = _form(anon, "/hub/signup", {"username": name, "signup_password": password, "signup_password_confirmation": password})
        assert resp.status_code == 200
    with login(platform, name, password) as client:
        assert not _logged_in(client), "a sign-up must not log in before approval"
    with login(platform, "admin", platform.admin_password) as admin:
        assert admin.get(f"/hub/authorize/{name}").status_code == 200
    with login(platform, name, password) as client:
        assert _logged_in(client)
        # a plain user is not an administrator
        assert client.get("/hub/admin").status_code == 403


def test_browser_reaches_a_service_through_hub_oauth(platform):
    """No token: the service sends the browser through the hub's OAuth and then answers."""
    with login(platform, "admin", platform.admin_password) as client:
        resp = client.get("/services/jobqueue/api/v1/info", headers={"Accept": "text/html"})
        assert resp.status_code == 200, resp.text
        assert resp.json()["user"] == "admin"
        # the redirect chain went through the hub's authorize endpoint
        assert any("/hub/api/oauth2/authorize" in str(r.url) for r in resp.history)
        # the browser session carries the person's rights: an administrator is one there too
        assert resp.json()["admin"] is True


def test_browser_session_has_the_members_rights(platform, world):
    """A member logged in through the browser sees their workspace's datasets in the
    registry (the service's login cookie carries their Flightbase scopes and groups)."""
    name, password = "browsing-member", "a-long-browser-pass-7"
    platform.hub("POST", f"users/{name}")
    with httpx.Client(base_url=platform.url, follow_redirects=True, timeout=30) as anon:
        _form(anon, "/hub/signup", {"username": name, "signup_password": password, "signup_password_confirmation": password})
    with login(platform, "admin", platform.admin_password) as admin:
        admin.get(f"/hub/authorize/{name}")
    platform.api("jobqueue", "PUT", f"workspaces/{world.workspace}/members/{name}", platform.admin_token)
    with login(platform, name, password) as client:
        resp = client.get(f"/services/registry/api/v1/workspaces/{world.workspace}/datasets", headers={"Accept": "text/html"})
        assert resp.status_code == 200, resp.text
        assert [d["name"] for d in resp.json()] == [world.dataset]
        other = client.get(f"/services/registry/api/v1/workspaces/{world.other_workspace}/datasets", headers={"Accept": "text/html"})
        assert other.status_code == 404


def test_anonymous_browser_is_sent_to_login(platform):
    with httpx.Client(base_url=platform.url, follow_redirects=True, timeout=30) as anon:
        resp = anon.get("/services/registry/api/v1/workspaces/x/datasets", headers={"Accept": "text/html"})
        assert resp.url.path == "/hub/login"
        assert re.search(r'name="password"', resp.text)

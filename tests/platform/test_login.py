"""Logging in as a person does: sign-up, approval, login form, and OAuth into a service."""

from __future__ import annotations

import html
import re

import httpx
import pytest

from tests.helpers.hub_login import login
from tests.platform.harness import form as _form

pytestmark = pytest.mark.slow


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


# -- finding 7: the lockout covers accounts awaiting approval --------------------------------------------

ALLOWED_FAILED_LOGINS = 5  # c.NativeAuthenticator.allowed_failed_logins, set in flightbase_server/hub/config.py
INVALID = "Invalid username or password."


def _sign_up_only(platform, name: str, password: str) -> None:
    """A sign-up that no administrator has approved yet."""
    with httpx.Client(base_url=platform.url, follow_redirects=True, timeout=30) as anon:
        resp = _form(anon, "/hub/signup", {"username": name, "signup_password": password,
                                           "signup_password_confirmation": password})
        assert resp.status_code == 200 and "sent to the admin" in resp.text, resp.text


def _login_error(platform, username: str, password: str) -> str:
    """The message the login page answers (and that it did not log in)."""
    with httpx.Client(base_url=platform.url, follow_redirects=True, timeout=30) as client:
        resp = _form(client, "/hub/login", {"username": username, "password": password})
        assert resp.status_code == 200, resp.text
        assert not _logged_in(client)
    found = re.search(r'<p class="login_error">\s*(.*?)\s*</p>', resp.text, re.S)
    return html.unescape(found.group(1)) if found else ""


def test_finding7_unapproved_account_password_guessing_is_locked_out(platform):
    name, password = "guessed-newcomer", "correct-horse-battery-7"
    _sign_up_only(platform, name, password)
    not_yet = f"User {name} has not been authorized by an administrator yet."
    assert _login_error(platform, name, password) == not_yet  # told apart for the correct password only

    answers = [_login_error(platform, name, f"guess-number-{i}") for i in range(ALLOWED_FAILED_LOGINS + 1)]
    assert answers[:ALLOWED_FAILED_LOGINS - 1] == [INVALID] * (ALLOWED_FAILED_LOGINS - 1)
    locked = re.compile(rf"Too many failed attempts to sign in as {name}: try again in (9|10) minutes\.")
    assert all(locked.fullmatch(a) for a in answers[ALLOWED_FAILED_LOGINS - 1:]), answers

    # guessing is cut off: the correct password is not even checked now
    answer = _login_error(platform, name, password)
    assert locked.fullmatch(answer), answer
    assert "has not been authorized" not in answer


def test_finding7_wrong_passwords_get_the_same_answer_approved_or_not(platform):
    """An account awaiting approval cannot be told apart by a wrong password, nor once locked out."""
    waiting, approved, password = "waiting-person", "approved-person", "another-long-pass-7"
    _sign_up_only(platform, waiting, password)
    platform.sign_up(approved, password)
    for name in (waiting, approved, "nobody-by-this-name"):
        assert _login_error(platform, name, "wrong-password") == INVALID

    for name in (waiting, approved):
        for i in range(ALLOWED_FAILED_LOGINS):  # one wrong password was sent above already
            _login_error(platform, name, f"wrong-{i}")
    answers = {name: _login_error(platform, name, password) for name in (waiting, approved)}
    assert answers[waiting].replace(waiting, "NAME") == answers[approved].replace(approved, "NAME"), answers
    assert answers[approved].startswith(f"Too many failed attempts to sign in as {approved}: try again in"), answers

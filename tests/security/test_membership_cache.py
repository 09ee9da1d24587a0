"""A member removed from a workspace is refused from their next request on.

The services keep the hub's answer to "whose token is this" (the user's groups, i.e. their
workspaces) for ``FLIGHTBASE_AUTH_CACHE_SECONDS`` (30 s by default; the other platform tests
set 0). A member removed through the jobqueue's API used to keep reading and submitting to
the workspace until that answer expired, and its datasets and images as long. Here caching is
on, as in production: the removal, and an addition, through the jobqueue apply at once there,
and within the 5 s the registry keeps answers; a change made at the hub itself is seen within
the 5 s the services keep a workspace's members.
A real platform: the hub, its proxy and the jobqueue.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import browser
from tests.helpers.platforms import platform_fixture, workspace_member

pytestmark = pytest.mark.slow

platform = platform_fixture("membership-cache", gpus="2", extra_env={"FLIGHTBASE_AUTH_CACHE_SECONDS": "30"})


def trainings(platform, token: str, workspace: str) -> int:
    return platform.api("jobqueue", "GET", "trainings", token, params={"workspace": workspace}).status_code


def test_a_member_removed_through_the_jobqueue_is_refused_at_once_and_one_added_let_in(platform):
    admin = platform.admin_token
    ws, token = workspace_member(platform, "cached", "cachebob", gpu_quota=1)
    assert trainings(platform, token, ws) == 200  # the hub's answer (a member) is now cached
    assert platform.api("registry", "GET", f"workspaces/{ws}/images", token).status_code == 200  # here too

    gone = platform.api("jobqueue", "DELETE", f"workspaces/{ws}/members/cachebob", admin)
    assert gone.status_code == 200 and "cachebob" not in gone.json()["members"]
    assert trainings(platform, token, ws) == 404  # as for anyone outside it: not even its existence
    submit = platform.api("jobqueue", "POST", "trainings", token,
                          json={"workspace": ws, "name": "late", "entrypoint": "python -c pass"})
    assert submit.status_code in (403, 404), submit.text

    # the registry (datasets, images) keeps answers at most 5 s: refused well before the 30 s
    deadline = time.monotonic() + 15
    while platform.api("registry", "GET", f"workspaces/{ws}/images", token).status_code == 200:
        assert time.monotonic() < deadline, "the registry still let a removed member in after 15 s"
        time.sleep(0.5)
    assert platform.api("registry", "GET", f"workspaces/{ws}/images", token).status_code in (403, 404)

    back = platform.api("jobqueue", "PUT", f"workspaces/{ws}/members/cachebob", admin)
    assert back.status_code == 200
    assert trainings(platform, token, ws) == 200  # the cached "not a member" is gone as well


def refused_within(platform, token: str, ws: str, seconds: float) -> float:
    """Seconds until both services refuse ``token`` in ``ws`` (404 or 403); fails after ``seconds``."""
    start = time.monotonic()
    while (trainings(platform, token, ws) == 200
           or platform.api("registry", "GET", f"workspaces/{ws}/images", token).status_code == 200):
        assert time.monotonic() - start < seconds, f"a removed member was still let in after {seconds} s"
        time.sleep(0.5)
    assert trainings(platform, token, ws) == 404
    assert platform.api("registry", "GET", f"workspaces/{ws}/images", token).status_code in (403, 404)
    return time.monotonic() - start


def admitted_within(platform, token: str, ws: str, seconds: float) -> None:
    """Wait until both services let ``token`` in ``ws``; fails after ``seconds``."""
    start = time.monotonic()
    while (trainings(platform, token, ws) != 200
           or platform.api("registry", "GET", f"workspaces/{ws}/images", token).status_code != 200):
        assert time.monotonic() - start < seconds, f"a member added was still refused after {seconds} s"
        time.sleep(0.5)


def test_a_change_made_at_the_hub_itself_is_seen_within_seconds(platform):
    """A removal made at the hub's own API (or its admin panel), which the services do not hear
    of, is seen when they next read the group, at most 5 s later (authz.is_member), not when the
    token's cached lookup expires (30 s here); an addition likewise. The token's lookup is
    still cached, which is what makes this mean anything: a token revoked at the hub is
    accepted until the cached answer expires, as with JupyterHub's HubAuth (README,
    FLIGHTBASE_AUTH_CACHE_SECONDS)."""
    ws, token = workspace_member(platform, "hubside", "cachecarol", gpu_quota=1)
    assert trainings(platform, token, ws) == 200
    assert platform.api("registry", "GET", f"workspaces/{ws}/images", token).status_code == 200

    assert platform.hub("DELETE", f"groups/{ws}/users", json={"users": ["cachecarol"]}).status_code == 200
    refused_within(platform, token, ws, 15)
    listed = platform.api("jobqueue", "GET", "workspaces", token).json()
    assert ws not in [w["name"] for w in listed]

    assert platform.hub("POST", f"groups/{ws}/users", json={"users": ["cachecarol"]}).status_code == 200
    admitted_within(platform, token, ws, 15)

    # the premise: the token's lookup is cached (for 30 s): revoked at the hub, it still works a while
    listed = platform.hub("GET", "users/cachecarol/tokens").json()
    ids = [t["id"] for t in listed.get("api_tokens", listed if isinstance(listed, list) else [])]
    assert ids
    for token_id in ids:
        assert platform.hub("DELETE", f"users/cachecarol/tokens/{token_id}").status_code == 204
    assert trainings(platform, token, ws) == 200


def admin_panel(platform, ws: str, user: str, action: str) -> list[str]:
    """``action`` (remove | add) ``user`` in ``ws``'s group in the hub's admin panel, in
    Debian's Chromium (admin_panel_members.mjs); the members the page showed before Apply."""
    env = {**os.environ, "BASE": platform.url, "FB_PASSWORD": platform.admin_password, "FB_WORKSPACE": ws,
           "FB_USER": user, "FB_ACTION": action, "CHROMIUM": browser.chromium()}
    proc = subprocess.run(["node", str(Path(__file__).with_name("admin_panel_members.mjs"))],
                          cwd=Path(__file__).resolve().parents[2], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}\n--- platform log\n{platform.log_tail()}"
    line = next(x for x in proc.stdout.splitlines() if x.startswith("members: "))
    return json.loads(line[len("members: "):])


def test_a_member_removed_in_the_hubs_admin_panel_is_refused_within_seconds(platform):
    """What an administrator does: in the hub's admin panel (Groups, the workspace's group,
    deselect the member, Apply), not through our API. Both services refuse the member within
    seconds though their token's lookup is cached 30 s; adding them back in the panel lets
    them in again. A real hub, its admin panel in Chromium, the jobqueue and the registry."""
    ws, token = workspace_member(platform, "panelws", "paneldave", gpu_quota=1)
    assert trainings(platform, token, ws) == 200
    assert platform.api("registry", "GET", f"workspaces/{ws}/images", token).status_code == 200

    assert admin_panel(platform, ws, "paneldave", "remove") == []
    assert platform.hub("GET", f"groups/{ws}").json()["users"] == []  # the panel did change the group
    refused_within(platform, token, ws, 15)

    assert admin_panel(platform, ws, "paneldave", "add") == ["paneldave"]
    admitted_within(platform, token, ws, 15)

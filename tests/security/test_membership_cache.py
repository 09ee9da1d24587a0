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

import time

import pytest

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
    deadline = time.monotonic() + 15
    while trainings(platform, token, ws) != 200:
        assert time.monotonic() < deadline, "a member added at the hub was still refused after 15 s"
        time.sleep(0.5)

    # the premise: the token's lookup is cached (for 30 s): revoked at the hub, it still works a while
    listed = platform.hub("GET", "users/cachecarol/tokens").json()
    ids = [t["id"] for t in listed.get("api_tokens", listed if isinstance(listed, list) else [])]
    assert ids
    for token_id in ids:
        assert platform.hub("DELETE", f"users/cachecarol/tokens/{token_id}").status_code == 204
    assert trainings(platform, token, ws) == 200

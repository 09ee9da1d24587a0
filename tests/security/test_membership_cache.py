"""A member removed from a workspace is refused from their next request on.

The services keep the hub's answer to "whose token is this" (the user's groups, i.e. their
workspaces) for ``FLIGHTBASE_AUTH_CACHE_SECONDS`` (30 s by default; the other platform tests
set 0). A member removed through the jobqueue's API used to keep reading and submitting to
the workspace until that answer expired, and its datasets and images as long. Here caching is
on, as in production: the removal, and an addition, through the jobqueue apply at once there,
and within the 5 s the registry keeps answers; a change made at the hub itself is seen when
the cached answer expires (checked too: it is what makes the first check mean anything).
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


def test_a_change_made_at_the_hub_itself_waits_for_the_cached_answer(platform):
    """The premise of the test above: answers are cached. A removal made at the hub's own API
    (not through the jobqueue, which therefore cannot know of it) is seen only when the cached
    answer expires, as with JupyterHub's HubAuth (README, FLIGHTBASE_AUTH_CACHE_SECONDS)."""
    ws, token = workspace_member(platform, "hubside", "cachecarol", gpu_quota=1)
    assert trainings(platform, token, ws) == 200
    assert platform.hub("DELETE", f"groups/{ws}/users", json={"users": ["cachecarol"]}).status_code == 200
    assert trainings(platform, token, ws) == 200  # within the 30 s the answer is kept

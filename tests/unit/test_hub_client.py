"""The services' hub client: workspace lookups under load (flightbase_server/service/hub.py).

The hub is a small HTTP server on loopback that answers ``GET /groups/<name>``
slowly (so that requests overlap) and counts what it is asked; the client is the
real ``HubClient`` over real HTTP. (The whole path through the real hub is
covered by the platform tests, e.g. tests/platform/test_trainings.py.)
"""

from __future__ import annotations

import asyncio

import pytest

from flightbase_server.service.hub import HubClient
from tests.helpers.loopback import JsonServer


class SlowHub(JsonServer):
    """``GET /groups/<name>``: the group (members ``members``) after ``delay`` seconds, 404 for
    ``missing``; ``asked`` lists the paths of the requests."""

    def __init__(self, delay: float = 0.2):
        self.members = ["ann"]
        super().__init__(self.group, delay)
        self.url += "/hub/api"

    def group(self, path: str):
        name = path.rsplit("/", 1)[-1]
        return None if name == "missing" else {"name": name, "users": list(self.members), "properties": {}}

    @property
    def asked(self) -> list[str]:
        return self.paths


@pytest.fixture
def hub():
    server = SlowHub()
    yield server
    server.close()


def test_concurrent_lookups_of_one_workspace_ask_the_hub_once(hub):
    """Fifty requests that need the same workspace while it is not cached wait for one lookup."""

    async def run():
        client = HubClient(hub.url, "service-token", cache_seconds=30)
        try:
            found = await asyncio.gather(*(client.workspace("bench") for _ in range(50)))
            again = await client.workspace("bench")  # cached now
            other = await asyncio.gather(client.workspace("other"), client.workspace("missing"))
        finally:
            await client.close()
        return found, again, other

    found, again, (other, missing) = asyncio.run(run())
    assert {ws.name for ws in found} == {"bench"} and all(ws.members == ("ann",) for ws in found)
    assert again.name == "bench"
    assert other.name == "other" and missing is None
    assert sorted(hub.asked) == ["/hub/api/groups/bench", "/hub/api/groups/missing", "/hub/api/groups/other"]


def test_a_change_made_during_a_lookup_is_not_hidden_by_it(hub):
    """A lookup that began before this service changed the workspace (invalidate) is not cached:
    the next caller asks the hub again and sees the change."""

    async def run():
        client = HubClient(hub.url, "service-token", cache_seconds=30)
        try:
            early = asyncio.ensure_future(client.workspace("bench"))
            await asyncio.sleep(0.05)  # the lookup is in flight
            hub.members = ["ann", "bob"]
            client.invalidate()  # what add_member does after the hub answered
            after = await client.workspace("bench")
            await early
            cached = await client.workspace("bench")
        finally:
            await client.close()
        return after, cached

    after, cached = asyncio.run(run())
    assert after.members == ("ann", "bob")
    assert cached.members == ("ann", "bob")
    assert len(hub.asked) == 2


def test_a_failed_lookup_fails_its_waiters_and_is_not_cached(hub):
    async def run():
        client = HubClient(hub.url.replace(str(hub.server.server_port), "1"), "service-token", cache_seconds=30)
        try:
            results = await asyncio.gather(*(client.workspace("bench") for _ in range(5)), return_exceptions=True)
            assert not client._fetching  # nothing left in flight: the next caller asks again
        finally:
            await client.close()
        return results

    results = asyncio.run(run())
    assert len(results) == 5 and all(isinstance(r, Exception) for r in results)

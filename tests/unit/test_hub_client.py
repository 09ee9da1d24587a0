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


class ListingHub(JsonServer):
    """The hub's ``GET /groups`` (paginated, ``page`` groups a page) and ``GET /groups/<name>``,
    over ``count`` groups ws-00 .. ws-NN."""

    def __init__(self, count: int, page: int = 200):
        self.count, self.page = count, page
        super().__init__(self.answer)
        self.url += "/hub/api"

    def model(self, name: str) -> dict:
        return {"name": name, "users": ["ann"], "properties": {}}

    def answer(self, path: str):
        from urllib.parse import parse_qs, urlparse

        url = urlparse(path)
        names = [f"ws-{i:02d}" for i in range(self.count)]
        if url.path.endswith("/groups"):
            q = parse_qs(url.query)
            offset, limit = int(q["offset"][0]), min(int(q["limit"][0]), self.page)
            items = [self.model(n) for n in names[offset:offset + limit]]
            more = offset + limit < len(names)
            return {"items": items, "_pagination": {"next": {"offset": offset + limit} if more else None}}
        name = url.path.rsplit("/", 1)[-1]
        return self.model(name) if name in names else None

    def listings(self) -> int:
        return sum(1 for p in self.paths if p.split("?")[0].endswith("/groups"))

    def by_name(self) -> int:
        return sum(1 for p in self.paths if "/groups/" in p)


def test_many_workspaces_in_use_are_read_again_with_one_listing():
    """Ten workspaces in use: once their cached copies expire, the first lookup reads the hub's
    listing and the other nine are answered from it, not asked for one by one; a name that is
    no group is still None."""
    hub = ListingHub(12)

    async def run():
        client = HubClient(hub.url, "service-token", cache_seconds=0.5)
        try:
            names = [f"ws-{i:02d}" for i in range(10)]
            first = [await client.workspace(n) for n in names]  # looked up by name while few are in use
            asked_first = (hub.by_name(), hub.listings())
            await asyncio.sleep(0.6)  # every cached copy has expired
            again = [await client.workspace(n) for n in names]
            missing = await client.workspace("nope")
            return first, asked_first, again, missing
        finally:
            await client.close()

    try:
        first, asked_first, again, missing = asyncio.run(run())
    finally:
        hub.close()
    assert [ws.name for ws in first] == [ws.name for ws in again] == [f"ws-{i:02d}" for i in range(10)]
    assert missing is None
    # the first seven by name; from the eighth name on, one listing read them all
    assert asked_first == (7, 1)
    # after the expiry one listing for the ten, and one for the name not cached ("nope")
    assert hub.listings() == 3 and hub.by_name() == 7


def test_a_hub_with_many_more_groups_than_in_use_is_asked_by_name():
    """Eight workspaces in use on a hub of 40 groups listed 4 to a page (ten pages): one
    listing is learnt from, then expired workspaces are asked for by name, since the listing
    would take more requests than it saves."""
    hub = ListingHub(40, page=4)

    async def run():
        client = HubClient(hub.url, "service-token", cache_seconds=0.5)
        try:
            names = [f"ws-{i:02d}" for i in range(8)]
            for n in names:
                await client.workspace(n)
            pages = hub.listings()
            await asyncio.sleep(0.6)
            again = [await client.workspace(n) for n in names]
            return pages, again
        finally:
            await client.close()

    try:
        pages, again = asyncio.run(run())
    finally:
        hub.close()
    assert pages == 10  # the one listing, all ten pages of it
    assert [ws.name for ws in again] == [f"ws-{i:02d}" for i in range(8)]
    assert hub.listings() == 10 and hub.by_name() == 7 + 8

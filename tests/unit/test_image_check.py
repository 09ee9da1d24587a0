"""The jobqueue's check of a submission's image against the registry's listing
(``api/trainings.require_image`` and ``datasets.DatasetClient``).

The registry is a small HTTP server on loopback that answers the images listing and
counts what it is asked (the whole path through the real registry is covered by the
platform tests, e.g. tests/platform/test_trainings.py and tests/registry); the client
is the real ``DatasetClient`` over real HTTP.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from flightbase_server.service.errors import ApiError
from flightbase_server.service.hub import Workspace
from flightbase_jobqueue.api.trainings import require_image
from flightbase_jobqueue.datasets import DatasetClient
from tests.helpers.loopback import JsonServer

BUILTIN = [{"name": "flightbase/pytorch", "reference": "registry:5000/flightbase/pytorch:1", "workspace": None}]


class Registry(JsonServer):
    """``GET .../workspaces/<ws>/images``: the built-in image and the workspace's own, after
    ``delay`` seconds (so that concurrent requests overlap)."""

    def __init__(self, delay: float = 0.0):
        self.own = {"a": [{"name": "a-img", "reference": "registry:5000/ws/a/a-img:1", "workspace": "a"}],
                    "b": [{"name": "b-img", "reference": "registry:5000/ws/b/b-img:1", "workspace": "b"}]}
        super().__init__(self.answer, delay)

    def answer(self, path: str):
        ws = path.split("/workspaces/", 1)[1].split("/", 1)[0]
        return [*BUILTIN, *self.own.get(ws, [])]

    def asked(self, ws: str) -> int:
        return sum(1 for p in self.paths if f"/workspaces/{ws}/images" in p)


@pytest.fixture
def registry():
    server = Registry()
    yield server
    server.close()


def ws(name: str) -> Workspace:
    return Workspace.from_group({"name": name, "users": ["ann"], "properties": {}})


def test_a_builtin_image_needs_no_listing_of_each_workspace(registry):
    """Once one workspace's listing is read, a built-in image is accepted in any workspace
    without asking the registry again; a workspace's own image is still checked against its own
    listing, and another workspace's image is refused there."""
    clock = [1000.0]

    async def run():
        client = DatasetClient(registry.url, "service-token", clock=lambda: clock[0])
        request = SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(datasets=client)))
        try:
            out = {"a": await require_image(request, ws("a"), "a-img")}
            out["builtin in b"] = await require_image(request, ws("b"), "flightbase/pytorch")
            out["builtin by reference in c"] = await require_image(
                request, ws("c"), "registry:5000/flightbase/pytorch:1")
            asked = {w: registry.asked(w) for w in "abc"}
            with pytest.raises(ApiError) as refused:
                await require_image(request, ws("b"), "a-img")
            clock[0] += 11  # past IMAGES_TTL_SECONDS: what was read is not trusted any more
            out["builtin after expiry"] = await require_image(request, ws("c"), "flightbase/pytorch")
            return out, asked, refused.value
        finally:
            await client.close()

    out, asked, refused = asyncio.run(run())
    assert out["a"] == "registry:5000/ws/a/a-img:1"
    assert out["builtin in b"] == out["builtin by reference in c"] == out["builtin after expiry"] \
        == "registry:5000/flightbase/pytorch:1"
    assert asked == {"a": 1, "b": 0, "c": 0}  # the built-in image in b and c: no request
    assert refused.status == 422 and refused.field == "image"
    # b's own listing was read (twice: cached, then fresh) to refuse a's image; c's after expiry
    assert registry.asked("b") == 2 and registry.asked("c") == 1


def test_submissions_of_many_workspaces_wait_for_one_listing_when_the_builtins_expire():
    """Thirty workspaces submit a built-in image at once with nothing cached: one listing is
    asked for and brings the built-in images to all thirty; an own image of one of them is
    then checked with that workspace's own listing."""
    registry = Registry(delay=0.2)

    async def run():
        client = DatasetClient(registry.url, "service-token")
        request = SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(datasets=client)))
        try:
            found = await asyncio.gather(*(require_image(request, ws(f"w{i:02d}"), "flightbase/pytorch")
                                           for i in range(30)))
            listings = len(registry.paths)
            own = await require_image(request, ws("b"), "b-img")
            return found, listings, own
        finally:
            await client.close()

    try:
        found, listings, own = asyncio.run(run())
    finally:
        registry.close()
    assert set(found) == {"registry:5000/flightbase/pytorch:1"} and len(found) == 30
    assert listings == 1
    assert own == "registry:5000/ws/b/b-img:1" and registry.asked("b") == 1

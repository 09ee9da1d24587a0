import pytest

from tests.helpers.platforms import platform_fixture

from .world import fresh_world

# One running platform shared by the tests of this folder.
platform = platform_fixture("platform", scope="session")


@pytest.fixture
def world(platform):
    """A fresh workspace with its people, a live and a failed training, a dataset and an image."""
    with fresh_world(platform) as w:
        yield w


@pytest.fixture(scope="module")
def shared_world(platform):
    """One world for tests that only read."""
    with fresh_world(platform) as w:
        yield w

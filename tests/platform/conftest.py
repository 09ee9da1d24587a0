import pytest

from .harness import new_platform
from .world import fresh_world


@pytest.fixture(scope="session")
def platform(tmp_path_factory):
    """One running platform shared by the tests of this folder."""
    p = new_platform(tmp_path_factory.mktemp("platform")).start()
    yield p
    p.remove()


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

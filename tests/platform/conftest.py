import pytest

from .harness import new_platform


@pytest.fixture(scope="session")
def platform(tmp_path_factory):
    """One running platform shared by the tests of this folder."""
    p = new_platform(tmp_path_factory.mktemp("platform")).start()
    yield p
    p.stop()

"""Fixtures of the pages' tests: a real platform (tests.platform.harness) for this folder, and a
world on it (what the tests share otherwise is in tests/helpers/pages.py)."""

from __future__ import annotations

import pytest

from tests.platform.harness import new_platform
from tests.platform.world import fresh_world


@pytest.fixture(scope="session")
def platform(tmp_path_factory):
    """One running platform (4 CPU slots) shared by the tests of this folder."""
    p = new_platform(tmp_path_factory.mktemp("platform"), gpus="4").start()
    yield p
    p.remove()


@pytest.fixture(scope="module")
def world(platform):
    """A workspace with its people, a live and a failed training, a dataset and an image
    (tests/platform/world.py), and another workspace the member is not in."""
    with fresh_world(platform) as w:
        yield w

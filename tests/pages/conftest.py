"""Fixtures of the pages' tests: a real platform (tests.platform.harness) for this folder, and a
world on it (what the tests share otherwise is in tests/helpers/pages.py)."""

from __future__ import annotations

import pytest

from tests.helpers.platforms import platform_fixture
from tests.platform.world import fresh_world

# One running platform (4 CPU slots) shared by the tests of this folder.
platform = platform_fixture("platform", scope="session", gpus="4")


@pytest.fixture(scope="module")
def world(platform):
    """A workspace with its people, a live and a failed training, a dataset and an image
    (tests/platform/world.py), and another workspace the member is not in."""
    with fresh_world(platform) as w:
        yield w

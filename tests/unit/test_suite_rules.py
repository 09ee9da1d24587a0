"""The suite's own rule: a test that starts the platform carries the ``slow`` marker.

tests/conftest.py records the running test; tests/platform/harness.py calls
``running.require_slow`` before it starts anything. These tests use the real
items pytest is running (no stand-in): this module is not marked slow, so the
first must be refused and the second, marked, must pass.
"""

from __future__ import annotations

import pytest

from tests.helpers import running


def test_a_test_without_the_slow_marker_may_not_start_the_platform():
    assert running.current is not None and running.current.nodeid.endswith(
        "test_a_test_without_the_slow_marker_may_not_start_the_platform")
    with pytest.raises(RuntimeError, match=r"test_suite_rules\.py::.* starts the platform but is not marked slow"):
        running.require_slow("starts the platform")


@pytest.mark.slow
def test_a_slow_test_may():
    running.require_slow("starts the platform")
    assert running.current.get_closest_marker("slow") is not None

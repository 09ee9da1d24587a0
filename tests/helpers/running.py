"""The test pytest is running now, for helpers that check the suite's own rules.

``tests/conftest.py`` sets ``current`` around each test's setup, call and
teardown (module and session fixtures are set up inside the first test's
setup, so a fixture that starts the platform sees the test that needed it).
Outside pytest (the benchmarks use the same harness) it stays ``None``.
"""

from __future__ import annotations

current = None  # the pytest.Item being run, or None


def require_slow(what: str) -> None:
    """Refuse ``what`` (e.g. "starts the platform") in a test without the ``slow`` marker.

    ``pytest -m "not slow"`` must run only tests that start no platform
    process (pyproject.toml's marker); a suite that forgets the marker fails
    here, at the start of its first test, instead of slowing the quick run.
    """
    item = current
    if item is not None and item.get_closest_marker("slow") is None:
        raise RuntimeError(f"{item.nodeid} {what} but is not marked slow: "
                           "add `pytestmark = pytest.mark.slow` to its module")

"""Suite-wide hooks: each test is known to tests/helpers/running.py while it runs."""

from __future__ import annotations

import pytest

from tests.helpers import running


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    running.current = item


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item):
    running.current = item


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item, nextitem):
    running.current = None

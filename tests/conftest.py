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


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server for the whole run (tests/platform/postgres.py), or a skip saying why not."""
    from tests.platform.postgres import PostgresServer

    try:
        server = PostgresServer().start()
    except (RuntimeError, OSError) as exc:
        pytest.skip(f"no PostgreSQL server here: {exc}")
    yield server
    server.stop()

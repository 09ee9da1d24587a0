"""Suite-wide hooks: each test is known to tests/helpers/running.py while it runs, and leaves
the process's umask as it found it."""

from __future__ import annotations

import os

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


@pytest.fixture(autouse=True)
def _umask_kept():
    """``flightbase_server.platform.prepare`` sets the process's umask to 077 (the platform's
    files are its own), and tests call it in-process. Left so, every file a later test writes
    is its owner's alone: an image's build context then digests the same whatever its modes
    (tests/containers/test_images.py) and a container's uid cannot read a mounted script
    (tests/kubernetes/test_nccl_pods.py), which failed whenever such a test ran after one of
    those."""
    old = os.umask(0o022)
    os.umask(old)
    yield
    os.umask(old)


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

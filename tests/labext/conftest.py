"""Fixtures of the JupyterLab extension's tests: a real platform, and pytest-jupyter's
Jupyter server (``jp_fetch``) with the Flightbase server extension loaded."""

from __future__ import annotations

import pytest

pytest.importorskip("pytest_jupyter", reason="pytest-jupyter is installed with flightbase_labext[test] (make install)")
pytest.importorskip("flightbase_labext", reason="the extension is installed by make install ($(VENV)/.labext-installed)")

from pytest_jupyter.jupyter_server import *  # noqa: E402,F401,F403 (jp_fetch, jp_serverapp...)

from tests.helpers.platforms import platform_fixture  # noqa: E402

# A running platform with 4 CPU slots, for each module.
platform = platform_fixture("platform", gpus="4")


@pytest.fixture
def jp_server_config():
    return {"ServerApp": {"jpserver_extensions": {"flightbase_labext": True}}}

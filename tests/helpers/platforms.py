"""A suite's platform and a member of a workspace of its own on it (tests/platform/harness.py), as
fixtures a test module or a conftest.py names once: ``platform = platform_fixture("comms", gpus="4")``;
and :func:`running_platform` for a fixture or a test that does more around its platform."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import pytest


@contextmanager
def running_platform(tmp_path_factory, name: str, **options) -> Iterator:
    """A real platform (``new_platform(..., **options).start()``) in a fresh folder named
    ``name``, removed afterwards: also when it fails to start, or when the code around the
    ``yield`` (a fixture's set-up, a test) raises, so that no process or data folder is left."""
    from tests.platform.harness import new_platform

    p = new_platform(tmp_path_factory.mktemp(name), **options)
    try:
        yield p.start()
    finally:
        p.remove()


def workspace_member(platform, workspace: str, user: str, gpu_quota: int) -> tuple[str, str]:
    """Make ``workspace`` (with ``gpu_quota``) and ``user`` a member of it: ``(workspace, token)``."""
    admin = platform.admin_token
    resp = platform.api("jobqueue", "POST", "workspaces", admin,
                        json={"name": workspace, "settings": {"gpu_quota": gpu_quota}})
    assert resp.status_code == 201, resp.text
    token = platform.create_user(user)
    assert platform.api("jobqueue", "PUT", f"workspaces/{workspace}/members/{user}", admin).status_code == 200
    return workspace, token


def platform_fixture(name: str, *, scope: str = "module", **options):
    """A ``platform`` fixture (module-scoped unless ``scope`` says otherwise, e.g. "session" for
    the one platform of a folder's conftest.py): :func:`running_platform` with ``options``."""

    @pytest.fixture(scope=scope)
    def platform(tmp_path_factory):
        with running_platform(tmp_path_factory, name, **options) as p:
            yield p

    return platform


def member_fixture(workspace: str, user: str, gpu_quota: int):
    """A module-scoped ``member`` fixture, ``(workspace, token)``: :func:`workspace_member` on the
    module's ``platform``."""

    @pytest.fixture(scope="module")
    def member(platform):
        return workspace_member(platform, workspace, user, gpu_quota)

    return member

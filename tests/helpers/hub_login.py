"""Logging in to the hub's login form as a browser does (tests/platform/test_login.py, tests/spawner)."""

from __future__ import annotations

from contextlib import contextmanager

import httpx

from tests.platform.harness import form


@contextmanager
def login(platform, username: str, password: str):
    """A browser-like client logged in to the hub as ``username`` (through the login form)."""
    with httpx.Client(base_url=platform.url, follow_redirects=True, timeout=30) as client:
        resp = form(client, "/hub/login", {"username": username, "password": password})
        resp.raise_for_status()
        yield client

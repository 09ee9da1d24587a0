"""The registry's direct upload route as the tests drive it: declare an upload, ask for a
ticket, and send raw chunks to the data endpoint (shared by tests/registry and the audit
tests of tests/platform). ``platform`` and ``world`` are tests/platform's."""

from __future__ import annotations

import hashlib
import http.client
import json
from urllib.parse import urlsplit

import pytest


@pytest.fixture(autouse=True)
def no_upload_left(request):
    """Cancel what a test declared and left open: the staging area is shared by the whole session's
    platform, and test_datasets.py checks that it is empty after its own refusals."""
    if "world" not in request.fixturenames:
        yield
        return
    platform, world = request.getfixturevalue("platform"), request.getfixturevalue("world")
    yield
    base = f"workspaces/{world.workspace}/datasets/d/uploads"
    for up in platform.api("registry", "GET", base, world.tokens["admin"]).json():
        platform.api("registry", "DELETE", f"{base}/{up['id']}", world.tokens["admin"])


def declare(platform, world, data: bytes, dataset: str = "d", path: str = "f.bin", sha: str | None = None) -> dict:
    decl = [{"path": path, "size": len(data), "sha256": sha or hashlib.sha256(data).hexdigest()}]
    resp = platform.api("registry", "POST", f"workspaces/{world.workspace}/datasets/{dataset}/uploads",
                        world.tokens["member"], json={"files": decl})
    assert resp.status_code == 201, resp.text
    return resp.json()


def ticket(platform, world, up: dict, role: str = "member"):
    return platform.api("registry", "POST", f"workspaces/{world.workspace}/datasets/d/uploads/{up['id']}/direct",
                        world.tokens[role])


def patch(t: dict, index: int, offset, body: bytes, token: str | None = None, headers: dict | None = None,
          path: str | None = None) -> tuple[int, dict]:
    """One raw HTTP request to the data endpoint; (status, JSON body)."""
    url = urlsplit(t["url"])
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    hdrs = {"Content-Length": str(len(body))}
    if token is not False:
        hdrs["Authorization"] = f"Bearer {token or t['token']}"
    hdrs.update(headers or {})
    try:
        conn.request("PATCH", path or f"{url.path}/files/{index}?offset={offset}", body=body, headers=hdrs)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()

"""Finding 7 (requests and limits), against the real platform: bodies before authentication, XSRF on the jobqueue.

One platform for the module (hub, proxy and both services, as ``flightbase
up`` starts them). Requests go through the hub's proxy, as every client's do.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers.platforms import platform_fixture
from tests.platform.harness import form

pytestmark = pytest.mark.slow

GIB = 1 << 30
PIECE = b"x" * (1 << 20)  # the one buffer every huge body below is made of


platform = platform_fixture("requests")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def huge_body(total: int):
    """``total`` bytes, one shared piece at a time: nothing of that size is ever allocated."""
    for _ in range(total // len(PIECE)):
        yield PIECE


def post_while_sending(platform, path: str, headers: dict[str, str], total: int, chunked: bool):
    """POST ``total`` bytes and read the answer while the body is still being sent, as a
    streaming client (curl, a browser) does; httpx reads only once it has sent everything.

    Returns (status, the answer's body, bytes of body sent when the answer came, seconds).
    """
    sock = socket.create_connection(("127.0.0.1", platform.port), timeout=30)
    head = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{platform.port}", "Content-Type: application/json"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    head.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}")
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
    answered = threading.Event()
    sent = [0]

    def send_body():
        try:
            for piece in huge_body(total):
                if answered.is_set():
                    return
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                sent[0] += len(piece)
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the connection went away: the answer says why

    started = time.monotonic()
    sender = threading.Thread(target=send_body, daemon=True)
    sender.start()
    raw = b""
    try:
        while b"\r\n\r\n" not in raw:
            data = sock.recv(65536)
            if not data:
                break
            raw += data
        answered.set()
        seconds, at = time.monotonic() - started, sent[0]
        head_bytes, _, body = raw.partition(b"\r\n\r\n")
        lines = head_bytes.decode("latin-1").split("\r\n")
        fields = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)}
        while len(body) < int(fields.get("content-length", 0)):
            data = sock.recv(65536)
            if not data:
                break
            body += data
    finally:
        answered.set()
        sock.close()
        sender.join(30)
    return int(lines[0].split()[1]), body.decode(errors="replace"), at, seconds


ROUTES = [
    ("jobqueue", "/services/jobqueue/api/v1/trainings"),
    ("registry", "/services/registry/api/v1/workspaces/anything/datasets"),
    # a route that takes big bodies (a dataset chunk, up to 1 GB) gets no further without credentials
    ("registry", "/services/registry/api/v1/workspaces/w/datasets/d/uploads/u/files/0?offset=0"),
]


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length"])
@pytest.mark.parametrize(("service", "path"), ROUTES, ids=["jobqueue", "registry", "registry-chunk"])
def test_finding7_unauthenticated_huge_body_is_refused_unread(platform, service, path, chunked):
    pid = platform.service_pid(service)
    before = rss_kib(pid)
    status, body, sent, seconds = post_while_sending(platform, path, {}, 8 * GIB, chunked)
    assert status == 401 and "Authorization: token" in body, body
    assert seconds < 10 and sent < 1 * GIB, f"answered after {seconds:.1f}s, {sent} bytes sent"
    grown = rss_kib(pid) - before
    assert grown < 8 * 1024, f"{service} grew by {grown} KiB"
    assert httpx.get(f"{platform.url}/services/{service}/health", timeout=10).status_code == 200


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
@pytest.mark.parametrize("service", ["jobqueue", "registry"])
def test_finding7_authenticated_body_over_the_cap_is_413(platform, service, declared):
    """With a valid token, a 100 MB JSON body is refused 413 (the default cap: 1 MiB), and not held."""
    pid = platform.service_pid(service)
    path = "trainings"
    if service == "registry":  # a workspace that exists, so that a small body reaches the route's validation
        ws = "req-cap"
        if platform.api("jobqueue", "GET", f"workspaces/{ws}", platform.admin_token).status_code == 404:
            assert platform.api("jobqueue", "POST", "workspaces", platform.admin_token,
                                json={"name": ws, "settings": {}}).status_code == 201
        path = f"workspaces/{ws}/datasets"
    before = rss_kib(pid)
    total = 100 << 20
    headers = {"Content-Type": "application/json", **({"Content-Length": str(total)} if declared else {})}
    resp = platform.api(service, "POST", path, platform.admin_token, content=huge_body(total), headers=headers)
    assert resp.status_code == 413, resp.text
    assert resp.json()["field"] == "body" and str(1 << 20) in resp.json()["message"]
    if declared:
        assert f"Content-Length: the body is {total} bytes" in resp.json()["message"]
    grown = rss_kib(pid) - before
    assert grown < 8 * 1024, f"{service} grew by {grown} KiB"
    # a body within the cap is still read and answered by the route
    small = platform.api(service, "POST", path, platform.admin_token, json={"name": "?"})
    assert small.status_code == 422, small.text


def test_finding7_routes_that_stream_keep_their_larger_limits(platform):
    """Code uploads (200 MB) and dataset chunks (RegistrySettings.max_chunk_bytes) pass the default cap."""
    admin = platform.admin_token
    ws = "req-limits"
    assert platform.api("jobqueue", "POST", "workspaces", admin, json={"name": ws, "settings": {}}).status_code == 201
    size = 5 << 20
    code = platform.api("jobqueue", "POST", "code", admin, params={"workspace": ws, "filename": "big.py"},
                        content=huge_body(size))
    assert code.status_code == 201 and code.json()["size"] == size, code.text
    assert platform.api("registry", "POST", f"workspaces/{ws}/datasets", admin, json={"name": "d"}).status_code == 201
    base = f"workspaces/{ws}/datasets/d/uploads"
    up = platform.api("registry", "POST", base, admin, json={"files": [{"path": "a.bin", "size": size}]}).json()
    chunk = platform.api("registry", "PATCH", f"{base}/{up['id']}/files/0", admin, params={"offset": 0},
                         content=huge_body(size))
    assert chunk.status_code == 200 and chunk.json()["complete"], chunk.text
    # the declaration of many files is JSON past the default cap: its limit follows max_files
    many = [{"path": f"folder/file-{i:06d}.bin", "size": 1, "sha256": "0" * 64} for i in range(12_000)]
    declared = platform.api("registry", "POST", base, admin, json={"files": many})
    assert declared.status_code == 201, declared.text[:300]
    platform.api("registry", "DELETE", f"{base}/{declared.json()['id']}", admin)


def test_finding7_jobqueue_refuses_cookie_state_changes_without_xsrf(platform):
    """A browser logged in to the hub holds the jobqueue's OAuth cookie; another site could make
    it send state changes with that cookie. The jobqueue has no page to hand out an XSRF token,
    so every cookie-authenticated change is refused; a token in the Authorization header works."""
    with httpx.Client(base_url=platform.url, follow_redirects=True, timeout=30) as browser:
        form(browser, "/hub/login", {"username": "admin", "password": platform.admin_password}).raise_for_status()
        # the OAuth round trip through the hub gives the browser the jobqueue's cookie
        info = browser.get("/services/jobqueue/api/v1/info", headers={"Accept": "text/html"})
        assert info.status_code == 200 and info.json()["user"] == "admin", info.text
        assert browser.get("/services/jobqueue/api/v1/workspaces").status_code == 200  # reading needs no token

        body = {"name": "forged-by-cookie", "settings": {}}
        forged = browser.post("/services/jobqueue/api/v1/workspaces", json=body)
        assert forged.status_code == 403, forged.text
        assert forged.json()["field"] == "X-XSRF-Token" and "X-XSRF-Token" in forged.json()["message"]
        for method, path in (("DELETE", "workspaces/forged-by-cookie"), ("PATCH", "workspaces/x/settings"),
                             ("PUT", "workspaces/x/members/admin")):
            resp = browser.request(method, f"/services/jobqueue/api/v1/{path}", json={})
            assert resp.status_code == 403 and resp.json()["field"] == "X-XSRF-Token", (method, resp.text)
        # a header the browser made up does not help: there is no cookie to match it
        made_up = browser.post("/services/jobqueue/api/v1/workspaces", json=body, headers={"X-XSRF-Token": "t" * 43})
        assert made_up.status_code == 403

    names = {w["name"] for w in platform.api("jobqueue", "GET", "workspaces", platform.admin_token).json()}
    assert "forged-by-cookie" not in names, "nothing was changed"
    # the same request with the token in the Authorization header (the CLI's way) is not affected
    sent = platform.api("jobqueue", "POST", "workspaces", platform.admin_token, json=body)
    assert sent.status_code == 201, sent.text

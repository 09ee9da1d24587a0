"""The data endpoint's limits and its second look at a ticket (issue #14, finding 7).

- Slow or silent clients hold a socket, never a worker thread: the headers
  are awaited by one selector under a total deadline, a size cap and a cap on
  waiting connections; only a PATCH with a good ticket gets a worker, and one
  person gets at most ``MAX_PER_USER`` of them.
- A ticket lives an hour, but each chunk asks the hub whether its holder may
  still write in the workspace: a removed member is refused with 403.

The tests that need a real upload run against the platform. Where a limit must
be small to be reached cheaply, the test starts a second ``DataServer`` (the
same class the registry runs) in this process with that limit, over the
platform's own registry database, staging area and hub: every check and every
byte goes through real components, only the numbers are smaller
(``side_server``). The tests at the end need no platform at all.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import time
from types import SimpleNamespace

import pytest

from flightbase_server.service import db
from flightbase_server.settings import PlatformSettings
from flightbase_registry.config import RegistrySettings
from flightbase_registry.direct import MAX_PER_USER, DataServer, HubWriters
from flightbase_registry.writer import UploadWriter
from tests.helpers.direct_uploads import declare, no_upload_left, patch, ticket  # noqa: F401 (the fixture applies here too)

slow = pytest.mark.slow


@pytest.fixture
def side_server(platform):
    """``make(**limits)``: a DataServer on a free loopback port with those limits, sharing the platform's
    registry database, data directory and hub (through the proxy, with the administrator's token)."""
    made = []

    def make(**limits) -> DataServer:
        settings = PlatformSettings(data_dir=platform.data_dir, auth_cache_seconds=0)
        engine = db.make_engine(settings.registry_db())
        reg = RegistrySettings.load(platform.data_dir, environ={})
        state = SimpleNamespace(sessions=db.Sessions(engine), settings=settings, registry_settings=reg,
                                writer=UploadWriter(platform.data_dir, max_chunk_bytes=reg.max_chunk_bytes,
                                                    direct_writes=bool(reg.direct_writes)))
        limits.setdefault("writers", HubWriters(f"{platform.url}/hub/api", platform.admin_token, cache_seconds=0))
        server = DataServer(state, "127.0.0.1", 0, **limits)
        server.start()
        made.append((server, engine))
        return server

    yield make
    for server, engine in made:
        server.stop()
        engine.dispose()


def side_ticket(server: DataServer, up: dict, user: str) -> dict:
    """What ``POST .../direct`` answers, for ``server``: its URL and a ticket signed with its key."""
    token, _ = server.tickets.issue(up["id"], user)
    return {"url": f"http://127.0.0.1:{server.port}/uploads/{up['id']}", "token": token}


def offsets(platform, world, up: dict) -> list[int]:
    """The files' offsets as the API reports them (as the administrator: the member may have been removed)."""
    resp = platform.api("registry", "GET", f"workspaces/{world.workspace}/datasets/d/uploads/{up['id']}", world.tokens["admin"])
    assert resp.status_code == 200, resp.text
    return [f["offset"] for f in resp.json()["files"]]


def start_chunk(t: dict, index: int, offset: int, length: int, first: bytes) -> socket.socket:
    """A PATCH whose headers and first bytes are sent, the rest of its body withheld: it holds a worker."""
    port = int(t["url"].split(":")[2].split("/")[0])
    path = t["url"].split(str(port), 1)[1]
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(f"PATCH {path}/files/{index}?offset={offset} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t['token']}\r\n"
              f"Content-Length: {length}\r\n\r\n".encode() + first)
    return s


def read_response(f) -> tuple[int, dict, dict]:
    """One HTTP/1.1 response from the buffered socket file ``f``: (status, headers, JSON body)."""
    status = int(f.readline().split()[1])
    headers = {}
    while (line := f.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    body = f.read(int(headers.get("content-length", 0)))
    return status, headers, json.loads(body) if body else {}


@slow
def test_finding7_slow_clients_cannot_lock_out_uploads(platform, world, side_server):
    """More stalled connections than the endpoint has workers (64): an upload still goes through at once,
    and the stalled ones are closed at the header deadline, a total one however they trickle."""
    server = side_server(header_seconds=5)
    opened = time.monotonic()
    stalled = []
    for _ in range(100):  # half a request line, then nothing
        s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        s.sendall(b"PATCH /uploads/")
        stalled.append(s)
    silent = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(5)]
    trickle = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    trickle.sendall(b"P")

    data = os.urandom(3_000_001)
    up = declare(platform, world, data)
    t = side_ticket(server, up, world.names["member"])
    started = time.monotonic()
    status, body = patch(t, 0, 0, data)
    assert status == 200 and body["complete"], body
    assert time.monotonic() - started < 2, "the upload waited behind the stalled clients"
    assert time.monotonic() - opened < 5, "inconclusive: the stalled clients were already closed (a slow machine?)"
    version = platform.api("registry", "POST", f"workspaces/{world.workspace}/datasets/d/uploads/{up['id']}/commit",
                           world.tokens["member"])
    assert version.status_code == 201, version.text

    for byte in b"ATCH /uploads/":  # a byte now and then does not push the deadline back
        if time.monotonic() - opened > 4:
            break
        trickle.sendall(bytes([byte]))
        time.sleep(0.2)
    for s in [*stalled, trickle]:
        answer = s.recv(4096)
        assert answer.startswith(b"HTTP/1.1 408") and b'"status": 408' in answer, answer
        assert s.recv(4096) == b""
        s.close()
    for s in silent:  # nothing was asked, nothing is answered: closed
        assert s.recv(4096) == b""
        s.close()
    closed = time.monotonic() - opened
    assert 4.5 < closed < 8, f"closed after {closed:.1f} s, the deadline is 5 s"


@slow
def test_finding7_one_person_gets_at_most_max_per_user_chunks_at_once(platform, world):
    """On the platform's own endpoint: MAX_PER_USER chunks of the member in flight, the next one gets 429
    naming the limit; another person is not held back, and the member's next chunk goes once one is done."""
    size, n = 1000, MAX_PER_USER + 2
    files = [os.urandom(size) for _ in range(n)]
    decl = [{"path": f"f{i}.bin", "size": size, "sha256": hashlib.sha256(b).hexdigest()} for i, b in enumerate(files)]
    resp = platform.api("registry", "POST", f"workspaces/{world.workspace}/datasets/d/uploads",
                        world.tokens["member"], json={"files": decl})
    assert resp.status_code == 201, resp.text
    up = resp.json()
    t = ticket(platform, world, up).json()
    held = [start_chunk(t, i, 0, size, files[i][:10]) for i in range(MAX_PER_USER)]
    try:
        time.sleep(0.5)  # the selector has handed each to a worker
        status, body = patch(t, MAX_PER_USER, 0, files[MAX_PER_USER])
        assert status == 429 and str(MAX_PER_USER) in body["message"] and "max_per_user" in body["message"], body
        owner = ticket(platform, world, up, "owner").json()
        status, body = patch(owner, n - 1, 0, files[n - 1])
        assert status == 200 and body["complete"], body
        for i, s in enumerate(held):
            s.sendall(files[i][10:])
            status, _, body = read_response(s.makefile("rb"))
            assert status == 200 and body["complete"], body
    finally:
        for s in held:
            s.close()
    status, body = patch(t, MAX_PER_USER, 0, files[MAX_PER_USER])
    assert status == 200 and body["complete"], body
    assert offsets(platform, world, up) == [size] * n


@slow
def test_finding7_ticket_refused_after_removal_from_workspace(platform, world):
    """A member's ticket stops working once they are removed from the workspace (the platform's
    hub answers are cached 0 s in the tests; at most 5 s in a deployment); an administrator's
    ticket works without being a member."""
    data = os.urandom(2000)
    up = declare(platform, world, data)
    t = ticket(platform, world, up).json()
    status, body = patch(t, 0, 0, data[:1000])
    assert status == 200 and body["offset"] == 1000, body
    resp = platform.api("jobqueue", "DELETE", f"workspaces/{world.workspace}/members/{world.names['member']}",
                        world.tokens["admin"])
    assert resp.status_code == 200, resp.text
    status, body = patch(t, 0, 1000, data[1000:])
    assert status == 403 and body["field"] == "Authorization" and "no longer a member" in body["message"], body
    assert offsets(platform, world, up) == [1000], "nothing of the refused chunk was written"
    admin = ticket(platform, world, up, "admin")
    assert admin.status_code == 200, admin.text
    status, body = patch(admin.json(), 0, 1000, data[1000:])
    assert status == 200 and body["complete"], body


@slow
def test_finding7_a_hub_that_cannot_be_asked_refuses_chunks(platform, world, side_server):
    """Fail closed: when the hub does not answer whether the holder may still write, nothing is written."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead = closed.getsockname()[1]
    server = side_server(writers=HubWriters(f"http://127.0.0.1:{dead}/hub/api", "no-token", cache_seconds=0))
    data = os.urandom(1000)
    up = declare(platform, world, data)
    status, body = patch(side_ticket(server, up, world.names["member"]), 0, 0, data)
    assert status == 503 and "hub" in body["message"], body
    assert offsets(platform, world, up) == [0]


@slow
def test_connections_beyond_the_limit_get_503_at_once(platform, world, side_server):
    """Only chunks being received take a worker: idle and slow connections do not, so with one worker a
    chunk still goes through beside them; while one is received, the next gets 503 at once."""
    server = side_server(max_connections=1)
    files = [os.urandom(1000) for _ in range(3)]
    decl = [{"path": f"f{i}.bin", "size": 1000, "sha256": hashlib.sha256(b).hexdigest()} for i, b in enumerate(files)]
    resp = platform.api("registry", "POST", f"workspaces/{world.workspace}/datasets/d/uploads",
                        world.tokens["member"], json={"files": decl})
    assert resp.status_code == 201, resp.text
    up = resp.json()
    t = side_ticket(server, up, world.names["member"])
    with socket.create_connection(("127.0.0.1", server.port)) as idle, \
            socket.create_connection(("127.0.0.1", server.port)) as slow_one:
        slow_one.sendall(b"PATCH /uploads/")
        status, body = patch(t, 0, 0, files[0])
        assert status == 200 and body["complete"], body
        held = start_chunk(t, 1, 0, 1000, files[1][:10])
        with held:
            time.sleep(0.3)
            started = time.monotonic()
            status, body = patch(t, 2, 0, files[2])
            assert status == 503 and body["status"] == 503 and time.monotonic() - started < 1, body
            held.sendall(files[1][10:])
            status, _, body = read_response(held.makefile("rb"))
            assert status == 200 and body["complete"], body
        status, body = patch(t, 2, 0, files[2])
        assert status == 200 and body["complete"], body
        idle.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # the first one is still served
        assert idle.recv(4096).startswith(b"HTTP/1.1 501")


@slow
def test_finding7_keep_alive_several_chunks_and_a_preflight_on_one_connection(platform, world):
    """A browser's connection: a CORS preflight, then chunk after chunk; and requests sent back to back
    without waiting for the answers. Between requests the connection waits without a thread."""
    data = os.urandom(3_000_000)
    up = declare(platform, world, data)
    t = ticket(platform, world, up).json()
    port = int(t["url"].split(":")[2].split("/")[0])
    path = t["url"].split(str(port), 1)[1]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("OPTIONS", f"{path}/files/0?offset=0", headers={"Origin": "http://hub.example",
                                                                     "Access-Control-Request-Method": "PATCH"})
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 204 and resp.getheader("Access-Control-Allow-Origin") == "*"
        sock = conn.sock
        for start in range(0, 2_000_000, 500_000):
            conn.request("PATCH", f"{path}/files/0?offset={start}", body=data[start:start + 500_000],
                         headers={"Authorization": f"Bearer {t['token']}"})
            resp = conn.getresponse()
            assert resp.status == 200 and json.loads(resp.read())["offset"] == start + 500_000
            assert not resp.will_close and conn.sock is sock, "the same connection serves the next chunk"
    finally:
        conn.close()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        one = f"PATCH {path}/files/0?offset={{}} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t['token']}\r\n" \
              "Content-Length: 500000\r\n\r\n"
        s.sendall(one.format(2_000_000).encode() + data[2_000_000:2_500_000]
                  + one.format(2_500_000).encode() + data[2_500_000:])
        f = s.makefile("rb")
        assert read_response(f)[2]["offset"] == 2_500_000
        status, _, body = read_response(f)
        assert status == 200 and body["complete"], body


def test_finding7_headers_have_a_size_cap_and_waiting_connections_a_number():
    """A DataServer on a loopback port, no platform: nothing here gets past the headers."""
    server = DataServer(None, "127.0.0.1", 0, max_waiting=3, max_header_bytes=1024)
    server.start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as big:
            big.sendall(b"PATCH /uploads/x/files/0 HTTP/1.1\r\nX-Long: " + b"a" * 2000)
            answer = big.recv(4096)
            assert answer.startswith(b"HTTP/1.1 431") and b"1024 bytes" in answer, answer
        first = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        time.sleep(0.1)
        rest = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(3)]
        assert first.recv(4096) == b"", "the oldest waiting connection makes room for the newest"
        rest[-1].sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert rest[-1].recv(4096).startswith(b"HTTP/1.1 501")
        for s in [first, *rest]:
            s.close()
    finally:
        server.stop()


def test_finding7_refusals_need_no_ticket_check_past_the_selector():
    """Missing or forged tickets, unknown paths and methods are answered as JSON by the selector (no
    state, no worker); a preflight keeps the connection for the next request."""
    server = DataServer(None, "127.0.0.1", 0)
    server.start()
    try:
        target = f"/uploads/{'a' * 32}/files/0?offset=0"
        cases = [
            (f"PATCH {target} HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", 401, "Authorization"),
            (f"PATCH {target} HTTP/1.1\r\nAuthorization: Bearer a.b.c.d\r\nContent-Length: 3\r\n\r\nabc", 401, "Authorization"),
            (f"PATCH {target} HTTP/1.1\r\nAuthorization: Bearer \u00e9.b.c.d\r\n\r\n", 401, "Authorization"),
            ("PATCH /elsewhere HTTP/1.1\r\n\r\n", 404, None),
            ("DELETE / HTTP/1.1\r\n\r\n", 501, None),
            ("NONSENSE\r\n\r\n", 400, None),
        ]
        for request, status, field in cases:
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
                s.sendall(request.encode("latin-1"))
                got, headers, body = read_response(s.makefile("rb"))
                assert (got, body.get("field")) == (status, field), (request, body)
                assert body["message"] and headers["connection"] == "close" and headers["access-control-allow-origin"] == "*"
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
            f = s.makefile("rb")
            s.sendall(f"OPTIONS {target} HTTP/1.1\r\n\r\n".encode())
            assert read_response(f)[0] == 204
            s.sendall(f"PATCH {target} HTTP/1.1\r\n\r\n".encode())
            assert read_response(f)[0] == 401
    finally:
        server.stop()

"""The registry's data endpoint (direct.py): chunk bodies straight to the registry, not through the proxy.

Against the real platform: the ticket comes from the API through the hub's
proxy, the chunks go to the registry process's own data port over TCP, and
the result is checked through the API (offsets, commit, the version's bytes).
The ticket unit tests at the end need no platform.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import time
from urllib.parse import urlsplit

import pytest

from flightbase import uploads
from flightbase.client import ApiError, Client
from flightbase_registry.direct import Tickets
from tests.helpers.direct_uploads import declare, no_upload_left, patch, ticket  # noqa: F401 (the fixture applies here)

pytestmark = pytest.mark.slow


def state(platform, world, up: dict) -> dict:
    return platform.api("registry", "GET", f"workspaces/{world.workspace}/datasets/d/uploads/{up['id']}",
                        world.tokens["member"]).json()


def test_a_member_sends_chunks_to_the_data_endpoint_and_commits(platform, world):
    data = os.urandom(20_000_003)  # several of the writer's buffers, an odd tail
    up = declare(platform, world, data)
    resp = ticket(platform, world, up)
    assert resp.status_code == 200, resp.text
    t = resp.json()
    assert t["url"].endswith(f"/uploads/{up['id']}") and urlsplit(t["url"]).port != urlsplit(platform.url).port
    assert patch(t, 0, 0, data[:7_000_001])[1]["offset"] == 7_000_001
    status, body = patch(t, 0, 7_000_001, data[7_000_001:])
    assert status == 200 and body["complete"] and body["offset"] == len(data)
    version = platform.api("registry", "POST", f"workspaces/{world.workspace}/datasets/d/uploads/{up['id']}/commit",
                           world.tokens["member"])
    assert version.status_code == 201, version.text
    got = platform.api("registry", "GET", f"workspaces/{world.workspace}/datasets/d/versions/{version.json()['version']}/files/f.bin",
                       world.tokens["member"])
    assert hashlib.sha256(got.content).hexdigest() == hashlib.sha256(data).hexdigest()
    assert t["token"] not in platform.log_tail(10**7), "tickets are never logged"


def test_an_interrupted_direct_chunk_keeps_what_arrived_and_resumes_through_the_api(platform, world):
    data = os.urandom(12_000_000)
    up = declare(platform, world, data)
    t = ticket(platform, world, up).json()
    url = urlsplit(t["url"])
    sent = 9_000_000
    with socket.create_connection((url.hostname, url.port)) as s:  # the sender goes away mid-body
        s.sendall(f"PATCH {url.path}/files/0?offset=0 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t['token']}\r\n"
                  f"Content-Length: {len(data)}\r\n\r\n".encode() + data[:sent])
    for _ in range(100):  # the registry notices the end of the connection and closes the file
        if state(platform, world, up)["files"][0]["offset"] == sent:
            break
        time.sleep(0.1)
    assert state(platform, world, up)["files"][0]["offset"] == sent
    # the rest through the API road: both share the file's state
    resp = platform.api("registry", "PATCH", f"workspaces/{world.workspace}/datasets/d/uploads/{up['id']}/files/0",
                        world.tokens["member"], params={"offset": sent}, content=data[sent:])
    assert resp.status_code == 200 and resp.json()["complete"], resp.text
    assert platform.api("registry", "POST", f"workspaces/{world.workspace}/datasets/d/uploads/{up['id']}/commit",
                        world.tokens["member"]).status_code == 201


def test_bad_requests_get_a_json_error_naming_the_field_and_write_nothing(platform, world):
    data = os.urandom(100_000)
    up = declare(platform, world, data)
    t = ticket(platform, world, up).json()
    other = declare(platform, world, b"other bytes", path="g.bin")
    cases = [
        (dict(token=False), 401, "Authorization"),
        (dict(token=t["token"][:-3] + "AAA"), 401, "Authorization"),  # tampered signature
        (dict(token=ticket(platform, world, other).json()["token"]), 403, "Authorization"),  # another upload's ticket
        (dict(offset="x"), 422, "offset"),
        (dict(offset=5), 409, "offset"),
        (dict(body=data + b"more"), 413, "body"),
        (dict(index=3), 404, "index"),
        (dict(headers={"Transfer-Encoding": "chunked", "Content-Length": ""}), 411, "Content-Length"),
    ]
    for kw, status, field in cases:
        args = {"index": 0, "offset": 0, "body": data} | kw
        got, body = patch(t, args.pop("index"), args.pop("offset"), args.pop("body"), **args)
        assert (got, body.get("field")) == (status, field), (kw, body)
        assert body["message"]
        assert state(platform, world, up)["files"][0]["offset"] == 0
    got, body = patch(t, 0, 0, data, path="/elsewhere")
    assert got == 404 and "data URL" in body["message"]
    conn = http.client.HTTPConnection(urlsplit(t["url"]).hostname, urlsplit(t["url"]).port, timeout=10)
    conn.request("GET", urlsplit(t["url"]).path)
    resp = conn.getresponse()
    assert resp.status == 501 and json.loads(resp.read())["message"]
    conn.close()


def test_a_wrong_checksum_is_refused_and_the_file_discarded(platform, world):
    data = os.urandom(50_000)
    up = declare(platform, world, data, sha="0" * 64)
    status, body = patch(ticket(platform, world, up).json(), 0, 0, data)
    assert status == 422 and body["field"] == "files[0].sha256" and "mismatch" in body["message"]
    assert state(platform, world, up)["files"][0]["offset"] == 0


def test_a_ticket_ends_with_its_upload_and_outsiders_get_none(platform, world):
    data = os.urandom(1000)
    up = declare(platform, world, data)
    t = ticket(platform, world, up).json()
    assert ticket(platform, world, up, "outsider").status_code == 404
    assert platform.api("registry", "DELETE", f"workspaces/{world.workspace}/datasets/d/uploads/{up['id']}",
                        world.tokens["member"]).status_code == 204
    status, body = patch(t, 0, 0, data)
    assert status == 404 and "not found" in body["message"]


def test_the_cli_route_renews_a_refused_ticket_and_falls_back_to_the_api(platform, world, monkeypatch):
    """``flightbase.uploads.Route`` (what the CLI uses): a ticket refused with 401 is renewed; an unreachable data endpoint is given
    up for PATCH through the API, resuming at the offset the service reports."""
    data = os.urandom(3_000_000)
    src = platform.data_dir.parent / "route.bin"
    src.write_bytes(data)
    with Client(url=platform.url, token=world.tokens["member"]) as c:
        up = declare(platform, world, data)
        route = uploads.Route(c, f"workspaces/{world.workspace}/datasets/d/uploads/{up['id']}")
        assert route.ticket is not None
        route.ticket["token"] = route.ticket["token"][:-3] + "AAA"
        with open(src, "rb") as fh:
            assert route.send(0, fh, 0, 1_000_000)["offset"] == 1_000_000
            with socket.socket() as closed:
                closed.bind(("127.0.0.1", 0))
                dead = closed.getsockname()[1]
            route.ticket["url"] = f"http://127.0.0.1:{dead}/uploads/{up['id']}"
            answer = route.send(0, fh, 1_000_000, len(data) - 1_000_000)
        assert answer["complete"] and route.ticket is None
        version = c.request("registry", "POST", f"workspaces/{world.workspace}/datasets/d/uploads/{up['id']}/commit")
    assert version["size_bytes"] == len(data)
    with pytest.raises(ApiError):  # nothing else stays open: the upload is gone once committed
        with Client(url=platform.url, token=world.tokens["member"]) as c:
            c.request("registry", "POST", f"workspaces/{world.workspace}/datasets/d/uploads/{up['id']}/direct")


def test_tickets_are_for_one_upload_and_expire():
    tickets = Tickets(lifetime=60)
    token, expires = tickets.issue("a" * 32, "ann", now=1000)
    assert expires.timestamp() == 1060
    assert tickets.check(token, "a" * 32, now=1059) == "ann"
    for upload, now, status in (("a" * 32, 1061, 401), ("b" * 32, 1000, 403)):
        with pytest.raises(Exception) as exc:
            tickets.check(token, upload, now=now)
        assert exc.value.status == status and exc.value.field == "Authorization"
    with pytest.raises(Exception) as exc:
        Tickets().check(token, "a" * 32, now=1000)  # another process's key (a restarted registry)
    assert exc.value.status == 401 and "restarted" in exc.value.message


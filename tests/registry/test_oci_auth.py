"""The registry service's account on the OCI registry (issue #14, finding 5).

Where the credentials come from (``RegistrySettings.oci_credentials``: a table
of settings in, credentials or a clear error out), and how ``OciRegistry``
sends them: to the real docker-registry of ``conftest.oci_registry`` (htpasswd
auth), and never to another origin.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from flightbase_server.settings import PlatformSettings
from flightbase_registry.config import RegistrySettings
from flightbase_registry.oci import Blob, OciRegistry, PushError, read_archive
from tests.registry.images import oci_layout

OPERATOR = {"oci_registry_url": "http://registry.example.org"}


def _secrets(tmp_path, values: dict | None) -> None:
    if values is not None:
        (tmp_path / "secrets.json").write_text(json.dumps(values))


@pytest.mark.parametrize(("registry", "secrets", "password_file", "expected"), [
    # the registry `flightbase up` starts: the account in secrets.json
    ({}, {"oci_registry_password": "generated"}, None, ("flightbase", "generated")),
    # an operator's registry: none, or a user name and a password file
    (OPERATOR, None, None, None),
    (OPERATOR | {"oci_registry_username": "robot"}, None, "s3cret\n", ("robot", "s3cret")),
    (OPERATOR | {"oci_registry_username": "robot"}, None, "with spaces \r\n", ("robot", "with spaces ")),
], ids=["embedded", "operator-anonymous", "operator-account", "operator-account-crlf"])
def test_the_service_gets_the_account_of_its_registry(tmp_path, registry, secrets, password_file, expected):
    _secrets(tmp_path, secrets)
    settings = dict(registry)
    if password_file is not None:
        (tmp_path / "pw").write_text(password_file)
        settings["oci_registry_password_file"] = str(tmp_path / "pw")
    port = 0 if registry else 5000
    platform = PlatformSettings(data_dir=tmp_path, oci_registry_port=port)
    assert RegistrySettings(**settings).oci_credentials(platform) == expected


@pytest.mark.parametrize(("port", "secrets", "settings", "message"), [
    (5000, None, {}, "password is missing from"),
    (5000, {"jobqueue_token": "x"}, {}, "password is missing from"),
    (5000, {"oci_registry_password": "g"}, {"oci_registry_username": "robot"}, "are for an operator's registry"),
    (0, None, {"oci_registry_url": "https://robot:s3cret@registry.example.org"}, "no credentials in the URL"),
    (0, None, {"oci_registry_username": "robot"}, "go together"),
    (0, None, {"oci_registry_password_file": "/nonexistent"}, "go together"),
    (0, None, {"oci_registry_username": "robot", "oci_registry_password_file": "/nonexistent"},
     "FLIGHTBASE_OCI_REGISTRY_PASSWORD_FILE: cannot read /nonexistent"),
    (0, None, {"oci_registry_username": "robot", "oci_registry_password_file": "EMPTY"},
     "FLIGHTBASE_OCI_REGISTRY_PASSWORD_FILE: {tmp}/empty is empty"),
], ids=["no-secrets-file", "no-key", "operator-account-for-embedded", "password-in-url", "user-without-file",
        "file-without-user", "unreadable-file", "empty-file"])
def test_a_bad_account_setting_stops_the_service_with_a_clear_error(tmp_path, port, secrets, settings, message):
    _secrets(tmp_path, secrets)
    (tmp_path / "empty").write_text("\n")
    settings = {k: (str(tmp_path / "empty") if v == "EMPTY" else v) for k, v in settings.items()}
    with pytest.raises(RuntimeError, match=re.escape(message.format(tmp=tmp_path))):
        RegistrySettings(**(OPERATOR | settings)).oci_credentials(PlatformSettings(data_dir=tmp_path, oci_registry_port=port))


def test_the_account_settings_come_from_the_environment(tmp_path):
    loaded = RegistrySettings.load(tmp_path, environ={
        "FLIGHTBASE_OCI_REGISTRY_URL": "https://registry.example.org/",
        "FLIGHTBASE_OCI_REGISTRY_USERNAME": "robot",
        "FLIGHTBASE_OCI_REGISTRY_PASSWORD_FILE": "/run/secrets/oci-password",
    })
    assert (loaded.oci_registry_url, loaded.oci_registry_username, loaded.oci_registry_password_file) == (
        "https://registry.example.org", "robot", "/run/secrets/oci-password")


def _archive() -> tuple[tarfile.TarFile, str]:
    body, digest = oci_layout({})
    return tarfile.open(fileobj=io.BytesIO(body)), digest


@pytest.mark.slow
def test_pushes_carry_the_account_and_a_registry_refuses_everyone_else(oci_registry):
    tf, digest = _archive()
    archive = read_archive(tf)
    pusher = OciRegistry(oci_registry.url, credentials=(oci_registry.user, oci_registry.password))
    try:  # blobs go to the upload URLs the registry answers: they carry the account too
        assert pusher.push(tf, archive, "auth/pushed", "1") == digest
        assert pusher.delete_manifest("auth/pushed", digest) is True
    finally:
        pusher.close()
    for credentials, reason in [(None, "requires credentials"), ((oci_registry.user, "wrong"), "refused this service's credentials")]:
        client = OciRegistry(oci_registry.url, credentials=credentials)
        try:
            with pytest.raises(PushError, match=reason):
                client.push(tf, archive, "auth/refused", "1")
        finally:
            client.close()
    assert oci_registry.get("/v2/auth/refused/manifests/1").status_code == 404


class _Recorder(BaseHTTPRequestHandler):
    """A stand-in registry that answers every upload with a Location on another origin."""

    seen: list  # (method, path, Authorization header or None), set per server
    upload_to = ""

    def _answer(self, status: int, headers: dict | None = None) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.server.seen.append((self.command, self.path.split("?")[0], self.headers.get("Authorization")))
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_HEAD(self):
        self._answer(404)

    def do_POST(self):
        self._answer(202, {"Location": self.server.upload_to})

    def do_PUT(self):
        self._answer(201)

    def log_message(self, *args):
        pass


def _server() -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.seen = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_credentials_never_go_to_another_origin():
    """A stand-in registry (two local HTTP servers), because docker-registry always answers
    upload URLs on its own origin: the case to test is one that names another."""
    registry, elsewhere = _server(), _server()
    registry.upload_to = f"http://127.0.0.1:{elsewhere.server_port}/upload/1"
    blob = Blob(digest="sha256:" + "0" * 64, size=1, member="x")
    client = OciRegistry(f"http://127.0.0.1:{registry.server_port}", credentials=("robot", "s3cret"))
    try:
        client.push_blob("ws/img", blob, iter([b"x"]))
    finally:
        client.close()
        for server in (registry, elsewhere):
            server.shutdown()
            server.server_close()
    assert [(m, auth) for m, _, auth in registry.seen] == [("HEAD", "Basic cm9ib3Q6czNjcmV0"), ("POST", "Basic cm9ib3Q6czNjcmV0")]
    assert [(m, path, auth) for m, path, auth in elsewhere.seen] == [("PUT", "/upload/1", None)]

"""Image uploads through the real platform into a real OCI registry (docker-registry).

The archives are built here with tarfile (no Docker engine): a config JSON and
one gzip layer, in the OCI image layout and in the classic `docker save` format.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile

import httpx
import pytest

pytestmark = pytest.mark.slow

ACCEPT = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _layer() -> tuple[bytes, bytes]:
    """(gzip layer, uncompressed layer): one file /hello.txt."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tf:
        data = b"hello from a test image\n"
        info = tarfile.TarInfo("hello.txt")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0), raw.getvalue()


def _config(diff_id: str, labels: dict) -> bytes:
    return json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Labels": labels, "Cmd": ["python3"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }).encode()


def _tar(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def oci_layout(labels: dict) -> tuple[bytes, str]:
    """An OCI image layout tar and the digest of its manifest."""
    layer, raw = _layer()
    config = _config(_digest(raw), labels)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": _digest(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": _digest(layer), "size": len(layer)}],
    }).encode()
    index = json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": _digest(manifest), "size": len(manifest)}]}).encode()
    blobs = {f"blobs/sha256/{_digest(b)[7:]}": b for b in (layer, config, manifest)}
    return _tar({"oci-layout": b'{"imageLayoutVersion": "1.0.0"}', "index.json": index, **blobs}), _digest(manifest)


def docker_save(labels: dict) -> bytes:
    """The classic `docker save` format: manifest.json, a config file, an uncompressed layer.tar."""
    _, raw = _layer()
    config = _config(_digest(raw), labels)
    config_name = _digest(config)[7:] + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": ["team/tool:1"], "Layers": ["abc123/layer.tar"]}]).encode()
    return _tar({"manifest.json": manifest, config_name: config, "abc123/layer.tar": raw})


def upload(platform, token, ws, body: bytes, **params):
    return platform.api("registry", "POST", f"workspaces/{ws}/images/upload", token, params=params, content=body,
                        headers={"Content-Type": "application/x-tar"})


def test_oci_layout_is_pushed_and_pulled_back(platform, world, oci_registry):
    ws = world.workspace
    body, digest = oci_layout({"ai.flightbase.frameworks": "pytorch, horovod",
                               "org.opencontainers.image.description": "test image"})
    resp = upload(platform, world.tokens["member"], ws, body, name="tool", tag="1.0")
    assert resp.status_code == 201, resp.text
    image = resp.json()
    assert image["digest"] == digest and image["tag"] == "1.0" and image["source"] == "upload"
    host = oci_registry.split("://", 1)[1]
    assert image["reference"] == f"{host}/{ws}/tool:1.0@{digest}"
    assert image["frameworks"] == ["pytorch", "horovod"] and image["description"] == "test image"
    assert image["created_by"] == world.names["member"] and image["size_bytes"] > 0
    assert "host Python environment" in image["runs_as"]

    pulled = httpx.get(f"{oci_registry}/v2/{ws}/tool/manifests/1.0", headers={"Accept": ACCEPT})
    assert pulled.status_code == 200
    assert pulled.headers["docker-content-digest"] == digest == _digest(pulled.content)
    for layer in pulled.json()["layers"]:
        blob = httpx.get(f"{oci_registry}/v2/{ws}/tool/blobs/{layer['digest']}", follow_redirects=True)
        assert _digest(blob.content) == layer["digest"]

    # usable by this workspace only, and counted in its storage
    names = {i["name"] for i in platform.api("registry", "GET", f"workspaces/{ws}/images", world.tokens["owner"]).json()}
    assert {"tool", "training-base", "notebook"} <= names
    other = platform.api("registry", "GET", f"workspaces/{world.other_workspace}/images", world.tokens["outsider"]).json()
    assert "tool" not in {i["name"] for i in other}
    assert platform.api("registry", "GET", f"workspaces/{ws}/storage", world.tokens["owner"]).json()["images_bytes"] == image["size_bytes"]
    again = upload(platform, world.tokens["member"], ws, body, name="tool")
    assert again.status_code == 409 and again.json()["field"] == "name"


def test_docker_save_archive_is_pushed_with_declared_frameworks(platform, world, oci_registry):
    ws = world.workspace
    resp = upload(platform, world.tokens["owner"], ws, docker_save({}), name="saved", frameworks=["jax"], description="mine")
    assert resp.status_code == 201, resp.text
    image = resp.json()
    assert image["frameworks"] == ["jax"] and image["description"] == "mine" and image["tag"] == "latest"
    pulled = httpx.get(f"{oci_registry}/v2/{ws}/saved/manifests/latest", headers={"Accept": ACCEPT})
    assert pulled.status_code == 200 and pulled.headers["docker-content-digest"] == image["digest"]
    assert pulled.json()["layers"][0]["mediaType"] == "application/vnd.oci.image.layer.v1.tar"


@pytest.mark.parametrize(("body", "reason"), [
    (b"not a tar at all", "not a tar archive"),
    (_tar({"hello.txt": b"hi"}), "neither an OCI image layout"),
    (_tar({"manifest.json": b"[{\"Config\": \"../../etc/passwd\", \"Layers\": []}]"}), "'..' part"),
    (b"", "empty"),
])
def test_bad_archives_are_refused_and_leave_nothing(platform, world, body, reason):
    resp = upload(platform, world.tokens["member"], world.workspace, body, name="bad")
    assert resp.status_code == 422 and resp.json()["field"] == "body" and reason in resp.json()["message"], resp.text
    staging = platform.data_dir / "uploads" / "images"
    assert not staging.exists() or list(staging.iterdir()) == []
    names = {i["name"] for i in platform.api("registry", "GET", f"workspaces/{world.workspace}/images", world.tokens["member"]).json()}
    assert "bad" not in names


def test_bad_image_names_are_refused(platform, world):
    for name in ("Upper", "a..b", "trailing-", "../x"):
        resp = upload(platform, world.tokens["member"], world.workspace, b"x", name=name)
        assert resp.status_code == 422 and resp.json()["field"] == "name", resp.text


def test_deleting_an_uploaded_image_deletes_its_manifest(platform, world, oci_registry):
    ws = world.workspace
    body, digest = oci_layout({})
    assert upload(platform, world.tokens["member"], ws, body, name="gone", tag="2").status_code == 201
    by_tag, by_digest = f"{oci_registry}/v2/{ws}/gone/manifests/2", f"{oci_registry}/v2/{ws}/gone/manifests/{digest}"
    assert httpx.get(by_tag, headers={"Accept": ACCEPT}).status_code == 200

    refused = platform.api("registry", "DELETE", f"workspaces/{ws}/images/gone", world.tokens["member"])
    assert refused.status_code == 403, refused.text
    assert httpx.get(by_digest, headers={"Accept": ACCEPT}).status_code == 200  # a refusal deletes nothing

    resp = platform.api("registry", "DELETE", f"workspaces/{ws}/images/gone", world.tokens["manager"])
    assert resp.status_code == 204, resp.text
    assert httpx.get(by_tag, headers={"Accept": ACCEPT}).status_code == 404
    assert httpx.get(by_digest, headers={"Accept": ACCEPT}).status_code == 404
    assert platform.api("registry", "GET", f"workspaces/{ws}/images/gone", world.tokens["member"]).status_code == 404
    assert platform.api("registry", "GET", f"workspaces/{ws}/storage", world.tokens["member"]).json()["images_bytes"] == 0

    # the same name can be uploaded again afterwards
    assert upload(platform, world.tokens["member"], ws, body, name="gone", tag="2").status_code == 201


def test_deleting_an_image_registered_by_reference_leaves_the_registry_alone(platform, world):
    ws = world.workspace
    reg = platform.api("registry", "POST", f"workspaces/{ws}/images", world.tokens["member"],
                       json={"name": "ref", "reference": "registry.example.org/team/tool:1"})
    assert reg.status_code == 201, reg.text
    assert platform.api("registry", "DELETE", f"workspaces/{ws}/images/ref", world.tokens["manager"]).status_code == 204

"""Image uploads through the real platform into a real OCI registry (docker-registry).

The archives are built with tarfile (no Docker engine, tests/registry/images.py);
the tests read back from the registry with the same account the service pushes with.
"""

from __future__ import annotations

import pytest

from flightbase_registry.publish import STAGED_PREFIX
from flightbase_registry.storage import image_staging
from tests.registry.images import ACCEPT, docker_save, oci_layout, sha256_digest, tar, upload

pytestmark = pytest.mark.slow


def staged_uploads(platform) -> list[str]:
    """What people's image uploads left in the registry's staging area. The registry's own publishing
    of the built-in images (``publish.STAGED_PREFIX``, with the docker backend) stages there too, at any
    time after start-up; those files are not an upload's and are left out."""
    staging = image_staging(platform.data_dir)
    return sorted(p.name for p in staging.iterdir() if not p.name.startswith(STAGED_PREFIX)) if staging.exists() else []


def test_oci_layout_is_pushed_and_pulled_back(platform, world, oci_registry):
    ws = world.workspace
    body, digest = oci_layout({"ai.flightbase.frameworks": "pytorch, horovod",
                               "org.opencontainers.image.description": "test image"})
    resp = upload(platform, world.tokens["member"], ws, body, name="tool", tag="1.0")
    assert resp.status_code == 201, resp.text
    image = resp.json()
    assert image["digest"] == digest and image["tag"] == "1.0" and image["source"] == "upload"
    assert image["reference"] == f"{oci_registry.host}/{ws}/tool:1.0@{digest}"
    assert image["frameworks"] == ["pytorch", "horovod"] and image["description"] == "test image"
    assert image["created_by"] == world.names["member"] and image["size_bytes"] > 0
    assert "host Python environment" in image["runs_as"]

    pulled = oci_registry.get(f"/v2/{ws}/tool/manifests/1.0", headers={"Accept": ACCEPT})
    assert pulled.status_code == 200
    assert pulled.headers["docker-content-digest"] == digest == sha256_digest(pulled.content)
    for layer in pulled.json()["layers"]:
        blob = oci_registry.get(f"/v2/{ws}/tool/blobs/{layer['digest']}", follow_redirects=True)
        assert sha256_digest(blob.content) == layer["digest"]

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
    pulled = oci_registry.get(f"/v2/{ws}/saved/manifests/latest", headers={"Accept": ACCEPT})
    assert pulled.status_code == 200 and pulled.headers["docker-content-digest"] == image["digest"]
    assert pulled.json()["layers"][0]["mediaType"] == "application/vnd.oci.image.layer.v1.tar"


@pytest.mark.parametrize(("body", "reason"), [
    (b"not a tar at all", "not a tar archive"),
    (tar({"hello.txt": b"hi"}), "neither an OCI image layout"),
    (tar({"manifest.json": b"[{\"Config\": \"../../etc/passwd\", \"Layers\": []}]"}), "'..' part"),
    (b"", "empty"),
])
def test_bad_archives_are_refused_and_leave_nothing(platform, world, body, reason):
    resp = upload(platform, world.tokens["member"], world.workspace, body, name="bad")
    assert resp.status_code == 422 and resp.json()["field"] == "body" and reason in resp.json()["message"], resp.text
    assert staged_uploads(platform) == []
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
    by_tag, by_digest = f"/v2/{ws}/gone/manifests/2", f"/v2/{ws}/gone/manifests/{digest}"
    assert oci_registry.get(by_tag, headers={"Accept": ACCEPT}).status_code == 200

    refused = platform.api("registry", "DELETE", f"workspaces/{ws}/images/gone", world.tokens["member"])
    assert refused.status_code == 403, refused.text
    assert oci_registry.get(by_digest, headers={"Accept": ACCEPT}).status_code == 200  # a refusal deletes nothing

    resp = platform.api("registry", "DELETE", f"workspaces/{ws}/images/gone", world.tokens["manager"])
    assert resp.status_code == 204, resp.text
    assert oci_registry.get(by_tag, headers={"Accept": ACCEPT}).status_code == 404
    assert oci_registry.get(by_digest, headers={"Accept": ACCEPT}).status_code == 404
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


def test_finding7_image_archive_with_a_huge_long_name_header_is_refused(platform, world):
    """A valid OCI layout followed by a GNU long-name header declaring 4 GiB, with only a few real bytes
    behind it: the registry refuses it from the header alone (flightbase.archives.open_tar) instead of
    reading 4 GiB into memory; tests/unit/test_archives.py measures the memory of the same reader."""
    import io
    import tarfile

    layout, _ = oci_layout({})
    with tarfile.open(fileobj=io.BytesIO(layout)) as tf:
        tf.getmembers()
        end = tf.offset  # where the two zero blocks that end the archive begin
    header = tarfile.TarInfo("././@LongLink")
    header.type, header.size = tarfile.GNUTYPE_LONGNAME, 4 << 30
    body = layout[:end] + header.tobuf(tarfile.GNU_FORMAT) + b"a" * 512 + b"\0" * 1024

    resp = upload(platform, world.tokens["member"], world.workspace, body, name="huge-header")
    assert resp.status_code == 422 and resp.json()["field"] == "body", resp.text
    assert (f"tar header '././@LongLink' at byte {end} is a GNU long name of {4 << 30} bytes, "
            "more than the limit of 65536 bytes") in resp.json()["message"], resp.text
    assert staged_uploads(platform) == []
    images = platform.api("registry", "GET", f"workspaces/{world.workspace}/images", world.tokens["member"])
    assert images.status_code == 200 and "huge-header" not in {i["name"] for i in images.json()}

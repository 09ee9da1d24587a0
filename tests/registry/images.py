"""Small image archives built with tarfile (no Docker engine), and their upload through the registry API.

A config JSON and one gzip layer, in the OCI image layout and in the classic
`docker save` format. Used by the registry tests and tests/security.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile

ACCEPT = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"


def sha256_digest(data: bytes) -> str:
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


def tar(entries: dict[str, bytes]) -> bytes:
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
    config = _config(sha256_digest(raw), labels)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256_digest(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha256_digest(layer), "size": len(layer)}],
    }).encode()
    index = json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha256_digest(manifest), "size": len(manifest)}]}).encode()
    blobs = {f"blobs/sha256/{sha256_digest(b)[7:]}": b for b in (layer, config, manifest)}
    return tar({"oci-layout": b'{"imageLayoutVersion": "1.0.0"}', "index.json": index, **blobs}), sha256_digest(manifest)


def docker_save(labels: dict) -> bytes:
    """The classic `docker save` format: manifest.json, a config file, an uncompressed layer.tar."""
    _, raw = _layer()
    config = _config(sha256_digest(raw), labels)
    config_name = sha256_digest(config)[7:] + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": ["team/tool:1"], "Layers": ["abc123/layer.tar"]}]).encode()
    return tar({"manifest.json": manifest, config_name: config, "abc123/layer.tar": raw})


def upload(platform, token, ws, body: bytes, **params):
    return platform.api("registry", "POST", f"workspaces/{ws}/images/upload", token, params=params, content=body,
                        headers={"Content-Type": "application/x-tar"})

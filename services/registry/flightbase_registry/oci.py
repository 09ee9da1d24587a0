"""Uploaded image archives, and pushing them to an OCI registry.

Two archive formats are read, both as produced without a Docker engine too:

- an OCI image layout (``oci-layout``, ``index.json``, ``blobs/sha256/...``),
  as written by ``skopeo copy ... oci-archive:`` or ``docker save`` since 25;
- the classic ``docker save`` format (``manifest.json`` naming the config file
  and one tar per layer).

Nothing is extracted to disk: blobs are read from the tar as they are sent.
The push speaks the OCI distribution API with httpx (blob exists? ``HEAD``;
upload: ``POST`` then one ``PUT ?digest=``; then ``PUT`` of the manifest by
tag) and checks the digest the registry reports for the manifest against the
one computed here. See
https://github.com/opencontainers/distribution-spec/blob/main/spec.md#push
Every request to the registry carries the service's credentials (HTTP Basic
auth), when it has some: the embedded registry answers nobody else.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
import tarfile
from dataclasses import dataclass, field
from typing import Iterator
from urllib.parse import urljoin, urlparse

import httpx

from flightbase.archives import path_problem

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
FRAMEWORKS_LABEL = "ai.flightbase.frameworks"
DESCRIPTION_LABEL = "org.opencontainers.image.description"
DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")
_BLOCK = 1 << 20


class ArchiveError(ValueError):
    """The uploaded file is not an image archive this service can read (answered as 422)."""


class PushError(RuntimeError):
    """The OCI registry refused or failed (answered as 502)."""


@dataclass
class Blob:
    digest: str
    size: int
    member: str  # name of the tar member holding it
    media_type: str = ""


@dataclass
class Manifest:
    media_type: str
    raw: bytes  # exact bytes pushed (their sha256 is the manifest digest)
    blobs: list[Blob] = field(default_factory=list)
    children: list["Manifest"] = field(default_factory=list)

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.raw).hexdigest()


@dataclass
class ImageArchive:
    manifest: Manifest
    config: dict  # the image config JSON (labels, architecture, ...)

    @property
    def size(self) -> int:
        seen: dict[str, int] = {}

        def walk(m: Manifest):
            for b in m.blobs:
                seen[b.digest] = b.size
            for c in m.children:
                walk(c)

        walk(self.manifest)
        return sum(seen.values()) + len(self.manifest.raw)

    def labels(self) -> dict[str, str]:
        return dict((self.config.get("config") or {}).get("Labels") or {})

    def frameworks(self) -> list[str]:
        raw = self.labels().get(FRAMEWORKS_LABEL, "")
        return [f.strip() for f in raw.split(",") if f.strip()]

    def description(self) -> str:
        return self.labels().get(DESCRIPTION_LABEL, "")


def _member_name(name: str) -> str:
    return name[2:] if name.startswith("./") else name


class _Tar:
    """Read members of the uploaded tar by name, refusing unsafe names."""

    def __init__(self, tf: tarfile.TarFile):
        self.tf = tf
        self.members = {_member_name(m.name): m for m in tf.getmembers()}

    def has(self, name: str) -> bool:
        return name in self.members

    def _member(self, name: str) -> tarfile.TarInfo:
        why = path_problem(name)
        if why:
            raise ArchiveError(f"the archive names {name!r}, which {why}")
        member = self.members.get(name)
        if member is None:
            raise ArchiveError(f"the archive lacks {name!r}")
        return member

    def size(self, name: str) -> int:
        member = self._member(name)
        if member.issym() or member.islnk():
            return self.tf._find_link_target(member).size  # links inside the archive only
        return member.size

    def read_json(self, name: str, limit: int = 4 << 20) -> tuple[bytes, dict | list]:
        member = self._member(name)
        if self.size(name) > limit:
            raise ArchiveError(f"{name!r} is too large for a JSON document")
        fh = self.tf.extractfile(member)
        if fh is None:
            raise ArchiveError(f"{name!r} is not a file")
        raw = fh.read()
        try:
            return raw, json.loads(raw)
        except ValueError:
            raise ArchiveError(f"{name!r} is not valid JSON") from None

    def stream(self, name: str) -> Iterator[bytes]:
        fh = self.tf.extractfile(self._member(name))
        if fh is None:
            raise ArchiveError(f"{name!r} is not a file")
        while block := fh.read(_BLOCK):
            yield block

    def sha256(self, name: str) -> str:
        h = hashlib.sha256()
        for block in self.stream(name):
            h.update(block)
        return "sha256:" + h.hexdigest()

    def head(self, name: str, n: int = 2) -> bytes:
        fh = self.tf.extractfile(self._member(name))
        return fh.read(n) if fh else b""


def _blob_path(digest: str) -> str:
    if not isinstance(digest, str) or not DIGEST_RE.match(digest):
        raise ArchiveError(f"unsupported digest {digest!r} (expected sha256:<64 hex>)")
    return "blobs/sha256/" + digest.split(":", 1)[1]


def _descriptor_blob(tar: _Tar, desc: dict) -> Blob:
    digest = desc.get("digest")
    path = _blob_path(digest)
    size = tar.size(path)
    if desc.get("size") is not None and desc["size"] != size:
        raise ArchiveError(f"blob {digest} is {size} bytes but its descriptor says {desc['size']}")
    return Blob(digest=digest, size=size, member=path, media_type=desc.get("mediaType", ""))


def _read_oci_manifest(tar: _Tar, desc: dict, depth: int = 0) -> tuple[Manifest, dict]:
    if depth > 2:
        raise ArchiveError("image indexes nested too deeply")
    path = _blob_path(desc.get("digest"))
    raw, doc = tar.read_json(path)
    if "sha256:" + hashlib.sha256(raw).hexdigest() != desc["digest"]:
        raise ArchiveError(f"manifest {desc['digest']} does not match its digest")
    media_type = doc.get("mediaType") or desc.get("mediaType") or (OCI_INDEX if "manifests" in doc else OCI_MANIFEST)
    if media_type in INDEX_TYPES or "manifests" in doc:
        children, config = [], None
        for child in doc.get("manifests") or []:
            m, c = _read_oci_manifest(tar, child, depth + 1)
            children.append(m)
            config = config or c
        if not children:
            raise ArchiveError("the image index lists no manifest")
        return Manifest(media_type, raw, children=children), config or {}
    if "config" not in doc or "layers" not in doc:
        raise ArchiveError(f"manifest {desc['digest']} has no config or layers")
    config_blob = _descriptor_blob(tar, doc["config"])
    blobs = [config_blob] + [_descriptor_blob(tar, layer) for layer in doc["layers"]]
    _, config = tar.read_json(config_blob.member, limit=16 << 20)
    return Manifest(media_type, raw, blobs=blobs), config if isinstance(config, dict) else {}


def _read_docker_save(tar: _Tar) -> tuple[Manifest, dict]:
    _, entries = tar.read_json("manifest.json")
    if not isinstance(entries, list) or not entries or not isinstance(entries[0], dict):
        raise ArchiveError("manifest.json does not list an image")
    entry = entries[0]
    config_name = entry.get("Config")
    layers = entry.get("Layers") or []
    if not isinstance(config_name, str) or not isinstance(layers, list):
        raise ArchiveError("manifest.json lacks Config or Layers")
    config_raw, config = tar.read_json(config_name, limit=16 << 20)
    config_blob = Blob("sha256:" + hashlib.sha256(config_raw).hexdigest(), len(config_raw), config_name, OCI_CONFIG)
    blobs = [config_blob]
    for layer in layers:
        if not isinstance(layer, str):
            raise ArchiveError("manifest.json names a layer that is not a path")
        gz = tar.head(layer) == b"\x1f\x8b"
        blobs.append(Blob(tar.sha256(layer), tar.size(layer), layer, OCI_LAYER_GZIP if gz else OCI_LAYER))
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_blob.digest, "size": config_blob.size},
        "layers": [{"mediaType": b.media_type, "digest": b.digest, "size": b.size} for b in blobs[1:]],
    }
    raw = json.dumps(doc, separators=(",", ":")).encode()
    return Manifest(OCI_MANIFEST, raw, blobs=blobs), config if isinstance(config, dict) else {}


def read_archive(tf: tarfile.TarFile) -> ImageArchive:
    """Find the image in an uploaded tar (OCI layout first, then docker save)."""
    try:
        tar = _Tar(tf)
        if tar.has("index.json") and tar.has("oci-layout"):
            _, index = tar.read_json("index.json")
            manifests = index.get("manifests") if isinstance(index, dict) else None
            if not manifests:
                raise ArchiveError("index.json lists no manifest")
            if len(manifests) > 1:
                manifest_raw = tar.read_json("index.json")[0]
                # several images: push the index itself (children first)
                children, config = [], {}
                for child in manifests:
                    m, c = _read_oci_manifest(tar, child)
                    children.append(m)
                    config = config or c
                return ImageArchive(Manifest(OCI_INDEX, manifest_raw, children=children), config)
            manifest, config = _read_oci_manifest(tar, manifests[0])
            return ImageArchive(manifest, config)
        if tar.has("manifest.json"):
            manifest, config = _read_docker_save(tar)
            return ImageArchive(manifest, config)
        raise ArchiveError("neither an OCI image layout (oci-layout, index.json) nor a `docker save` archive (manifest.json)")
    except (tarfile.TarError, KeyError, EOFError, gzip.BadGzipFile) as exc:
        raise ArchiveError(f"not a readable image archive ({exc})") from None


class _OriginBasicAuth(httpx.Auth):
    """HTTP Basic auth on every request to one origin (scheme, host, port), and on no other.

    Sent up front rather than after a 401 challenge: a blob upload streams its
    body, which cannot be sent a second time. The upload URLs the registry
    answers (``Location``) are on its own origin and so carry it too; a URL on
    another origin (a Location or redirect naming another host) gets no
    credentials, so a registry cannot hand them on.
    """

    def __init__(self, url: str, user: str, password: str):
        if ":" in user:
            raise ValueError("the OCI registry user name must not contain ':' (HTTP Basic auth)")
        self._origin = self._key(httpx.URL(url))
        self._header = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    @staticmethod
    def _key(url: httpx.URL) -> tuple:
        return url.scheme, url.host, url.port or {"http": 80, "https": 443}.get(url.scheme)

    def auth_flow(self, request: httpx.Request):
        if self._key(request.url) == self._origin:
            request.headers["Authorization"] = self._header
        yield request


class OciRegistry:
    """A client of one OCI registry (distribution API v2), used from worker threads.

    ``credentials`` (user, password), when given, go with every request to the
    registry as HTTP Basic auth; see ``RegistrySettings.oci_credentials`` for
    where they come from. They are never put in a URL or a message.
    """

    def __init__(self, url: str, timeout: float = 300.0, credentials: tuple[str, str] | None = None):
        self.url = url.rstrip("/")
        self.host = urlparse(self.url).netloc
        auth = _OriginBasicAuth(self.url, *credentials) if credentials else None
        self._authenticated = auth is not None
        self._http = httpx.Client(base_url=self.url, timeout=timeout, follow_redirects=False, auth=auth)

    def close(self) -> None:
        self._http.close()

    def reference(self, repository: str, tag: str) -> str:
        return f"{self.host}/{repository}:{tag}"

    def _check(self, resp: httpx.Response, what: str, ok: tuple[int, ...]) -> httpx.Response:
        if resp.status_code == 401 and 401 not in ok:
            if self._authenticated:
                why = "refused this service's credentials"
            else:
                why = "requires credentials (FLIGHTBASE_OCI_REGISTRY_USERNAME, FLIGHTBASE_OCI_REGISTRY_PASSWORD_FILE)"
            raise PushError(f"{what}: the OCI registry at {self.url} {why} (401)")
        if resp.status_code not in ok:
            detail = resp.text[:300].strip()
            raise PushError(f"{what}: the OCI registry answered {resp.status_code} {detail}")
        return resp

    def blob_exists(self, repository: str, digest: str) -> bool:
        return self._http.head(f"/v2/{repository}/blobs/{digest}").status_code == 200

    def push_blob(self, repository: str, blob: Blob, data: Iterator[bytes]) -> None:
        if self.blob_exists(repository, blob.digest):
            return
        start = self._check(self._http.post(f"/v2/{repository}/blobs/uploads/"), f"start upload of {blob.digest}", (202,))
        location = start.headers.get("location")
        if not location:
            raise PushError("the OCI registry gave no upload location")
        location = urljoin(self.url + "/", location)
        sep = "&" if "?" in location else "?"
        self._check(
            self._http.put(f"{location}{sep}digest={blob.digest}", content=data,
                           headers={"Content-Type": "application/octet-stream", "Content-Length": str(blob.size)}),
            f"upload of blob {blob.digest}", (201,),
        )

    def push_manifest(self, repository: str, reference: str, manifest: Manifest) -> str:
        resp = self._check(
            self._http.put(f"/v2/{repository}/manifests/{reference}", content=manifest.raw,
                           headers={"Content-Type": manifest.media_type}),
            f"manifest {reference}", (201,),
        )
        reported = resp.headers.get("docker-content-digest")
        if reported and reported != manifest.digest:
            raise PushError(f"the registry stored the manifest as {reported}, expected {manifest.digest}")
        return manifest.digest

    def push(self, tf: tarfile.TarFile, archive: ImageArchive, repository: str, tag: str) -> str:
        """Push blobs, then child manifests, then the manifest under ``tag``; return its digest."""
        tar = _Tar(tf)

        def push_all(m: Manifest, reference: str) -> str:
            for blob in m.blobs:
                self.push_blob(repository, blob, tar.stream(blob.member))
            for child in m.children:
                push_all(child, child.digest)
            return self.push_manifest(repository, reference, m)

        try:
            return push_all(archive.manifest, tag)
        except httpx.HTTPError as exc:
            raise PushError(f"cannot reach the OCI registry at {self.url}: {exc}") from None

    def config_digest(self, repository: str, tag: str) -> str | None:
        """The digest of the image config that ``repository:tag`` names (an image's id), None if there is none."""
        try:
            resp = self._http.get(f"/v2/{repository}/manifests/{tag}",
                                  headers={"Accept": f"{OCI_MANIFEST}, {DOCKER_MANIFEST}"})
        except httpx.HTTPError as exc:
            raise PushError(f"cannot reach the OCI registry at {self.url}: {exc}") from None
        if resp.status_code == 404:
            return None
        self._check(resp, f"manifest {repository}:{tag}", (200,))
        try:
            return resp.json()["config"]["digest"]
        except (ValueError, KeyError, TypeError):
            return None

    def delete_manifest(self, repository: str, digest: str) -> bool:
        """Delete a manifest (and so the tags naming it) by digest; False if it was already gone.

        Registries refuse deletes unless configured to allow them
        (distribution: ``storage.delete.enabled``); that refusal, like any
        other, raises :class:`PushError`. The layers are freed by the
        registry's garbage collection, not here. See
        https://github.com/opencontainers/distribution-spec/blob/main/spec.md#deleting-manifests
        """
        if not DIGEST_RE.match(digest):
            raise ValueError(f"not a manifest digest: {digest!r}")
        try:
            resp = self._http.delete(f"/v2/{repository}/manifests/{digest}")
        except httpx.HTTPError as exc:
            raise PushError(f"cannot reach the OCI registry at {self.url}: {exc}") from None
        if resp.status_code == 404:
            return False
        if resp.status_code == 405:
            raise PushError(f"the OCI registry at {self.url} does not allow deletes "
                            "(distribution: set storage.delete.enabled: true)")
        self._check(resp, f"delete of manifest {digest}", (200, 202))
        return True

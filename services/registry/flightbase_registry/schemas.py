"""Request and response bodies of the registry API: one typed definition each."""

from __future__ import annotations

import datetime as dt
import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,127}$"
# registry/name:tag or name@sha256:digest, as the OCI distribution spec spells them
REFERENCE_RE = re.compile(
    r"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$"
)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatasetCreate(Strict):
    name: str = Field(pattern=NAME_PATTERN)
    description: str = Field(default="", max_length=2000)


class DatasetOut(BaseModel):
    id: str
    workspace: str
    name: str
    description: str
    created_by: str
    created_at: dt.datetime
    latest_version: int | None = Field(default=None, description="Number of the newest version; None before the first upload")
    versions: int = Field(default=0, description="How many versions exist")
    size_bytes: int = Field(default=0, description="Bytes of all versions together (what counts against the quota)")


SHA256_PATTERN = r"^[a-f0-9]{64}$"


class UploadFile(Strict):
    path: str = Field(max_length=4096, description="Where the file goes in the version: a relative path like 'train/a.csv'")
    size: int = Field(ge=0, description="Size in bytes; the upload is complete when this many bytes arrived")
    sha256: str | None = Field(default=None, pattern=SHA256_PATTERN, description="Hex SHA-256 of the file; checked when its last byte arrives")
    extract: bool = Field(default=False, description="Extract this archive (.zip, .tar.gz, .tgz, .tar) into its folder at commit")


class UploadCreate(Strict):
    files: list[UploadFile] = Field(min_length=1, description="Every file of the new version")
    message: str = Field(default="", max_length=2000, description="What changed in this version")


class UploadFileOut(BaseModel):
    index: int
    path: str
    size: int
    sha256: str | None
    extract: bool
    offset: int = Field(description="Bytes received so far; send the next chunk at this offset")
    complete: bool


class UploadOut(BaseModel):
    id: str
    workspace: str
    dataset: str
    files: list[UploadFileOut]
    total_bytes: int
    received_bytes: int
    message: str
    created_by: str
    created_at: dt.datetime


class DirectOut(BaseModel):
    url: str = Field(description="The upload's data URL on the registry's data endpoint; send chunks to {url}/files/{index}?offset=N")
    token: str = Field(description="The data ticket: 'Authorization: Bearer <token>' on each chunk; for this upload only")
    expires_at: dt.datetime = Field(description="When the ticket stops working (ask again for a new one)")


class FileEntry(BaseModel):
    path: str
    size: int
    sha256: str


class VersionOut(BaseModel):
    workspace: str
    dataset: str
    version: int
    size_bytes: int
    file_count: int
    message: str
    created_by: str
    created_at: dt.datetime
    in_use_by: list[str] = Field(description="Job ids that use this version; it cannot be deleted meanwhile")


class VersionDetail(VersionOut):
    files: list[FileEntry]


class MountOut(BaseModel):
    workspace: str
    dataset: str
    version: int
    path: str = Field(description="Folder on the service's host holding the immutable version (read-only files)")
    mount_at: str = Field(description="Where trainings and notebooks see it: /datasets/<name>")
    read_only: bool = True


class VersionUseOut(BaseModel):
    workspace: str
    dataset: str
    version: int
    job_id: str
    marked_by: str
    marked_at: dt.datetime


class StorageOut(BaseModel):
    workspace: str
    quota_gb: float | None = Field(description="The workspace's storage_quota_gb; None: no limit")
    quota_bytes: int | None
    used_bytes: int = Field(description="Dataset versions plus uploaded images")
    datasets_bytes: int
    images_bytes: int
    reserved_bytes: int = Field(description="Declared by uploads in progress (held until they commit or are cancelled)")
    available_bytes: int | None


class ImageCreate(Strict):
    name: str = Field(pattern=NAME_PATTERN)
    reference: str = Field(max_length=512, description="registry/name:tag or name@sha256:<digest>")
    description: str = Field(default="", max_length=2000)
    frameworks: list[str] = Field(default_factory=list)

    @field_validator("reference")
    @classmethod
    def _reference(cls, value: str) -> str:
        if not REFERENCE_RE.match(value):
            raise ValueError("not an image reference (expected registry/name:tag or name@sha256:<64 hex>)")
        return value


class ImageOut(BaseModel):
    id: str
    workspace: str | None = Field(description="None for the built-in images every workspace sees")
    name: str
    reference: str
    description: str
    frameworks: list[str]
    builtin: bool
    created_by: str
    created_at: dt.datetime | None
    runs_as: str = Field(description="How the image runs in this deployment")
    tag: str | None = Field(default=None, description="Tag of an uploaded image")
    digest: str | None = Field(default=None, description="Manifest digest of an uploaded image in the platform's registry")
    size_bytes: int | None = Field(default=None, description="Bytes of an uploaded image (config and layers)")
    source: str = Field(default="reference", description="builtin, reference (registered by name) or upload")


# An OCI repository path component: what may follow "<workspace>/" in the platform's registry.
OCI_NAME_PATTERN = r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$"
TAG_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"


class ImageUpload(Strict):
    """Query parameters of an image upload (the body is the archive)."""

    name: str = Field(pattern=OCI_NAME_PATTERN, max_length=128, description="Image name in the workspace")
    tag: str = Field(default="latest", pattern=TAG_PATTERN)
    description: str = Field(default="", max_length=2000, description="Default: the image's org.opencontainers.image.description label")
    frameworks: list[str] = Field(default_factory=list, description="Default: the image's ai.flightbase.frameworks label (comma-separated)")

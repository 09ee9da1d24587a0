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

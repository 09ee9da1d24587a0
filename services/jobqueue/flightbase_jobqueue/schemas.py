"""Request and response bodies of the jobqueue API: one typed definition each.

The OpenAPI document (``/services/jobqueue/api/v1/openapi.json``) is generated
from these.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from flightbase.workspaces import check_workspace_name

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GpuOut(BaseModel):
    index: int
    kind: Literal["gpu", "cpu-slot"]
    name: str
    memory_bytes: int = 0


class InfoOut(BaseModel):
    version: str
    deployment: str
    gpu_kind: Literal["gpu", "cpu-slot", "none"]
    gpus: list[GpuOut]
    scheduler_policy: str
    user: str
    admin: bool


class NodeOut(BaseModel):
    name: str
    gpu_kind: Literal["gpu", "cpu-slot", "none"]
    gpus: list[GpuOut]
    schedulable: bool = True
    labels: dict[str, str] = Field(default_factory=dict)


class WorkspaceCreate(Strict):
    name: str = Field(description="Workspace (hub group) name")
    settings: dict[str, Any] = Field(default_factory=dict, description="Initial settings; see WorkspaceSettings")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        why = check_workspace_name(value)
        if why:
            raise ValueError(why)
        return value


class WorkspaceOut(BaseModel):
    name: str
    members: list[str]
    managers: list[str]
    settings: dict[str, Any] | None
    settings_errors: dict[str, str]
    permissions: list[str] = Field(description="What the caller may do here, as flightbase permissions")


class TrainingCreate(Strict):
    workspace: str
    name: str = Field(pattern=NAME_PATTERN)
    description: str = Field(default="", max_length=2000)
    command: list[str] = Field(min_length=1, description="Entry point and arguments")
    gpus: int = Field(default=1, ge=1, le=4096)
    launcher: Literal["horovod", "torchrun", "mpi", "none"] = "none"
    image: str = Field(default="flightbase/training-base", max_length=512)
    env: dict[str, str] = Field(default_factory=dict)

    @field_validator("command")
    @classmethod
    def _command(cls, value: list[str]) -> list[str]:
        if not value[0].strip():
            raise ValueError("the entry point must not be empty")
        return value


class OwnersUpdate(Strict):
    owners: list[str] = Field(min_length=1)


class TrainingOut(BaseModel):
    id: str
    workspace: str
    name: str
    description: str
    kind: str
    created_by: str
    created_at: dt.datetime
    owners: list[str]
    state: str
    spec: dict[str, Any]

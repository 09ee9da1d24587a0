"""Workspace settings: the schema of a workspace's JupyterHub group properties.

A workspace is a JupyterHub group; its settings live in the group's
``properties``. People edit them through the Flightbase API (validated before
they are written) or directly in the hub's admin panel, which stores every
value as the string that was typed. So the schema accepts the typed value and
its string spelling ("8", "a, b", "2026-12-31"), and a bad value found in the
hub is reported with the field and the reason wherever the workspace is used,
never silently ignored.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

WORKSPACE_NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")


def check_workspace_name(name: str) -> str | None:
    """Return why ``name`` is not a valid workspace name, or None."""
    if not WORKSPACE_NAME_RE.match(name or ""):
        return (
            "must be 1-40 characters of lower-case letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    return None


def _none_if_blank(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() in ("", "none", "null"):
        return None
    return value


class WorkspaceSettings(BaseModel):
    """The settings of one workspace. Every field is optional; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")

    gpu_quota: int | None = Field(
        default=None,
        ge=0,
        description="GPUs the workspace is guaranteed (notebooks and trainings together). "
        "None: no quota, the workspace may use any free GPU.",
    )
    max_gpus_per_job: int | None = Field(
        default=None, ge=1, description="Most GPUs one training job may ask for. None: no limit."
    )
    storage_quota_gb: float | None = Field(
        default=None, gt=0, description="Storage for datasets and images, in GB. None: no limit."
    )
    allowed_images: list[str] = Field(
        default_factory=list,
        description="Image names members may use. Empty: the built-in images and the workspace's own.",
    )
    managers: list[str] = Field(
        default_factory=list, description="Users who manage this workspace's members and settings."
    )
    start_date: dt.date | None = Field(default=None, description="First day the workspace may run work.")
    end_date: dt.date | None = Field(default=None, description="Last day the workspace may run work.")
    allow_borrowing: bool = Field(
        default=True, description="Whether the workspace may use idle GPUs above its quota (reclaimable)."
    )
    borrowing_limit: int | None = Field(
        default=None, ge=0, description="Most GPUs the workspace may borrow above its quota when borrowing "
        "(Kueue's borrowingLimit: it holds at most gpu_quota + borrowing_limit GPUs in all). None: no limit; "
        "ignored without a gpu_quota or when allow_borrowing is off."
    )
    fairshare_weight: float = Field(default=1.0, gt=0, description="Weight in fair-share scheduling.")
    memory_gb_per_gpu: float = Field(
        default=8, gt=0, description="Memory limit of a job's or notebook's container, in GB per GPU (or CPU slot) it "
        "holds; a notebook without a GPU counts as one. A container over its limit is killed and its job reported as "
        "out of memory. Applies where work runs in containers (the docker backend)."
    )
    idle_timeout_minutes: float = Field(
        default=60, gt=0, description="Minutes a GPU notebook may sit idle before it is stopped (after a "
        "warning at 80%); fractions are allowed."
    )

    @field_validator(
        "gpu_quota", "max_gpus_per_job", "storage_quota_gb", "start_date", "end_date", "borrowing_limit",
        mode="before"
    )
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return _none_if_blank(value)

    @field_validator("allowed_images", "managers", mode="before")
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        if value is None:
            return []
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _dates_in_order(self) -> "WorkspaceSettings":
        if self.start_date and self.end_date and self.end_date < self.start_date:
            raise ValueError("end_date: must not be before start_date")
        return self

    def to_properties(self) -> dict[str, Any]:
        """The JSON-friendly form stored in the group's properties."""
        return self.model_dump(mode="json")

    def is_active(self, today: dt.date) -> str | None:
        """Return why the workspace may not run work on ``today``, or None."""
        if self.start_date and today < self.start_date:
            return f"the workspace starts on {self.start_date.isoformat()}"
        if self.end_date and today > self.end_date:
            return f"the workspace ended on {self.end_date.isoformat()}"
        return None


class SettingsError(ValueError):
    """Settings that do not validate; ``errors`` maps each field to its reason."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{field}: {reason}" for field, reason in errors.items()))


def _errors_from(exc: ValidationError) -> dict[str, str]:
    errors: dict[str, str] = {}
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "settings"
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown setting"
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
            if ": " in message and not err["loc"]:
                field, message = message.split(": ", 1)
        errors[field] = message
    return errors


def parse_settings(properties: dict[str, Any]) -> WorkspaceSettings:
    """Validate group properties (or a settings patch merged onto them).

    Raises SettingsError naming every bad field.
    """
    try:
        return WorkspaceSettings.model_validate(properties or {})
    except ValidationError as exc:
        raise SettingsError(_errors_from(exc)) from None


def settings_schema() -> dict[str, Any]:
    return WorkspaceSettings.model_json_schema()

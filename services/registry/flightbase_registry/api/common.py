"""The version lookup and the storage account shared by the dataset, upload and image routes."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from flightbase_server.service.errors import ApiError
from flightbase_server.service.hub import Workspace
from flightbase_registry.models import Dataset, DatasetVersion, Image, Upload

GB = 1_000_000_000
VERSION_PATTERN = r"^(latest|[0-9]{1,9})$"



def find_version(session: Session, dataset: Dataset, version: str) -> DatasetVersion:
    """``version`` is a number or ``latest``; 404 when there is no such version."""
    stmt = select(DatasetVersion).where(DatasetVersion.dataset_id == dataset.id)
    if version == "latest":
        row = session.scalars(stmt.order_by(DatasetVersion.number.desc()).limit(1)).first()
        if row is None:
            raise ApiError(404, f"dataset {dataset.name!r} has no version yet; upload one first", field="version")
        return row
    row = session.scalars(stmt.where(DatasetVersion.number == int(version))).first()
    if row is None:
        raise ApiError(404, f"version {version} of dataset {dataset.name!r} not found", field="version")
    return row


@dataclass
class Usage:
    quota_bytes: int | None
    datasets_bytes: int
    images_bytes: int
    reserved_bytes: int

    @property
    def used_bytes(self) -> int:
        return self.datasets_bytes + self.images_bytes

    @property
    def available_bytes(self) -> int | None:
        if self.quota_bytes is None:
            return None
        return max(0, self.quota_bytes - self.used_bytes - self.reserved_bytes)


def quota_bytes(ws: Workspace) -> int | None:
    if ws.settings is None or ws.settings.storage_quota_gb is None:
        return None
    return int(ws.settings.storage_quota_gb * GB)


def usage(session: Session, ws: Workspace, *, except_upload: str | None = None) -> Usage:
    name = ws.name
    datasets = session.scalar(select(func.coalesce(func.sum(DatasetVersion.size_bytes), 0)).where(DatasetVersion.workspace == name))
    images = session.scalar(select(func.coalesce(func.sum(Image.size_bytes), 0)).where(Image.workspace == name))
    reserved_q = select(func.coalesce(func.sum(Upload.total_bytes), 0)).where(Upload.workspace == name)
    if except_upload:
        reserved_q = reserved_q.where(Upload.id != except_upload)
    return Usage(quota_bytes(ws), int(datasets or 0), int(images or 0), int(session.scalar(reserved_q) or 0))


def refuse_over_quota(u: Usage, more: int, field: str, what: str) -> None:
    """413 when ``more`` bytes do not fit in what the quota leaves."""
    if u.quota_bytes is None or more <= (u.available_bytes or 0):
        return
    raise ApiError(
        413,
        f"{what} needs {more} bytes but the workspace's storage quota leaves {u.available_bytes} "
        f"(quota {u.quota_bytes}, used {u.used_bytes}, held by uploads in progress {u.reserved_bytes}); "
        "delete old versions or ask a manager to raise storage_quota_gb",
        field=field,
    )

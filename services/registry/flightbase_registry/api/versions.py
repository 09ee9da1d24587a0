"""Dataset versions: list, read, download, delete, mount, and mark in use by a job.

A version is immutable once published. The jobqueue marks the versions its
running jobs use (``PUT .../uses/{job_id}``) and unmarks them when the job
ends; a marked version (or its dataset) cannot be deleted. ``.../mount``
resolves ``latest`` or a number to the folder the spawner and the jobqueue
mount read-only at ``/datasets/<name>``.
"""

from __future__ import annotations

import tarfile
import uuid
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Path as PathParam, Request, Response
from fastapi.responses import FileResponse, StreamingResponse
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from flightbase_server.service.access import InWorkspace, Level, workspace as in_workspace
from flightbase_server.service.deps import in_session
from flightbase_server.service.errors import ApiError
from flightbase import archives
from flightbase_registry import storage
from flightbase_registry.api import access
from flightbase_registry.api.access import Found, ReadDataset, WriteDataset
from flightbase_registry.api.common import VERSION_PATTERN, find_version, usage
from flightbase_registry.models import DatasetVersion, DatasetVersionUse
from flightbase_registry.schemas import FileEntry, MountOut, StorageOut, VersionDetail, VersionOut, VersionUseOut

router = APIRouter(tags=["datasets"])

BASE = "/workspaces/{workspace}/datasets/{name}/versions"
Version = PathParam(pattern=VERSION_PATTERN, description="A version number, or 'latest'")
JOB_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"


def version_out(session, v: DatasetVersion, dataset: str, detail: bool = False) -> VersionOut:
    uses = sorted(session.scalars(select(DatasetVersionUse.job_id).where(DatasetVersionUse.version_id == v.id)))
    fields = dict(workspace=v.workspace, dataset=dataset, version=v.number, size_bytes=v.size_bytes,
                  file_count=v.file_count, message=v.message or "", created_by=v.created_by,
                  created_at=v.created_at, in_use_by=uses)
    if detail:
        return VersionDetail(**fields, files=[FileEntry(**m) for m in v.manifest or []])
    return VersionOut(**fields)


@router.get(BASE, response_model=list[VersionOut])
async def list_versions(request: Request, d: ReadDataset):
    dataset, name = d.row, d.row.name

    def work(session):
        stmt = select(DatasetVersion).where(DatasetVersion.dataset_id == dataset.id).order_by(DatasetVersion.number.desc())
        return [version_out(session, v, name) for v in session.scalars(stmt)]

    return await in_session(request, work)


@router.get(BASE + "/{version}", response_model=VersionDetail)
async def get_version(request: Request, d: ReadDataset, version: str = Version):
    """One version with the list of its files (path, size, sha256)."""
    dataset, name = d.row, d.row.name
    return await in_session(request, lambda s: version_out(s, find_version(s, dataset, version), name, detail=True))


@router.get(BASE + "/{version}/mount", response_model=MountOut)
async def mount_version(request: Request, d: ReadDataset, version: str = Version):
    """Resolve (workspace, dataset, number or latest) to the folder holding that immutable version."""
    workspace, name, dataset = d.ws.name, d.row.name, d.row
    v = await in_session(request, lambda s: find_version(s, dataset, version))
    path = storage.version_dir(request.app.state.settings.data_dir, workspace, name, v.number)
    return MountOut(workspace=workspace, dataset=name, version=v.number, path=str(path), mount_at=f"/datasets/{name}")


@router.get(BASE + "/{version}/files/{path:path}", response_class=FileResponse,
            responses={200: {"content": {"application/octet-stream": {}}}})
async def download_file(request: Request, d: ReadDataset, path: str,
                        version: str = Version):
    """One file of a version."""
    workspace, name, dataset = d.ws.name, d.row.name, d.row
    v = await in_session(request, lambda s: find_version(s, dataset, version))
    why = archives.path_problem(path)
    if why or path not in {m["path"] for m in v.manifest or []}:
        raise ApiError(404, f"version {v.number} of dataset {name!r} has no file {path!r}", field="path")
    target = storage.version_dir(request.app.state.settings.data_dir, workspace, name, v.number) / path
    return FileResponse(target, media_type="application/octet-stream", filename=Path(path).name)


def _tar_stream(root: Path, manifest: list[dict], prefix: str):
    """An uncompressed tar of a version, generated as it is sent (no temporary file)."""
    for entry in manifest:
        info = tarfile.TarInfo(f"{prefix}/{entry['path']}")
        info.size = entry["size"]
        info.mode = 0o444
        yield info.tobuf(format=tarfile.PAX_FORMAT)
        with open(root / entry["path"], "rb") as fh:
            while block := fh.read(1 << 20):
                yield block
        if entry["size"] % tarfile.BLOCKSIZE:
            yield tarfile.NUL * (tarfile.BLOCKSIZE - entry["size"] % tarfile.BLOCKSIZE)
    yield tarfile.NUL * (tarfile.BLOCKSIZE * 2)


@router.get(BASE + "/{version}/archive", response_class=StreamingResponse,
            responses={200: {"content": {"application/x-tar": {}}}})
async def download_version(request: Request, d: ReadDataset,
                           version: str = Version):
    """The whole version as a tar stream (folder ``<name>-v<number>/``)."""
    workspace, name, dataset = d.ws.name, d.row.name, d.row
    v = await in_session(request, lambda s: find_version(s, dataset, version))
    root = storage.version_dir(request.app.state.settings.data_dir, workspace, name, v.number)
    prefix = f"{name}-v{v.number}"
    return StreamingResponse(_tar_stream(root, list(v.manifest or []), prefix), media_type="application/x-tar",
                             headers={"Content-Disposition": f'attachment; filename="{prefix}.tar"'})


@router.delete(BASE + "/{version}", status_code=204)
async def delete_version(request: Request,
                         d: Annotated[Found, access.dataset_version(Level.MANAGER, "datasets:delete")]):
    """Delete one version (workspace managers); refused while a job uses it."""
    dataset, workspace, name, version = d.row, d.ws.name, d.row.name, str(d.version.number)
    data_dir = request.app.state.settings.data_dir

    def delete(session):
        v = find_version(session, dataset, version)
        uses = sorted(session.scalars(select(DatasetVersionUse.job_id).where(DatasetVersionUse.version_id == v.id)))
        if uses:
            raise ApiError(409, f"version {v.number} of dataset {name!r} is in use by job(s) {', '.join(uses)}; "
                           "delete it when they have finished", field="version")
        session.delete(v)
        session.flush()
        # out of sight first (one rename), then removed: a reader sees the whole version or none
        doomed = storage.uploads_root(data_dir) / f"deleted-{uuid.uuid4().hex}"
        doomed.parent.mkdir(parents=True, exist_ok=True)
        storage.move_dir(storage.version_dir(data_dir, workspace, name, v.number), doomed)
        return doomed

    doomed = await in_session(request, delete)
    await run_in_threadpool(storage.remove_tree, doomed)
    return Response(status_code=204)


@router.put(BASE + "/{version}/uses/{job_id}", response_model=VersionUseOut)
async def mark_in_use(request: Request, d: WriteDataset,
                      job_id: str = PathParam(pattern=JOB_ID_PATTERN), version: str = Version):
    """Mark a version as used by a job (the jobqueue calls this when a job starts; idempotent)."""
    identity, workspace, name, dataset = d.identity, d.ws.name, d.row.name, d.row

    def mark(session):
        v = find_version(session, dataset, version)
        use = session.get(DatasetVersionUse, (v.id, job_id))
        if use is None:
            use = DatasetVersionUse(version_id=v.id, job_id=job_id, marked_by=identity.name)
            session.add(use)
            session.flush()
        return VersionUseOut(workspace=workspace, dataset=name, version=v.number, job_id=job_id,
                             marked_by=use.marked_by, marked_at=use.marked_at)

    return await in_session(request, mark)


@router.delete(BASE + "/{version}/uses/{job_id}", status_code=204)
async def unmark_in_use(request: Request, d: WriteDataset,
                        job_id: str = PathParam(pattern=JOB_ID_PATTERN), version: str = Version):
    """Unmark a version (the jobqueue calls this when the job has ended; idempotent)."""
    dataset = d.row

    def unmark(session):
        v = find_version(session, dataset, version)
        use = session.get(DatasetVersionUse, (v.id, job_id))
        if use is not None:
            session.delete(use)

    await in_session(request, unmark)
    return Response(status_code=204)


@router.get("/workspaces/{workspace}/storage", response_model=StorageOut, tags=["datasets", "images"])
async def storage_usage(request: Request, w: Annotated[InWorkspace, in_workspace(Level.MEMBER, "datasets:read")]):
    """What the workspace stores against its storage_quota_gb."""
    ws, workspace = w.ws, w.ws.name
    u = await in_session(request, lambda s: usage(s, ws))
    quota_gb = ws.settings.storage_quota_gb if ws.settings else None
    return StorageOut(workspace=workspace, quota_gb=quota_gb, quota_bytes=u.quota_bytes, used_bytes=u.used_bytes,
                      datasets_bytes=u.datasets_bytes, images_bytes=u.images_bytes, reserved_bytes=u.reserved_bytes,
                      available_bytes=u.available_bytes)

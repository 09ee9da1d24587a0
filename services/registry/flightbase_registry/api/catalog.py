"""Datasets and images of a workspace: create, list, read, delete.

Members read and add; managers delete (an uploaded image's manifest is
deleted from the OCI registry too); outsiders get 404. Uploads live in
:mod:`.uploads` (datasets) and :mod:`.image_uploads`, versions in :mod:`.versions`.
"""

from __future__ import annotations

import logging
import os
import uuid
from typing import Annotated

from fastapi import APIRouter, Request, Response
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool
from sqlalchemy.exc import IntegrityError

from flightbase_server.service.access import InWorkspace, Level, workspace as in_workspace
from flightbase_server.service.deps import in_session
from flightbase_server.service.errors import ApiError
from flightbase_registry import storage
from flightbase_registry.api import access
from flightbase_registry.api.access import Found
from flightbase_registry.builtin import BUILTIN_IMAGES, runs_as
from flightbase_registry.models import Dataset, DatasetVersion, DatasetVersionUse, Image, Upload
from flightbase_registry.oci import OciRegistry, PushError
from flightbase_registry.schemas import DatasetCreate, DatasetOut, ImageCreate, ImageOut

router = APIRouter(tags=["datasets", "images"])
log = logging.getLogger("flightbase.registry")


def dataset_out(d: Dataset, session=None) -> DatasetOut:
    extra = {}
    if session is not None:
        latest, count, size = session.execute(
            select(func.max(DatasetVersion.number), func.count(DatasetVersion.id),
                   func.coalesce(func.sum(DatasetVersion.size_bytes), 0)).where(DatasetVersion.dataset_id == d.id)
        ).one()
        extra = dict(latest_version=latest, versions=count, size_bytes=int(size or 0))
    return DatasetOut(id=d.id, workspace=d.workspace, name=d.name, description=d.description or "",
                      created_by=d.created_by, created_at=d.created_at, **extra)


def image_out(i: Image, deployment: str) -> ImageOut:
    return ImageOut(id=i.id, workspace=i.workspace, name=i.name, reference=i.reference,
                    description=i.description or "", frameworks=list(i.frameworks or []), builtin=False,
                    created_by=i.created_by, created_at=i.created_at, runs_as=runs_as(deployment),
                    tag=i.tag, digest=i.digest, size_bytes=i.size_bytes,
                    source="upload" if i.digest else "reference")


async def _add(request: Request, row, what: str):
    def add(session):
        session.add(row)
        session.flush()
        return row

    try:
        return await in_session(request, add)
    except IntegrityError:
        raise ApiError(409, f"name: {what} {row.name!r} already exists in {row.workspace!r}", field="name") from None



@router.get("/workspaces/{workspace}/datasets", response_model=list[DatasetOut])
async def list_datasets(request: Request, w: Annotated[InWorkspace, in_workspace(Level.MEMBER, "datasets:read")]):
    stmt = select(Dataset).where(Dataset.workspace == w.ws.name).order_by(Dataset.name)
    return await in_session(request, lambda s: [dataset_out(d, s) for d in s.scalars(stmt)])


@router.post("/workspaces/{workspace}/datasets", response_model=DatasetOut, status_code=201)
async def create_dataset(request: Request, w: Annotated[InWorkspace, in_workspace(Level.MEMBER, "datasets:write")],
                         body: DatasetCreate):
    row = Dataset(id=uuid.uuid4().hex[:12], workspace=w.ws.name, name=body.name,
                  description=body.description, created_by=w.identity.name)
    return dataset_out(await _add(request, row, "dataset"))


@router.get("/workspaces/{workspace}/datasets/{name}", response_model=DatasetOut)
async def get_dataset(request: Request, d: Annotated[Found, access.dataset(Level.MEMBER, "datasets:read")]):
    found = d.row
    return await in_session(request, lambda s: dataset_out(s.get(Dataset, found.id), s))


@router.delete("/workspaces/{workspace}/datasets/{name}", status_code=204)
async def delete_dataset(request: Request, d: Annotated[Found, access.dataset(Level.MANAGER, "datasets:delete")]):
    found, workspace, name = d.row, d.ws.name, d.row.name
    data_dir = request.app.state.settings.data_dir

    def delete(session):
        in_use = sorted(session.scalars(
            select(DatasetVersionUse.job_id).join(DatasetVersion, DatasetVersion.id == DatasetVersionUse.version_id)
            .where(DatasetVersion.dataset_id == found.id)))
        if in_use:
            raise ApiError(409, f"dataset {name!r} is in use by job(s) {', '.join(in_use)}; delete it when they have finished",
                           field="name")
        uploads = list(session.scalars(select(Upload.id).where(Upload.dataset_id == found.id)))
        session.delete(session.get(Dataset, found.id))  # versions and uploads go with it (ON DELETE CASCADE)
        session.flush()
        doomed = []
        folder = storage.dataset_dir(data_dir, workspace, name)
        if folder.exists():  # out of sight in one rename, then removed
            doomed.append(storage.uploads_root(data_dir) / f"deleted-{uuid.uuid4().hex}")
            doomed[0].parent.mkdir(parents=True, exist_ok=True)
            os.rename(folder, doomed[0])
        return doomed + [storage.upload_dir(data_dir, u) for u in uploads]

    for path in await in_session(request, delete):
        await run_in_threadpool(storage.remove_tree, path)
    return Response(status_code=204)


@router.get("/workspaces/{workspace}/images", response_model=list[ImageOut])
async def list_images(request: Request, w: Annotated[InWorkspace, in_workspace(Level.MEMBER, "images:read")]):
    deployment = request.app.state.deployment
    stmt = select(Image).where(Image.workspace == w.ws.name).order_by(Image.name)
    own = await in_session(request, lambda s: [image_out(i, deployment) for i in s.scalars(stmt)])
    return [*(b.model_copy(update={"runs_as": runs_as(deployment)}) for b in BUILTIN_IMAGES), *own]


@router.post("/workspaces/{workspace}/images", response_model=ImageOut, status_code=201)
async def register_image(request: Request, w: Annotated[InWorkspace, in_workspace(Level.MEMBER, "images:write")],
                         body: ImageCreate):
    identity, workspace = w.identity, w.ws.name
    if any(b.name == body.name for b in BUILTIN_IMAGES):
        raise ApiError(409, f"name: {body.name!r} is a built-in image", field="name")
    row = Image(id=uuid.uuid4().hex[:12], workspace=workspace, name=body.name, reference=body.reference,
                description=body.description, frameworks=body.frameworks, created_by=identity.name)
    return image_out(await _add(request, row, "image"), request.app.state.deployment)


@router.get("/workspaces/{workspace}/images/{name}", response_model=ImageOut)
async def get_image(request: Request, i: Annotated[Found, access.image(Level.MEMBER, "images:read")]):
    if i.builtin is not None:
        return i.builtin.model_copy(update={"runs_as": runs_as(request.app.state.deployment)})
    return image_out(i.row, request.app.state.deployment)


@router.delete("/workspaces/{workspace}/images/{name}", status_code=204)
async def delete_image(request: Request, i: Annotated[Found, access.image(Level.MANAGER, "images:delete")]):
    if i.builtin is not None:
        raise ApiError(409, f"name: {i.builtin.name!r} is a built-in image and cannot be deleted", field="name")
    found, workspace, name = i.row, i.ws.name, i.row.name
    if found.digest:  # an uploaded image: its manifest goes too, before the row (a failure keeps both)
        oci: OciRegistry | None = request.app.state.oci
        if oci is None or not found.reference.startswith(oci.host + "/"):
            log.warning("image %s/%s was pushed to %s, not to the configured OCI registry; its manifest stays there",
                        workspace, name, found.reference)
        else:
            try:
                await run_in_threadpool(oci.delete_manifest, f"{workspace}/{name}", found.digest)
            except PushError as exc:
                raise ApiError(502, f"the image was not deleted: {exc}", field="name") from None
    await in_session(request, lambda s: s.delete(s.get(Image, found.id)))
    return Response(status_code=204)

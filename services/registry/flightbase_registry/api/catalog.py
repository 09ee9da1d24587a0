"""Datasets and images of a workspace (metadata; uploads come with the registry issue).

Members read and add; managers delete; outsiders get 404.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from flightbase.service.access import authorize
from flightbase.service.deps import CurrentIdentity, in_session
from flightbase.service.errors import ApiError, not_found
from flightbase_registry.builtin import BUILTIN_IMAGES, runs_as
from flightbase_registry.models import Dataset, Image
from flightbase_registry.schemas import DatasetCreate, DatasetOut, ImageCreate, ImageOut

router = APIRouter(tags=["datasets", "images"])


def dataset_out(d: Dataset) -> DatasetOut:
    return DatasetOut(id=d.id, workspace=d.workspace, name=d.name, description=d.description or "",
                      created_by=d.created_by, created_at=d.created_at)


def image_out(i: Image, deployment: str) -> ImageOut:
    return ImageOut(id=i.id, workspace=i.workspace, name=i.name, reference=i.reference,
                    description=i.description or "", frameworks=list(i.frameworks or []), builtin=False,
                    created_by=i.created_by, created_at=i.created_at, runs_as=runs_as(deployment))


async def _add(request: Request, row, what: str):
    def add(session):
        session.add(row)
        session.flush()
        return row

    try:
        return await in_session(request, add)
    except IntegrityError:
        raise ApiError(409, f"name: {what} {row.name!r} already exists in {row.workspace!r}", field="name") from None


async def _get(request: Request, model, workspace: str, name: str):
    def get(session):
        return session.scalars(select(model).where(model.workspace == workspace, model.name == name)).first()

    return await in_session(request, get)


@router.get("/workspaces/{workspace}/datasets", response_model=list[DatasetOut])
async def list_datasets(request: Request, identity: CurrentIdentity, workspace: str):
    await authorize(request, identity, workspace, "datasets:read")
    stmt = select(Dataset).where(Dataset.workspace == workspace).order_by(Dataset.name)
    return await in_session(request, lambda s: [dataset_out(d) for d in s.scalars(stmt)])


@router.post("/workspaces/{workspace}/datasets", response_model=DatasetOut, status_code=201)
async def create_dataset(request: Request, identity: CurrentIdentity, workspace: str, body: DatasetCreate):
    await authorize(request, identity, workspace, "datasets:write")
    row = Dataset(id=uuid.uuid4().hex[:12], workspace=workspace, name=body.name,
                  description=body.description, created_by=identity.name)
    return dataset_out(await _add(request, row, "dataset"))


@router.get("/workspaces/{workspace}/datasets/{name}", response_model=DatasetOut)
async def get_dataset(request: Request, identity: CurrentIdentity, workspace: str, name: str):
    await authorize(request, identity, workspace, "datasets:read")
    found = await _get(request, Dataset, workspace, name)
    if found is None:
        raise not_found(f"dataset {name!r}")
    return dataset_out(found)


@router.delete("/workspaces/{workspace}/datasets/{name}", status_code=204)
async def delete_dataset(request: Request, identity: CurrentIdentity, workspace: str, name: str):
    await authorize(request, identity, workspace, "datasets:read")
    found = await _get(request, Dataset, workspace, name)
    if found is None:
        raise not_found(f"dataset {name!r}")
    await authorize(request, identity, workspace, "datasets:delete")
    await in_session(request, lambda s: s.delete(s.get(Dataset, found.id)))
    return Response(status_code=204)


@router.get("/workspaces/{workspace}/images", response_model=list[ImageOut])
async def list_images(request: Request, identity: CurrentIdentity, workspace: str):
    await authorize(request, identity, workspace, "images:read")
    deployment = request.app.state.deployment
    stmt = select(Image).where(Image.workspace == workspace).order_by(Image.name)
    own = await in_session(request, lambda s: [image_out(i, deployment) for i in s.scalars(stmt)])
    return [*(b.model_copy(update={"runs_as": runs_as(deployment)}) for b in BUILTIN_IMAGES), *own]


@router.post("/workspaces/{workspace}/images", response_model=ImageOut, status_code=201)
async def register_image(request: Request, identity: CurrentIdentity, workspace: str, body: ImageCreate):
    await authorize(request, identity, workspace, "images:write")
    if any(b.name == body.name for b in BUILTIN_IMAGES):
        raise ApiError(409, f"name: {body.name!r} is a built-in image", field="name")
    row = Image(id=uuid.uuid4().hex[:12], workspace=workspace, name=body.name, reference=body.reference,
                description=body.description, frameworks=body.frameworks, created_by=identity.name)
    return image_out(await _add(request, row, "image"), request.app.state.deployment)


@router.get("/workspaces/{workspace}/images/{name}", response_model=ImageOut)
async def get_image(request: Request, identity: CurrentIdentity, workspace: str, name: str):
    await authorize(request, identity, workspace, "images:read")
    for b in BUILTIN_IMAGES:
        if b.name == name:
            return b.model_copy(update={"runs_as": runs_as(request.app.state.deployment)})
    found = await _get(request, Image, workspace, name)
    if found is None:
        raise not_found(f"image {name!r}")
    return image_out(found, request.app.state.deployment)


@router.delete("/workspaces/{workspace}/images/{name}", status_code=204)
async def delete_image(request: Request, identity: CurrentIdentity, workspace: str, name: str):
    await authorize(request, identity, workspace, "images:read")
    if any(b.name == name for b in BUILTIN_IMAGES):
        raise ApiError(409, f"name: {name!r} is a built-in image and cannot be deleted", field="name")
    found = await _get(request, Image, workspace, name)
    if found is None:
        raise not_found(f"image {name!r}")
    await authorize(request, identity, workspace, "images:delete")
    await in_session(request, lambda s: s.delete(s.get(Image, found.id)))
    return Response(status_code=204)

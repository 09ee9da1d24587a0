"""The registry's access levels on a dataset and an image named by the path.

Each factory declares the route's level (``flightbase_server.service.access.needs``) and resolves the
workspace and the object once: 404 for whoever may not see the workspace (as if it did not exist),
then 404 for an object that is not there, 403 for a member without the right.

- ``Level.MEMBER``: the permission in the workspace, then the object;
- ``Level.MANAGER`` (deleting): ``<kind>:read`` first, then the object (a name that is not there is
  a 404 for every member), then the manager action.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Path, Request
from sqlalchemy import select

from flightbase_server.authz import Identity
from flightbase_server.service.access import Level, authorize, needs
from flightbase_server.service.deps import CurrentIdentity, in_session
from flightbase_server.service.errors import not_found
from flightbase_server.service.hub import Workspace
from flightbase_registry.api.common import VERSION_PATTERN, find_version
from flightbase_registry.builtin import BUILTIN_IMAGES
from flightbase_registry.models import Dataset, Image


@dataclass
class Found:
    identity: Identity
    ws: Workspace
    row: Any  # the Dataset or Image row; None for a built-in image
    builtin: Any = None  # the built-in image of that name (ImageOut), which no route changes
    version: Any = None  # the DatasetVersion row (``dataset_version``)


def dataset(level: Level, permission: str):
    """The dataset ``{name}`` of ``{workspace}``: ``Found`` with its row."""

    async def resolve(request: Request, identity: CurrentIdentity, workspace: str, name: str) -> Found:
        return await _dataset(request, identity, level, permission, workspace, name)

    return needs(level, permission, resolve)


def dataset_version(level: Level, permission: str):
    """The version ``{version}`` (a number or ``latest``) of dataset ``{name}``: ``Found`` with
    the dataset's row and the version's; a version that is not there is a 404 before the manager check."""

    async def resolve(request: Request, identity: CurrentIdentity, workspace: str, name: str,
                      version: str = Path(pattern=VERSION_PATTERN, description="A version number, or 'latest'")) -> Found:
        return await _dataset(request, identity, level, permission, workspace, name, version)

    return needs(level, permission, resolve)


async def _dataset(request: Request, identity: Identity, level: Level, permission: str, workspace: str, name: str,
                   version: str | None = None) -> Found:
    ws = await authorize(request, identity, workspace, "datasets:read" if level is Level.MANAGER else permission)
    row = await _row(request, Dataset, workspace, name)
    if row is None:
        raise not_found(f"dataset {name!r}")
    found = Found(identity, ws, row)
    if version is not None:
        found.version = await in_session(request, lambda s: find_version(s, row, version))
    if level is Level.MANAGER:
        await authorize(request, identity, workspace, permission)
    return found


def image(level: Level, permission: str):
    """The image ``{name}`` of ``{workspace}``: ``Found`` with its row, or with ``builtin`` for a
    built-in image. A built-in image is found for every member before any manager check: no route
    changes one (deleting it is a 409 for everyone who may see the workspace)."""

    async def resolve(request: Request, identity: CurrentIdentity, workspace: str, name: str) -> Found:
        ws = await authorize(request, identity, workspace, "images:read" if level is Level.MANAGER else permission)
        builtin = next((b for b in BUILTIN_IMAGES if b.name == name), None)
        if builtin is not None:
            return Found(identity, ws, None, builtin)
        row = await _row(request, Image, workspace, name)
        if row is None:
            raise not_found(f"image {name!r}")
        if level is Level.MANAGER:
            await authorize(request, identity, workspace, permission)
        return Found(identity, ws, row)

    return needs(level, permission, resolve)


async def _row(request: Request, model, workspace: str, name: str):
    def get(session):
        return session.scalars(select(model).where(model.workspace == workspace, model.name == name)).first()

    return await in_session(request, get)


ReadDataset = Annotated[Found, dataset(Level.MEMBER, "datasets:read")]
WriteDataset = Annotated[Found, dataset(Level.MEMBER, "datasets:write")]

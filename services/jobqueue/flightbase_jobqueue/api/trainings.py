"""Trainings: created by members, controlled by their owners and the workspace's managers.

The creator is the first owner; owners may name other owners (members of the
workspace). Members may see every training of their workspace; anyone else
gets 404.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy import select

from flightbase import authz
from flightbase.authz import Identity
from flightbase.service.access import authorize, require_usable
from flightbase.service.errors import ApiError, not_found
from flightbase.service.deps import CurrentIdentity, in_session
from flightbase_jobqueue.models import Training, TrainingOwner
from flightbase_jobqueue.schemas import OwnersUpdate, TrainingCreate, TrainingOut

router = APIRouter(tags=["trainings"])


def training_out(t: Training) -> TrainingOut:
    return TrainingOut(
        id=t.id,
        workspace=t.workspace,
        name=t.name,
        description=t.description or "",
        kind=t.kind,
        created_by=t.created_by,
        created_at=t.created_at,
        owners=t.owner_names,
        state=t.state,
        spec=t.spec,
    )


async def _load_visible(request: Request, identity: Identity, training_id: str, permission: str) -> TrainingOut:
    """The training if the caller holds ``permission`` in its workspace; 404 if they cannot see it."""
    found = await in_session(request, lambda s: (t := s.get(Training, training_id)) and training_out(t))
    if found is None or not authz.can_see(identity, found.workspace):
        raise not_found(f"training {training_id!r}")
    await authorize(request, identity, found.workspace, permission)
    return found


async def _require_control(request: Request, identity: Identity, training: TrainingOut) -> None:
    """Owners control their training; managers (trainings:manage) control all in their workspace."""
    if identity.name in training.owners:
        return
    ws = await request.app.state.hub.workspace(training.workspace)
    if authz.check(identity, "trainings:manage", training.workspace, ws.managers if ws else ()).allowed:
        return
    raise ApiError(403, f"only the owners of training {training.id!r} or the workspace's managers may do this")


@router.post("/trainings", response_model=TrainingOut, status_code=201)
async def create_training(request: Request, identity: CurrentIdentity, body: TrainingCreate):
    ws = await authorize(request, identity, body.workspace, "trainings:write")
    require_usable(ws)
    limit = ws.settings.max_gpus_per_job
    if limit is not None and body.gpus > limit:
        raise ApiError(422, f"gpus: {body.gpus} is more than this workspace allows per job ({limit})", field="gpus")
    quota = ws.settings.gpu_quota
    if quota is not None and not ws.settings.allow_borrowing and body.gpus > quota:
        raise ApiError(422, f"gpus: {body.gpus} is more than the workspace's quota ({quota}) and it may not borrow", field="gpus")

    spec = body.model_dump(exclude={"workspace", "name", "description"})

    def create(session):
        t = Training(
            id=uuid.uuid4().hex[:12],
            workspace=body.workspace,
            name=body.name,
            description=body.description,
            kind="advanced",
            created_by=identity.name,
            spec=spec,
            state="queued",
        )
        t.owners.append(TrainingOwner(user=identity.name))
        session.add(t)
        session.flush()
        return training_out(t)

    return await in_session(request, create)


@router.get("/trainings", response_model=list[TrainingOut])
async def list_trainings(
    request: Request,
    identity: CurrentIdentity,
    workspace: str | None = Query(default=None, description="Only this workspace"),
    limit: int = Query(default=100, ge=1, le=1000),
):
    if workspace is not None:
        await authorize(request, identity, workspace, "trainings:read")
        names = [workspace]
    else:
        found = await request.app.state.hub.workspaces()
        names = [
            n for n, ws in found.items() if authz.check(identity, "trainings:read", n, ws.managers).allowed
        ]

    def query(session):
        stmt = (
            select(Training)
            .where(Training.workspace.in_(names))
            .order_by(Training.created_at.desc())
            .limit(limit)
        )
        return [training_out(t) for t in session.scalars(stmt)]

    return await in_session(request, query) if names else []


@router.get("/trainings/{training_id}", response_model=TrainingOut)
async def get_training(request: Request, identity: CurrentIdentity, training_id: str):
    return await _load_visible(request, identity, training_id, "trainings:read")


@router.put("/trainings/{training_id}/owners", response_model=TrainingOut)
async def set_owners(request: Request, identity: CurrentIdentity, training_id: str, body: OwnersUpdate):
    training = await _load_visible(request, identity, training_id, "trainings:write")
    await _require_control(request, identity, training)
    ws = await request.app.state.hub.workspace(training.workspace)
    strangers = [u for u in body.owners if u not in ws.members]
    if strangers:
        raise ApiError(422, f"owners: not members of {training.workspace!r}: {', '.join(strangers)}", field="owners")

    def update(session):
        t = session.get(Training, training_id)
        t.owners = [TrainingOwner(user=u) for u in sorted(set(body.owners))]
        session.flush()
        return training_out(t)

    return await in_session(request, update)


@router.delete("/trainings/{training_id}", status_code=204)
async def delete_training(request: Request, identity: CurrentIdentity, training_id: str):
    training = await _load_visible(request, identity, training_id, "trainings:write")
    await _require_control(request, identity, training)
    await in_session(request, lambda s: s.delete(s.get(Training, training_id)))
    return Response(status_code=204)

"""Jupyter trainings' GPU leases: requested by the hub's spawner, held while the server runs.

A lease is a training of kind ``jupyter`` with one job of kind ``lease``
(one GPU, not preemptible): it waits in the same queue as every training,
and the spawner shows its queue position and estimated start on the hub's
progress page while it waits. See :mod:`flightbase_jobqueue.leases`.

A lease is for one server the hub knows: the caller's own server, starting
(its spawner asks during ``start``, while the hub shows it pending) or
running (:func:`require_hub_server`); and a server holds at most one live
lease (:func:`require_no_lease`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid

from typing import Annotated

import httpx

from fastapi import APIRouter, Query, Request
from sqlalchemy import select

from flightbase_server.service.access import InWorkspace, Level, Listing, listing, require_usable, workspace_in_body
from flightbase_server.service.deps import CurrentIdentity, in_session
from flightbase_server.service.errors import ApiError
from flightbase_jobqueue import leases
from flightbase_jobqueue.api import access
from flightbase_jobqueue.api.access import LeaseFound
from flightbase_jobqueue.api.trainings import require_image, row_of
from flightbase_jobqueue.culler import ACTIVITY_TOKEN
from flightbase_jobqueue.figures import estimated_range
from flightbase_jobqueue.models import Job, Training
from flightbase_jobqueue.runtime import limits_from
from flightbase_jobqueue.scheduling.types import Job as CoreJob
from flightbase_jobqueue.schemas import LeaseCreate, LeaseOut, QueueInfo
from flightbase_jobqueue.states import JobState
from flightbase_jobqueue.training_spec import TrainingSpec

router = APIRouter(tags=["leases"])

LIVE_STATES = ("queued", "preempted", "starting", "running")
MAX_WAIT = 30.0


def lease_out(job: Job, training: Training, gpu_kind: str, insight=None) -> LeaseOut:
    placement = job.placement or {}
    node = next(iter(placement), None)
    queue = None
    if insight is not None:
        queue = QueueInfo(position=insight.position, workspace_position=insight.workspace_position,
                          estimated_start=insight.estimated_start, reason=insight.reason,
                          estimated_start_range=estimated_range(insight))
    return LeaseOut(
        id=job.id, training_id=training.id, workspace=job.workspace, owner=job.created_by,
        server=training.spec.server, state=leases.public_state(job.state), gpu_kind=gpu_kind,
        gpus=sorted(g for gpus in placement.values() for g in gpus), node=node,
        image=training.spec.image, datasets=[d.model_dump() for d in training.spec.dataset_versions],
        submitted_at=job.submitted_at, granted_at=job.started_at, ended_at=job.finished_at,
        reason=(insight.reason if insight is not None else job.reason), queue=queue,
    )



def _out(request: Request, job: Job, training: Training) -> LeaseOut:
    runtime = request.app.state.runtime
    insight = runtime.insight().get(job.id) if job.state in ("queued", "preempted") else None
    return lease_out(job, training, runtime.gpu_kind, insight)


def _label(user: str, server: str) -> str:
    return f"{user}/{server}" if server else user


async def require_hub_server(request: Request, user: str, server: str) -> None:
    """409 (field ``server``) unless the hub has ``user``'s ``server`` starting or running.

    The hub lists a server in the user's model while it is active: pending
    (spawn) or ready (``jupyterhub.apihandlers.base.user_model``)."""
    try:
        servers = await request.app.state.lease_reconciler.hub_servers(user)
    except httpx.HTTPError as exc:
        raise ApiError(503, f"server: the hub did not answer ({type(exc).__name__}); try again shortly",
                       field="server") from None
    if leases.orphaned(server, servers):
        raise ApiError(409, f"server: the hub has no server {_label(user, server)!r} starting or running; "
                            "a server's GPU is asked for by its spawner as it starts", field="server")


async def require_no_lease(request: Request, user: str, server: str) -> None:
    """409 (field ``server``) when a live lease already holds ``user``'s ``server``.

    Called under :func:`_creation_lock` up to the write, so two requests for one
    server cannot both pass."""
    def held(session) -> list[str]:
        rows = session.execute(
            select(Job.id, Training.spec).join(Training, Training.id == Job.training_id)
            .where(Job.kind == leases.KIND, Job.created_by == user, Job.state.in_(LIVE_STATES))
        ).all()
        return [job_id for job_id, spec in rows if spec.server == server]

    existing = await in_session(request, held)
    if existing:
        raise ApiError(409, f"server: {_label(user, server)!r} already holds lease {existing[0]!r}; one server "
                            f"holds one lease (DELETE /leases/{existing[0]} releases it)", field="server")


def _creation_lock(request: Request) -> asyncio.Lock:
    """One lease created at a time: the check that a server holds no lease, then the write."""
    lock = getattr(request.app.state, "lease_creation_lock", None)
    if lock is None:
        lock = request.app.state.lease_creation_lock = asyncio.Lock()
    return lock


@router.post("/leases", response_model=LeaseOut, status_code=201, summary="Ask for a Jupyter training's GPU")
async def create_lease(request: Request, w: Annotated[InWorkspace, workspace_in_body(LeaseCreate, "trainings:write")]):
    identity, body, ws = w.identity, w.body, w.ws
    require_usable(ws)
    runtime = request.app.state.runtime
    limits = limits_from(ws.settings)
    runtime.use_limits(ws.name, limits, ws.settings.memory_gb_per_gpu)
    why = runtime.admissible(CoreJob(id="new", workspace=body.workspace, gpus=body.gpus, preemptible=False,
                                     kind=leases.KIND), limits)
    if why:
        raise ApiError(422, f"gpus: {why}", field="gpus")
    await require_image(request, ws, body.image)
    datasets = request.app.state.datasets
    dataset_versions = await datasets.resolve(body.workspace, body.datasets) if body.datasets else []
    await require_hub_server(request, identity.name, body.server)
    server_label = _label(identity.name, body.server)
    now = time.time()
    training = Training(id=uuid.uuid4().hex[:12], workspace=body.workspace, name=f"jupyter {server_label}",
                        description=f"Jupyter training {server_label}", kind=leases.TRAINING_KIND,
                        created_by=identity.name, created_at=dt.datetime.now(dt.timezone.utc),
                        spec=TrainingSpec(server=body.server, gpus=body.gpus, image=body.image,
                                          dataset_versions=dataset_versions), state="active")
    job = Job(id=uuid.uuid4().hex[:16], training_id=training.id, workspace=body.workspace,
              name=f"jupyter {server_label}", seq=0, params={}, kind=leases.KIND, gpus=body.gpus,
              gpus_per_node=None, priority=0, preemptible=False, max_runtime=None, state="queued", held=False,
              submitted_at=now, attained=0.0, restarts=0, stopping=False, cancel_requested=False,
              created_by=identity.name)
    async with _creation_lock(request):
        await require_no_lease(request, identity.name, body.server)
        await request.app.state.submissions.write(
            row_of(training), [{"training_id": training.id, "user": identity.name}], [row_of(job)],
            [{"training_id": training.id, "name": ACTIVITY_TOKEN, "value": body.activity_token}]
            if body.activity_token else None)
    if dataset_versions:
        await datasets.mark(body.workspace, dataset_versions, [job.id], in_use=True)
    runtime.submitted([job])
    await runtime.next_step(1.0)  # most leases are granted by the very next pass
    job, training = await in_session(request, lambda s: (s.get(Job, job.id), s.get(Training, training.id)))
    return _out(request, job, training)


@router.get("/leases", response_model=list[LeaseOut], summary="Jupyter trainings' leases (live ones unless all=true)")
async def list_leases(request: Request, scope: Annotated[Listing, listing("trainings:read", description=None)],
                      all: bool = Query(default=False)):
    names = await scope.workspaces(request)

    def query(session):
        q = select(Job, Training).join(Training, Training.id == Job.training_id).where(
            Job.kind == leases.KIND, Job.workspace.in_(names))
        if not all:
            q = q.where(Job.state.in_(LIVE_STATES))
        return session.execute(q.order_by(Job.submitted_at.desc()).limit(1000)).all()

    rows = await in_session(request, query)
    return [_out(request, job, training) for job, training in rows]


@router.get("/leases/{lease_id}", response_model=LeaseOut, summary="A lease; wait=N long-polls while it is queued")
async def get_lease(request: Request, lease: Annotated[LeaseFound, access.lease(Level.MEMBER)],
                    wait: float = Query(default=0, ge=0, le=MAX_WAIT,
                                        description="Seconds to wait for the lease to leave the queue")):
    job, training, lease_id = lease.job, lease.training, lease.job.id
    deadline = time.monotonic() + wait
    while job.state in ("queued", "preempted") and time.monotonic() < deadline:
        await request.app.state.runtime.next_step(deadline - time.monotonic())
        job = await in_session(request, lambda s: s.get(Job, lease_id))
    return _out(request, job, training)


@router.delete("/leases/{lease_id}", response_model=LeaseOut, summary="Release a lease (its server has stopped)")
async def release_lease(request: Request, identity: CurrentIdentity,
                        lease: Annotated[LeaseFound, access.lease(Level.CONTROL)],
                        stop_server: bool = Query(default=False,
                                                  description="Also stop the server that holds it")):
    job, training, lease_id = lease.job, lease.training, lease.job.id
    runtime = request.app.state.runtime
    if not JobState(job.state).is_terminal():
        runtime.release_lease(lease_id, f"released by {identity.name}")
        if stop_server:
            await request.app.state.lease_reconciler.stop_server(job.created_by, training.spec.server)
        await runtime.next_step(1.0)
    job = await in_session(request, lambda s: s.get(Job, lease_id))
    return _out(request, job, training)

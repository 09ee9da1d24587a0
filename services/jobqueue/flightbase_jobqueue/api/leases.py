"""Jupyter trainings' GPU leases: requested by the hub's spawner, held while the server runs.

A lease is a training of kind ``jupyter`` with one job of kind ``lease``
(one GPU, not preemptible): it waits in the same queue as every training,
and the spawner shows its queue position and estimated start on the hub's
progress page while it waits. See :mod:`flightbase_jobqueue.leases`.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid

from fastapi import APIRouter, Query, Request
from sqlalchemy import select

from flightbase.authz import Identity
from flightbase.service.access import authorize, require_usable, workspaces_with
from flightbase.service.deps import CurrentIdentity, in_session
from flightbase.service.errors import ApiError, not_found
from flightbase_jobqueue import leases
from flightbase_jobqueue.api.trainings import load_training, require_control, row_of
from flightbase_jobqueue.models import Job, Training, TrainingOwner
from flightbase_jobqueue.runtime import limits_from
from flightbase_jobqueue.scheduling.types import Job as CoreJob
from flightbase_jobqueue.schemas import LeaseCreate, LeaseOut, QueueInfo
from flightbase_jobqueue.states import JobState

router = APIRouter(tags=["leases"])

LIVE_STATES = ("queued", "preempted", "starting", "running")
MAX_WAIT = 30.0


def lease_out(job: Job, training: Training, gpu_kind: str, insight=None) -> LeaseOut:
    placement = job.placement or {}
    node = next(iter(placement), None)
    queue = None
    if insight is not None:
        queue = QueueInfo(position=insight.position, workspace_position=insight.workspace_position,
                          estimated_start=insight.estimated_start, reason=insight.reason)
    return LeaseOut(
        id=job.id, training_id=training.id, workspace=job.workspace, owner=job.created_by,
        server=training.spec.get("server", ""), state=leases.public_state(job.state), gpu_kind=gpu_kind,
        gpus=sorted(g for gpus in placement.values() for g in gpus), node=node,
        image=training.spec.get("image", ""), datasets=training.spec.get("dataset_versions") or [],
        submitted_at=job.submitted_at, granted_at=job.started_at, ended_at=job.finished_at,
        reason=(insight.reason if insight is not None else job.reason), queue=queue,
    )


async def _load(request: Request, identity: Identity, lease_id: str) -> tuple[Job, Training]:
    def load(session):
        job = session.get(Job, lease_id)
        if job is None or job.kind != leases.KIND:
            return None
        return job, session.get(Training, job.training_id)

    found = await in_session(request, load)
    if found is None:
        raise not_found(f"lease {lease_id!r}")
    # 404 for those who may not see the workspace, 403 without trainings:read
    await load_training(request, identity, found[1].id, "trainings:read")
    return found


def _out(request: Request, job: Job, training: Training) -> LeaseOut:
    runtime = request.app.state.runtime
    insight = runtime.insight().get(job.id) if job.state in ("queued", "preempted") else None
    return lease_out(job, training, runtime.backend.gpu_kind, insight)


@router.post("/leases", response_model=LeaseOut, status_code=201, summary="Ask for a Jupyter training's GPU")
async def create_lease(request: Request, identity: CurrentIdentity, body: LeaseCreate):
    ws = await authorize(request, identity, body.workspace, "trainings:write")
    require_usable(ws)
    runtime = request.app.state.runtime
    why = runtime.admissible(CoreJob(id="new", workspace=body.workspace, gpus=body.gpus, preemptible=False,
                                     kind=leases.KIND), limits_from(ws.settings))
    if why:
        raise ApiError(422, f"gpus: {why}", field="gpus")
    if ws.settings.allowed_images and body.image not in ws.settings.allowed_images:
        raise ApiError(422, f"image: {body.image!r} is not allowed in this workspace", field="image")
    datasets = request.app.state.datasets
    dataset_versions = await datasets.resolve(body.workspace, body.datasets) if body.datasets else []
    server_label = f"{identity.name}/{body.server}" if body.server else identity.name
    now = time.time()
    training = Training(id=uuid.uuid4().hex[:12], workspace=body.workspace, name=f"jupyter {server_label}",
                        description=f"Jupyter training {server_label}", kind=leases.TRAINING_KIND,
                        created_by=identity.name, created_at=dt.datetime.now(dt.timezone.utc),
                        spec={"server": body.server, "image": body.image, "gpus": body.gpus,
                              "dataset_versions": dataset_versions}, state="active")
    job = Job(id=uuid.uuid4().hex[:16], training_id=training.id, workspace=body.workspace,
              name=f"jupyter {server_label}", seq=0, params={}, kind=leases.KIND, gpus=body.gpus,
              gpus_per_node=None, priority=0, preemptible=False, max_runtime=None, state="queued", held=False,
              submitted_at=now, attained=0.0, restarts=0, stopping=False, cancel_requested=False,
              created_by=identity.name)
    await request.app.state.submissions.write(
        row_of(training), [{"training_id": training.id, "user": identity.name}], [row_of(job)])
    if dataset_versions:
        await datasets.mark(body.workspace, dataset_versions, [job.id], in_use=True)
    runtime.submitted([job])
    await runtime.next_step(1.0)  # most leases are granted by the very next pass
    job, training = await in_session(request, lambda s: (s.get(Job, job.id), s.get(Training, training.id)))
    return _out(request, job, training)


@router.get("/leases", response_model=list[LeaseOut], summary="Jupyter trainings' leases (live ones unless all=true)")
async def list_leases(request: Request, identity: CurrentIdentity,
                      workspace: str | None = Query(default=None), all: bool = Query(default=False)):
    names = await workspaces_with(request, identity, "trainings:read", workspace)

    def query(session):
        q = select(Job, Training).join(Training, Training.id == Job.training_id).where(
            Job.kind == leases.KIND, Job.workspace.in_(names))
        if not all:
            q = q.where(Job.state.in_(LIVE_STATES))
        return session.execute(q.order_by(Job.submitted_at.desc()).limit(1000)).all()

    rows = await in_session(request, query)
    return [_out(request, job, training) for job, training in rows]


@router.get("/leases/{lease_id}", response_model=LeaseOut, summary="A lease; wait=N long-polls while it is queued")
async def get_lease(request: Request, identity: CurrentIdentity, lease_id: str,
                    wait: float = Query(default=0, ge=0, le=MAX_WAIT,
                                        description="Seconds to wait for the lease to leave the queue")):
    job, training = await _load(request, identity, lease_id)
    deadline = time.monotonic() + wait
    while job.state in ("queued", "preempted") and time.monotonic() < deadline:
        await request.app.state.runtime.next_step(deadline - time.monotonic())
        job = await in_session(request, lambda s: s.get(Job, lease_id))
    return _out(request, job, training)


@router.delete("/leases/{lease_id}", response_model=LeaseOut, summary="Release a lease (its server has stopped)")
async def release_lease(request: Request, identity: CurrentIdentity, lease_id: str,
                        stop_server: bool = Query(default=False,
                                                  description="Also stop the server that holds it")):
    job, training = await _load(request, identity, lease_id)
    await require_control(request, identity, await load_training(request, identity, training.id, "trainings:read"))
    runtime = request.app.state.runtime
    if not JobState(job.state).is_terminal():
        runtime.release_lease(lease_id, f"released by {identity.name}")
        if stop_server:
            await request.app.state.lease_reconciler.stop_server(job.created_by, training.spec.get("server", ""))
        await runtime.next_step(1.0)
    job = await in_session(request, lambda s: s.get(Job, lease_id))
    return _out(request, job, training)

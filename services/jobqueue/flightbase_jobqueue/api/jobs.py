"""Jobs: state, placement, queue insight, logs (live, per rank or merged), metrics, cancel;
priority and requeue (administrators and the workspace's managers).

Logs, metrics and NCCL records are read through the job-output port
(``app.state.job_output``, :class:`~flightbase_jobqueue.ports.JobOutput`):
local files for the on-machine backends, the pods' logs and the workspaces
volume for the Kubernetes one.
"""

from __future__ import annotations

import asyncio
import re
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse, StreamingResponse
from sqlalchemy import select

from flightbase_jobqueue import job_metrics as metrics
from flightbase_server.authz import Identity
from flightbase_server.service.access import Level, Listing, authorize, listing
from flightbase_server.service.deps import CurrentIdentity, in_session
from flightbase_server.service.errors import ApiError, not_found
from flightbase_jobqueue.api import access
from flightbase_jobqueue.backends.spec import JobRef
from flightbase_jobqueue.figures import WAITING, estimated_range, held_reason
from flightbase_jobqueue.models import Job, Preemption, Training
from flightbase_jobqueue.ports import JobOutput
from flightbase_jobqueue.schemas import CommunicationOut, JobOut, Preemption as PreemptionOut, PriorityUpdate, QueueInfo
from flightbase_jobqueue.states import JobState
from flightbase_jobqueue.training_spec import TrainingSpec

router = APIRouter(tags=["jobs"])
Readable = Annotated[Job, access.job(Level.MEMBER, "jobs:read")]
Managed = Annotated[Job, access.job(Level.MANAGER, "trainings:manage")]  # administrators and the workspace's managers



def _ref(job: Job) -> JobRef:
    return JobRef(job.id, job.workspace, job.training_id)


def _output(request: Request) -> JobOutput:
    return request.app.state.job_output


def _metric_records(request: Request, job: Job | str) -> list[dict[str, float]]:
    # a bare id lacks the workspace and training: the Kubernetes backend
    # then finds no metrics file and reads the output's key=value lines only
    ref = _ref(job) if isinstance(job, Job) else JobRef(job, "", "")
    return _output(request).metric_records(ref)


def job_metrics(request: Request, job: Job | str) -> dict[str, float]:
    """The latest value of each metric the job reported (``job``: the row, or its id)."""
    return metrics.latest(_metric_records(request, job))


def _projected(queued: list[Job]) -> list[str]:
    """Which of these queued jobs the queue's projection must hold: not the held ones (a sweep's
    jobs waiting their turn are outside the queue), which would make every read recompute it."""
    return [j.id for j in queued if not j.held]


def job_out(request: Request, job: Job, preemptions=(), insight=None, training: Training | None = None) -> JobOut:
    runtime = request.app.state.runtime
    queue = None
    if job.state == "queued" and job.held:
        # why it is held (its training), and when its release is projected to start it, if known
        queue = QueueInfo(position=0, workspace_position=0, reason=held_reason(training, insight),
                          estimated_start=None if insight is None else insight.estimated_start,
                          estimated_start_range=estimated_range(insight))
    elif insight is not None:
        queue = QueueInfo(position=insight.position, workspace_position=insight.workspace_position,
                          estimated_start=insight.estimated_start, reason=insight.reason,
                          estimated_start_range=estimated_range(insight))
    return JobOut(
        id=job.id, training_id=job.training_id, workspace=job.workspace, name=job.name, seq=job.seq,
        params=job.params, kind=job.kind, state=job.state, held=job.held, gpus=job.gpus,
        gpu_kind=runtime.gpu_kind, placement=job.placement, hosts=sorted(job.placement or {}),
        submitted_at=job.submitted_at, started_at=job.started_at, finished_at=job.finished_at,
        exit_code=job.exit_code, reason=job.reason, restarts=job.restarts, preemptible=job.preemptible,
        priority=job.priority, created_by=job.created_by, queue=queue,
        preemptions=[PreemptionOut(reason=p.reason, at=p.at) for p in preemptions],
        metrics=job_metrics(request, job),
    )


async def load_job(request: Request, identity: Identity, job_id: str, permission: str) -> Job:
    job = await in_session(request, lambda s: s.get(Job, job_id))
    if job is None:
        raise not_found(f"job {job_id!r}")
    await authorize(request, identity, job.workspace, permission, hidden_as=f"job {job_id!r}")
    return job


@router.get("/jobs", response_model=list[JobOut], summary="Jobs, newest first")
async def list_jobs(
    request: Request,
    scope: Annotated[Listing, listing("jobs:read", description=None)],
    training: str | None = Query(default=None, description="Only this training's jobs"),
    state: str | None = Query(default=None, description="Only jobs in this state"),
    limit: int = Query(default=100, ge=1, le=1000),
):
    if state is not None and state not in {s.value for s in JobState}:
        raise ApiError(422, f"state: must be one of {', '.join(s.value for s in JobState)}", field="state")
    names = await scope.workspaces(request)
    if not names:
        return []

    def query(session):
        stmt = select(Job).where(Job.workspace.in_(names))
        if training:
            stmt = stmt.where(Job.training_id == training)
        if state:
            stmt = stmt.where(Job.state == state)
        return list(session.scalars(stmt.order_by(Job.submitted_at.desc()).limit(limit)))

    rows = await in_session(request, query)
    queued = [r for r in rows if r.state == "queued"]
    insights = request.app.state.runtime.insight(require=_projected(queued)) if queued else {}
    return [job_out(request, r, insight=insights.get(r.id)) for r in rows]


@router.get("/jobs/{job_id}", response_model=JobOut)
async def get_job(request: Request, job: Readable):
    job_id = job.id
    preemptions = await in_session(
        request, lambda s: list(s.scalars(select(Preemption).where(Preemption.job_id == job_id).order_by(Preemption.at)))
    )
    insight = request.app.state.runtime.insight(require=_projected([job])).get(job_id) if job.state == "queued" else None
    training = None
    if job.held and job.state == "queued":  # its training says why it is held
        training = await in_session(request, lambda s: s.get(Training, job.training_id))
    out = job_out(request, job, preemptions, insight, training)
    out.communication = await _communication(request, job)
    return out


_ENDED_RECORDS: dict[tuple, CommunicationOut] = {}  # an ended run's logs no longer change


async def _communication(request: Request, job: Job) -> CommunicationOut | None:
    """What NCCL did for the job and the verdict on its GPUDirect switches (parsed on demand)."""
    if job.kind == "lease":
        return None
    key = (id(request.app), job.id, job.restarts, job.finished_at)
    if job.finished_at is not None and key in _ENDED_RECORDS:
        return _ENDED_RECORDS[key]
    from flightbase_jobqueue import comms

    training = await in_session(request, lambda s: s.get(Training, job.training_id))
    spec = training.spec if training is not None else TrainingSpec()
    logs = await asyncio.to_thread(_output(request).nccl_logs, _ref(job)) if job.started_at else {}
    out = CommunicationOut(**comms.record_for(
        logs, p2p=spec.gpudirect_p2p, rdma=spec.gpudirect_rdma,
        gpu_kind=request.app.state.runtime.gpu_kind,
        gpus=job.gpus, hosts=max(1, len(job.placement or {})), state=job.state))
    if job.finished_at is not None:
        if len(_ENDED_RECORDS) >= 256:
            _ENDED_RECORDS.pop(next(iter(_ENDED_RECORDS)))
        _ENDED_RECORDS[key] = out
    return out


def _filter_rank(lines: list[str], pattern: str | None, rank: int | None) -> list[str]:
    """``rank``'s lines (``pattern``: the backend's rank tag for the launcher; None: one process)."""
    if rank is None:
        return lines
    if pattern is None:
        return lines if rank == 0 else []
    rx = re.compile(pattern)
    return [line for line in lines if (m := rx.match(line)) and int(m.group("rank")) == rank]


@router.get("/jobs/{job_id}/logs", response_class=PlainTextResponse,
            summary="The job's output: merged, or one rank's; follow=true streams until the job ends")
async def job_logs(
    request: Request,
    job: Readable,
    rank: int | None = Query(default=None, ge=0, description="Only this rank's lines"),
    follow: bool = Query(default=False, description="Keep streaming new output until the job ends"),
):
    job_id = job.id
    training = await in_session(request, lambda s: s.get(Training, job.training_id))
    output = _output(request)
    pattern = output.rank_prefix(training.spec.launcher)
    ref = _ref(job)
    if not follow:
        return PlainTextResponse("\n".join(_filter_rank(output.log_lines(ref), pattern, rank)) + "\n")

    async def stream():
        offset, pending = 0, b""
        while True:
            done = output.ended(job_id)  # read before the output: what it wrote before ending is all read
            data = await asyncio.to_thread(output.log_from, ref, offset)  # the API may be asked (Kubernetes)
            offset += len(data)
            pending += data
            *complete, pending = pending.split(b"\n")
            lines = _filter_rank([c.decode(errors="replace") for c in complete], pattern, rank)
            if lines:
                yield ("\n".join(lines) + "\n").encode()
            if data:
                continue
            if done:
                if pending:
                    yield pending + b"\n"
                return
            if await request.is_disconnected():
                return
            await asyncio.sleep(0.3)

    return StreamingResponse(stream(), media_type="text/plain")


@router.get("/jobs/{job_id}/metrics", response_model=list[dict[str, float]],
            summary="Every metric record the job reported, in order")
async def get_metrics(request: Request, job: Readable):
    return _metric_records(request, job)


@router.post("/jobs/{job_id}/cancel", response_model=JobOut, summary="Cancel a job (all its processes stop)")
async def cancel_job(request: Request, identity: CurrentIdentity,
                     job: Annotated[Job, access.job(Level.CONTROL, "jobs:write")]):
    job_id = job.id
    if JobState(job.state).is_terminal():
        raise ApiError(409, f"job {job_id!r} has already ended ({job.state})")
    request.app.state.runtime.cancel(job_id, f"cancelled by {identity.name}")
    return job_out(request, await in_session(request, lambda s: s.get(Job, job_id)))


async def _job_out_now(request: Request, job_id: str) -> JobOut:
    """The job as it is now, with its preemptions and, while queued, its place in the queue."""
    job, preemptions = await in_session(request, lambda s: (
        s.get(Job, job_id),
        list(s.scalars(select(Preemption).where(Preemption.job_id == job_id).order_by(Preemption.at)))))
    insight = request.app.state.runtime.insight(require=_projected([job])).get(job_id) if job.state == "queued" else None
    return job_out(request, job, preemptions, insight)


@router.put("/jobs/{job_id}/priority", response_model=JobOut,
            summary="Change a live job's priority (administrators and the workspace's managers)")
async def set_priority(request: Request, job: Managed, body: PriorityUpdate):
    """The next scheduling pass orders the workspace's queue by it (and weighs it when it preempts)."""
    job_id = job.id
    if JobState(job.state).is_terminal():
        raise ApiError(409, f"job {job_id!r} has already ended ({job.state})")
    runtime = request.app.state.runtime
    runtime.set_priority(job_id, body.priority)
    await runtime.next_step(1.0)  # the answer shows the job's place after the pass that used it
    return await _job_out_now(request, job_id)


@router.post("/jobs/{job_id}/requeue", response_model=JobOut,
             summary="Stop a running job and queue it again, as a preemption would (administrators and managers)")
async def requeue_job(request: Request, identity: CurrentIdentity, job: Managed):
    """The job is stopped with the preemption grace period and goes back to the queue, keeping its
    checkpoint (``restarts`` counts it; ``preemptions`` records who asked). A queued job is left
    alone (409), as is a Jupyter training's lease: stopping it would stop its notebook."""
    job_id = job.id
    state = JobState(job.state)
    if job.kind == "lease":
        raise ApiError(409, f"job {job_id!r} is a Jupyter training's GPU lease, which is not requeued; "
                            f"release it (DELETE /leases/{job_id}) or cancel it")
    if state in (JobState.QUEUED, JobState.PREEMPTED):
        raise ApiError(409, f"job {job_id!r} is already in the queue ({job.state})")
    if state.is_terminal():
        raise ApiError(409, f"job {job_id!r} has already ended ({job.state})")
    if not request.app.state.runtime.requeue(job_id, f"requeued by {identity.name}"):
        raise ApiError(409, f"job {job_id!r} is already being stopped")
    return await _job_out_now(request, job_id)


@router.get("/queue", response_model=list[JobOut],
            summary="Queued jobs in queue order, with position and reason; held ones after them")
async def queue(request: Request, scope: Annotated[Listing, listing("jobs:read", description=None)]):
    """The jobs the scheduler ranks, in its order (``queue.position`` from 1, with the estimated
    start), then the held ones, oldest first: a sweep's jobs waiting for a free place among its
    ``parallel`` (or for its training to be resumed), which join the queue only then
    (``queue.position`` 0, the reason saying which; a sweep's, with the start the projection
    gives it when its sweep's jobs end and release it, a paused training's with none). As
    ``squeue`` lists a job array's throttled tasks: a person who submits a sweep sees all of its
    jobs waiting."""
    workspace = scope.workspace
    insights = request.app.state.runtime.insight()

    def query(session):
        # only the rows shown: the asked workspace's (positions count every workspace's jobs) and
        # still waiting (a projection reused after a pass may name jobs it has since started).
        # Not by the projection's ids: an IN list of thousands of them, of another length at
        # each request, was a new statement each time, and the database driver keeps the last
        # 128 it prepared on each connection, megabytes each (docs/benchmarks.md). The few
        # waiting jobs the projection does not name yet are left out below.
        # Held jobs are in the projection only with their estimate; their trainings say why
        # they are held.
        q = select(Job).where(Job.state.in_(WAITING))
        if workspace:
            q = q.where(Job.workspace == workspace)
        projected, held = {}, []
        for j in session.scalars(q):
            if j.held and j.state == JobState.QUEUED.value:
                held.append(j)
            elif j.id in insights:
                projected[j.id] = j
        trainings = {}
        if held:
            of_held = select(Job.training_id).where(Job.held.is_(True), Job.state == JobState.QUEUED.value)
            if workspace:
                of_held = of_held.where(Job.workspace == workspace)
            trainings = {t.id: t for t in session.scalars(select(Training).where(Training.id.in_(of_held)))}
        return projected, held, trainings

    rows, held, trainings = await in_session(request, query)
    readable = set(await scope.workspaces(request))  # membership as the hub's groups say now (authz.is_member)
    out = []
    for job_id, info in insights.items():
        row = rows.get(job_id)
        if row is None:
            continue
        if row.workspace not in readable:
            continue  # other workspaces' jobs are counted in positions but not shown
        out.append(job_out(request, row, insight=info))
    for row in sorted(held, key=lambda j: (j.submitted_at, j.seq, j.id)):
        if row.workspace in readable:
            out.append(job_out(request, row, insight=insights.get(row.id), training=trainings.get(row.training_id)))
    return out

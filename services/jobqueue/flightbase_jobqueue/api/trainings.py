"""Trainings: created by members, controlled by their owners and the workspace's managers.

A training is the user's request (code, entry point, GPUs, launcher, sweep);
its jobs are what the scheduler runs: one, or one per parameter set of a
sweep. The creator is the first owner; owners may name other owners (members
of the workspace). Members may see every training of their workspace; anyone
else gets 404.

A training's secret environment values (``secret_env``) are write-only: they
are stored apart from its spec (``TrainingSecret``) and no response carries
them, not even to the owner; responses name them (``secret_env_names``).
The image a training or a Jupyter training may use is checked by
:func:`require_image` (the workspace's ``allowed_images``, or when that is
empty, the built-in images and the workspace's own).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import time
import uuid
from collections import Counter
from types import SimpleNamespace
from typing import Annotated, Iterable

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy import select

from flightbase_server import authz
from flightbase_server.authz import Identity
from flightbase_server.service.access import (InWorkspace, Level, Listing, authorize, listing, require_usable,
                                       workspace_in_body)
from flightbase_server.service.errors import ApiError, not_found
from flightbase_server.service.deps import CurrentIdentity, in_session
from flightbase_server.service.db import in_chunks
from flightbase_server.service.hub import Workspace
from flightbase_jobqueue import sweeps
from flightbase_jobqueue.api import access
from flightbase_jobqueue.models import CodeUpload, Job, Training, TrainingOwner, TrainingSecret
from flightbase_jobqueue.runtime import limits_from
from flightbase_jobqueue.scheduling.types import Job as CoreJob
from flightbase_jobqueue.submissions import KeyTaken
from flightbase_jobqueue.schemas import JobSummary, OwnersUpdate, TrainingCreate, TrainingOut
from flightbase_jobqueue.training_spec import TrainingSpec

router = APIRouter(tags=["trainings"])
Controlled = Annotated[TrainingOut, access.training(Level.CONTROL, "trainings:write")]  # owners and managers

LIVE = ("queued", "starting", "running", "preempted")


def overall_state(training: Training, states: list[str]) -> str:
    counts = Counter(states)
    if counts["starting"] or counts["running"]:
        return "running"
    if training.state == "paused" and (counts["queued"] or counts["preempted"]):
        return "paused"
    if counts["queued"] or counts["preempted"]:
        return "queued"
    if not states:
        return "queued"
    if counts["failed"]:
        return "failed"
    if counts["cancelled"] and not counts["succeeded"]:
        return "cancelled"
    return "succeeded"


def training_out(t: Training, jobs: list[Job], metrics_of=lambda job: {}, with_jobs: bool = True,
                 secret_names: Iterable[str] = ()) -> TrainingOut:
    summaries = [
        JobSummary(id=j.id, seq=j.seq, name=j.name, params=j.params, state=j.state, held=j.held,
                   exit_code=j.exit_code, metrics=metrics_of(j))
        for j in sorted(jobs, key=lambda j: j.seq)
    ]
    sweep = t.spec.sweep
    best = None
    metric = sweep.metric if sweep is not None else None
    if metric:
        scored = [s for s in summaries if metric in s.metrics]
        if scored:
            pick = min if sweep.goal == "min" else max
            best = pick(scored, key=lambda s: s.metrics[metric])
    return TrainingOut(
        id=t.id, workspace=t.workspace, name=t.name, description=t.description or "", kind=t.kind,
        created_by=t.created_by, created_at=t.created_at, owners=t.owner_names,
        state=overall_state(t, [j.state for j in jobs]), paused=t.state == "paused", spec=t.spec.to_json(),
        secret_env_names=sorted(secret_names), progress=dict(Counter(j.state for j in jobs)), best=best,
        jobs=summaries if with_jobs else [],
    )


def _metrics_reader(request: Request):
    from flightbase_jobqueue.api.jobs import job_metrics

    return lambda job: job_metrics(request, job)


async def read_training(request: Request, training_id: str) -> TrainingOut | None:
    """The training as it is now, with its jobs (no check: the route's declaration made it)."""
    metrics_of = _metrics_reader(request)

    def load(session):
        t = session.get(Training, training_id)
        if t is None:
            return None
        jobs = list(session.scalars(select(Job).where(Job.training_id == t.id)))
        return training_out(t, jobs, metrics_of, secret_names=secret_names(session, [t.id])[t.id])

    return await in_session(request, load)


async def load_training(request: Request, identity: Identity, training_id: str, permission: str) -> TrainingOut:
    """The training if the caller holds ``permission`` in its workspace; 404 if they cannot see it."""
    found = await read_training(request, training_id)
    if found is None:
        raise not_found(f"training {training_id!r}")
    await authorize(request, identity, found.workspace, permission, hidden_as=f"training {training_id!r}")
    return found


async def require_control(request: Request, identity: Identity, training: TrainingOut) -> None:
    """Owners control their training; managers (trainings:manage) control all in their workspace."""
    if identity.name in training.owners:
        return
    ws = await request.app.state.hub.workspace(training.workspace)
    if ws is not None and authz.check(identity, "trainings:manage", training.workspace, ws.managers, ws.members).allowed:
        return
    raise ApiError(403, f"only the owners of training {training.id!r} or the workspace's managers may do this")


def secret_names(session, training_ids: list[str]) -> dict[str, list[str]]:
    """The names of each training's secret values (never the values: the query does not read them)."""
    names: dict[str, list[str]] = {tid: [] for tid in training_ids}
    rows = [row for chunk in in_chunks(training_ids)
            for row in session.execute(select(TrainingSecret.training_id, TrainingSecret.name)
                                       .where(TrainingSecret.training_id.in_(chunk)))]
    for training_id, name in rows:
        if TrainingSecret.is_env(name):
            names[training_id].append(name)
    return names


async def require_image(request: Request, ws: Workspace, image: str) -> str:
    """Refuse (422, field ``image``) an image that ``ws`` may not use: trainings and leases alike.

    A workspace's ``allowed_images`` lists the image names its members may use;
    left empty, it means the built-in images and the workspace's own, as the
    registry lists them (by name or by full reference). Returns the image's
    reference as the registry has it (what a container backend runs)."""
    allowed = ws.settings.allowed_images
    if allowed and image not in allowed:
        raise ApiError(422, f"image: {image!r} is not allowed in workspace {ws.name!r} "
                            f"(allowed_images: {_names(allowed)})", field="image")
    registry = request.app.state.datasets

    def listed(images: dict[str, str]) -> bool:
        return image in images or image in images.values()

    builtin = await registry.builtin_images(ws.name)  # what every workspace lists: ws's own is not needed
    if listed(builtin):
        return builtin.get(image, image)
    images = await registry.images(ws.name)
    if not listed(images):
        images = await registry.images(ws.name, fresh=True)  # registered a moment ago?
    if listed(images):
        return images.get(image, image)
    if allowed:  # allowed by its manager as written, though the registry does not list it
        return image
    raise ApiError(422, f"image: {image!r} is not an image of workspace {ws.name!r} (the built-in images "
                        f"and the workspace's own: {_names(images)})", field="image")


def _names(names, limit: int = 20) -> str:
    names = sorted(names)
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def row_of(obj) -> dict:
    """The column values of a new (not yet stored) row, for a Core INSERT."""
    return {c.key: getattr(obj, c.key) for c in obj.__table__.columns}


_COLUMNS = {model: tuple(c.key for c in model.__table__.columns) for model in (Training, Job)}


def new_row(model, **values) -> SimpleNamespace:
    """A new row of ``model`` as plain values: what ``row_of(model(**values))`` gives, without building
    the ORM object (a submission's rows go to the database by Core INSERTs and to the scheduler as
    attributes; constructing mapped instances was a tenth of a submission's time on the event loop)."""
    columns = _COLUMNS[model]
    unknown = values.keys() - set(columns)
    if unknown:
        raise TypeError(f"{model.__name__} has no column(s) {sorted(unknown)}")
    return SimpleNamespace(**{c: values.get(c) for c in columns})


async def code_problem(request: Request, workspace: str, code_id: str, entrypoint: str) -> str | None:
    """Why ``code_id`` / ``entrypoint`` cannot be used in ``workspace``, or None.

    Code uploads never change, so what was found is remembered.
    """
    known = request.app.state.code_uploads
    if code_id not in known:
        code = await in_session(request, lambda s: s.get(CodeUpload, code_id))
        if code is None:
            return f"code_id: no code upload {code_id!r} in this workspace"
        known[code_id] = code.workspace
    if known[code_id] != workspace:
        return f"code_id: no code upload {code_id!r} in this workspace"
    found = request.app.state.code_entrypoints  # (code_id, entry point) found there once: its files never go
    if (code_id, entrypoint) not in found:
        if not (request.app.state.runtime.code_root / code_id / entrypoint).is_file():
            return f"entrypoint: {entrypoint!r} is not in the uploaded code"
        found.add((code_id, entrypoint))
    return None


IDEMPOTENCY_HEADER = "Idempotency-Key"
_KEY_CHARS = frozenset(chr(c) for c in range(0x21, 0x7f))  # visible ASCII, as a header value keeps it


def idempotency_key(request: Request) -> str | None:
    """The request's ``Idempotency-Key`` header: 1 to 255 visible ASCII characters (422 otherwise)."""
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return None
    if not 1 <= len(key) <= 255 or not _KEY_CHARS.issuperset(key):
        raise ApiError(422, f"{IDEMPOTENCY_HEADER}: 1 to 255 visible ASCII characters (a UUID is usual)",
                       field=IDEMPOTENCY_HEADER)
    return key


def request_digest(body: TrainingCreate, kind: str, spec_extra: dict | None) -> str:
    """What identifies a creation request, to tell a retry from another request under the same key.
    Secret values are left out (a digest of a short secret could be searched): their names are in."""
    fields = body.model_dump(mode="json", exclude={"secret_env"})
    text = json.dumps([fields, sorted(body.secret_env), kind, spec_extra], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@router.post("/trainings", response_model=TrainingOut, status_code=201, responses={
    200: {"description": "A retry: the training an earlier request with the same Idempotency-Key created"}})
async def create_training(request: Request, response: Response,
                          w: Annotated[InWorkspace, workspace_in_body(TrainingCreate, "trainings:write")]):
    """Create a training. With an ``Idempotency-Key`` header (a UUID the client makes for this request
    and sends again when it retries), a second request with the key answers 200 with the training
    the first created, and its ``Idempotent-Replayed`` header says so; the key with another request
    is a 422. Keys are per workspace and person, kept as long as the training."""
    return await create_training_from(request, w.identity, w.body, w.ws, response=response)


async def create_training_from(request: Request, identity: Identity, body: TrainingCreate, ws: Workspace, *,
                               kind: str = "advanced", spec_extra: dict | None = None,
                               response: Response | None = None) -> TrainingOut:
    """Create a training from a validated body in ``ws``, where the route authorised ``identity``
    (POST /trainings; built-in trainings add their ``spec_extra``). With an ``Idempotency-Key``
    already used by ``identity`` in ``ws``, the training it created (``response`` becomes a 200)."""
    key = idempotency_key(request)
    digest = request_digest(body, kind, spec_extra) if key is not None else None
    require_usable(ws)
    runtime = request.app.state.runtime
    limits = limits_from(ws.settings)
    runtime.use_limits(ws.name, limits, ws.settings.memory_gb_per_gpu)
    probe = CoreJob(id="new", workspace=body.workspace, gpus=body.gpus, gpus_per_node=body.gpus_per_node,
                    preemptible=body.preemptible)
    why = runtime.admissible(probe, limits)
    if why:
        raise ApiError(422, f"gpus: {why}", field="gpus")
    why = runtime.backend.missing_tool(body.launcher)
    if why:
        raise ApiError(422, f"launcher: {why}", field="launcher")
    image_reference = await require_image(request, ws, body.image)
    try:
        if body.sweep is not None:  # a grid as text is stored as the grid it reads as
            body.sweep.grid = sweeps.grid_of(body.sweep.grid)
        param_sets = sweeps.expand(body.sweep.grid, body.sweep.runs) if body.sweep else [{}]
    except sweeps.SweepError as exc:
        raise ApiError(422, str(exc), field=exc.field) from None
    parallel = body.sweep.parallel if body.sweep else 1
    dataset_versions = await request.app.state.datasets.resolve(body.workspace, body.datasets) if body.datasets else []

    if body.code_id is not None:
        why = await code_problem(request, body.workspace, body.code_id, body.entrypoint)
        if why:
            raise ApiError(422, why, field=why.split(":", 1)[0])
    now = time.time()
    # the ids (12 hex digits for the training, 16 for each job) from one read of the system's random
    # source: each read is a system call that lets the service's other threads take the GIL
    ids = os.urandom(6 + 8 * len(param_sets)).hex()
    training = new_row(Training, id=ids[:12], workspace=body.workspace, name=body.name,
                       description=body.description, kind=kind, created_by=identity.name,
                       created_at=dt.datetime.now(dt.timezone.utc),
                       spec=TrainingSpec.model_validate({
                           **body.model_dump(exclude={"workspace", "name", "description", "secret_env"}, mode="json"),
                           "dataset_versions": dataset_versions, "image_reference": image_reference,
                           **(spec_extra or {})}),
                       state="active", idempotency_key=key, request_digest=digest)
    name_burst = runtime.bursts.name  # each job's burst, named as it is submitted (scheduling/bursts.py)
    jobs = [
        new_row(Job, id=ids[12 + 16 * i:28 + 16 * i], training_id=training.id, workspace=body.workspace,
                name=sweeps.job_name(body.name, i, params), seq=i, params=params, kind="training",
                gpus=body.gpus, gpus_per_node=body.gpus_per_node, priority=body.priority,
                preemptible=body.preemptible, max_runtime=body.max_runtime, state="queued",
                held=i >= parallel, submitted_at=now + i * 1e-6, attained=0.0, restarts=0,
                stopping=False, cancel_requested=False, created_by=identity.name,
                burst=name_burst(body.workspace, body.gpus, "training", now + i * 1e-6))
        for i, params in enumerate(param_sets)
    ]
    try:
        await request.app.state.submissions.write(
            vars(training), [{"training_id": training.id, "user": identity.name}], [vars(j) for j in jobs],
            [{"training_id": training.id, "name": k, "value": v} for k, v in body.secret_env.items()])
    except KeyTaken as taken:
        return await _replayed(request, response, taken, digest)
    training.owner_names = [identity.name]
    if dataset_versions:
        await request.app.state.datasets.mark(body.workspace, dataset_versions, [j.id for j in jobs], in_use=True)
    runtime.submitted(jobs)
    return training_out(training, jobs, secret_names=list(body.secret_env))


async def _replayed(request: Request, response: Response | None, taken: KeyTaken, digest: str | None) -> TrainingOut:
    """The answer to a retry: the training that holds the key, if the request is the same."""
    if taken.digest != digest:
        raise ApiError(422, f"{IDEMPOTENCY_HEADER}: already used for another request (training {taken.training_id!r}); "
                            "make a new key for a new request", field=IDEMPOTENCY_HEADER)
    found = await read_training(request, taken.training_id)
    if found is None:  # deleted between the two reads: its key went with it
        raise ApiError(409, f"{IDEMPOTENCY_HEADER}: training {taken.training_id!r} was deleted meanwhile; retry",
                       field=IDEMPOTENCY_HEADER)
    live = [j.id for j in found.jobs if j.state in LIVE]
    dataset_versions = TrainingSpec.from_json(found.spec).dataset_versions  # as resolved the first time
    if dataset_versions and live:  # the first answer may have been cut off before these were marked (PUT: idempotent)
        await request.app.state.datasets.mark(found.workspace, dataset_versions, live, in_use=True)
    if response is not None:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    return found


@router.get("/trainings", response_model=list[TrainingOut], summary="Trainings, newest first (without their jobs)")
async def list_trainings(
    request: Request,
    scope: Annotated[Listing, listing("trainings:read")],
    limit: int = Query(default=100, ge=1, le=1000),
):
    names = await scope.workspaces(request)
    if not names:
        return []

    def query(session):
        trainings = list(session.scalars(
            select(Training).where(Training.workspace.in_(names)).order_by(Training.created_at.desc()).limit(limit)
        ))
        jobs: dict[str, list[Job]] = {t.id: [] for t in trainings}
        for chunk in in_chunks(list(jobs)):  # IN lists of a few lengths: see in_chunks
            for j in session.scalars(select(Job).where(Job.training_id.in_(chunk))):
                jobs[j.training_id].append(j)
        secrets = secret_names(session, list(jobs))
        return [training_out(t, jobs[t.id], with_jobs=False, secret_names=secrets[t.id]) for t in trainings]

    return await in_session(request, query)


@router.get("/trainings/{training_id}", response_model=TrainingOut)
async def get_training(training: Annotated[TrainingOut, access.training(Level.MEMBER, "trainings:read")]):
    return training


@router.put("/trainings/{training_id}/owners", response_model=TrainingOut)
async def set_owners(request: Request, training: Controlled, body: OwnersUpdate):
    training_id = training.id
    ws = await request.app.state.hub.workspace(training.workspace)
    strangers = [u for u in body.owners if u not in ws.members]
    if strangers:
        raise ApiError(422, f"owners: not members of {training.workspace!r}: {', '.join(strangers)}", field="owners")

    def update(session):
        t = session.get(Training, training_id)
        t.owners = [TrainingOwner(user=u) for u in sorted(set(body.owners))]

    await in_session(request, update)
    return await read_training(request, training_id)



async def _set_training_state(request: Request, training_id: str, state: str) -> None:
    def update(session):
        session.get(Training, training_id).state = state

    await in_session(request, update)


@router.post("/trainings/{training_id}/cancel", response_model=TrainingOut, summary="Cancel every job not yet ended")
async def cancel_training(request: Request, identity: CurrentIdentity, training: Controlled):
    training_id = training.id
    await _set_training_state(request, training_id, "cancelled")
    for job in training.jobs:
        if job.state in LIVE:
            request.app.state.runtime.cancel(job.id, f"cancelled by {identity.name}")
    return await read_training(request, training_id)


@router.post("/trainings/{training_id}/pause", response_model=TrainingOut, summary="Hold the sweep's queued jobs")
async def pause_training(request: Request, training: Controlled):
    training_id = training.id
    if training.state in ("succeeded", "failed", "cancelled"):
        raise ApiError(409, f"training {training_id!r} has ended ({training.state})")
    await _set_training_state(request, training_id, "paused")
    request.app.state.runtime.hold([j.id for j in training.jobs if j.state == "queued"], True)
    return await read_training(request, training_id)


@router.post("/trainings/{training_id}/resume", response_model=TrainingOut, summary="Release a paused sweep")
async def resume_training(request: Request, training: Controlled):
    training_id = training.id
    if not training.paused:
        raise ApiError(409, f"training {training_id!r} is not paused")
    await _set_training_state(request, training_id, "active")
    request.app.state.runtime.release_training(training_id)
    return await read_training(request, training_id)


@router.post("/trainings/{training_id}/retry", response_model=TrainingOut, summary="Run the failed jobs again")
async def retry_training(request: Request, training: Controlled):
    training_id = training.id
    failed = [j for j in training.jobs if j.state == "failed"]
    if not failed:
        raise ApiError(409, f"training {training_id!r} has no failed job to retry")

    def retry(session):
        t = session.get(Training, training_id)
        t.state = "active"
        now = time.time()
        base = 1 + max(j.seq for j in training.jobs)
        new = []
        for i, old in enumerate(failed):
            src = session.get(Job, old.id)
            new.append(Job(id=uuid.uuid4().hex[:16], training_id=t.id, workspace=src.workspace,
                           name=f"{src.name} (retry)"[:160], seq=base + i, params=src.params, kind=src.kind,
                           gpus=src.gpus, gpus_per_node=src.gpus_per_node, priority=src.priority,
                           preemptible=src.preemptible, max_runtime=src.max_runtime, state="queued", held=True,
                           submitted_at=now + i * 1e-6, attained=0.0, restarts=0, stopping=False,
                           cancel_requested=False, created_by=src.created_by))
        session.add_all(new)
        session.flush()
        return new, t.spec.dataset_versions

    new, dataset_versions = await in_session(request, retry)
    if dataset_versions:
        await request.app.state.datasets.mark(training.workspace, dataset_versions, [j.id for j in new],
                                              in_use=True)
    request.app.state.runtime.submitted(new)
    request.app.state.runtime.release_training(training_id)
    return await read_training(request, training_id)


@router.delete("/trainings/{training_id}", status_code=204, summary="Delete an ended training and its jobs")
async def delete_training(request: Request, training: Controlled):
    training_id = training.id
    if any(j.state in LIVE for j in training.jobs):
        raise ApiError(409, f"training {training_id!r} still has jobs queued or running; cancel it first")
    await in_session(request, lambda s: s.delete(s.get(Training, training_id)))
    return Response(status_code=204)

"""The running half of the jobqueue: store, backend, scheduler and the coordinator loop.

The API (the controller) validates and commits submissions, then hands them
here; everything that changes a job afterwards happens on the event-loop
thread through the :class:`~flightbase_jobqueue.coordinator.Coordinator`.
When jobs end (a step reports them finished, or a queued one is cancelled),
their sweeps release their next held jobs and their dataset versions are no
longer marked in use.

Recovery at start-up (:meth:`JobRuntime.start`): the store reloads queued and
active jobs; each active job is re-attached to its processes if they are still
alive, or finished from its recorded exit code, or failed as lost; a granted
lease is adopted (the lease culler checks its server is still there), and a job
whose cancel was asked before the restart still ends CANCELLED (the coordinator
recovers its cancels from the store: :meth:`Coordinator.recover`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

from sqlalchemy import JSON, exists, select, type_coerce, update
from flightbase_server.service import tasks
from flightbase_server.service.db import Sessions, in_chunks

from flightbase_server.settings import PlatformSettings, parse_preemption_budget
from flightbase_server.workspaces import WorkspaceSettings
from flightbase_jobqueue import builtin, leases, models, prometheus, sweeps
from flightbase_jobqueue.backends.local import LaunchSpec
from flightbase_jobqueue.coordinator import Coordinator
from flightbase_jobqueue.datasets import DatasetClient
from flightbase_jobqueue.insight_cache import SharedInsight
from flightbase_jobqueue.scheduling import insight
from flightbase_jobqueue.scheduling.bursts import Bursts
from flightbase_jobqueue.scheduling.placement import check_admissible
from flightbase_jobqueue.scheduling.policies import POLICIES, make_policy
from flightbase_jobqueue.backends import make_backend  # settings.backend: local or kubernetes
from flightbase_jobqueue.backends.spec import DatasetVersion
from flightbase_jobqueue.scheduling.types import Job, WorkspaceLimits
from flightbase_jobqueue.states import JobState
from flightbase_jobqueue.store import SqlStore, to_core
from flightbase_jobqueue.training_spec import SpecError, TrainingSpec

log = logging.getLogger("flightbase.jobqueue.runtime")

_JOBS, _TRAININGS = models.Job.__table__, models.Training.__table__
_OTHER = _JOBS.alias("sibling")
# JobRuntime._ended's one query (with the ended jobs' ids added): the job's workspace and
# training, whether that training has a held queued job, and its spec as plain JSON.
_ENDED = (select(_JOBS.c.id, _JOBS.c.workspace, _JOBS.c.training_id,
                 exists().where(_OTHER.c.training_id == _JOBS.c.training_id, _OTHER.c.held.is_(True),
                                _OTHER.c.state == JobState.QUEUED.value).label("has_held"),
                 type_coerce(_TRAININGS.c.spec, JSON))
          .join(_TRAININGS, _TRAININGS.c.id == _JOBS.c.training_id))

# What ``store.to_core`` reads of a job (held_sweeps reads these columns, not ORM rows).
_CORE_COLUMNS = tuple(getattr(models.Job, c) for c in (
    "id", "workspace", "gpus", "submitted_at", "priority", "gpus_per_node", "preemptible", "max_runtime",
    "kind", "attained", "restarts", "enqueued_at", "name", "training_id", "burst"))

DEFAULT_MEMORY_GB_PER_GPU = WorkspaceSettings.model_fields["memory_gb_per_gpu"].default

def limits_from(settings) -> WorkspaceLimits:
    return WorkspaceLimits(
        quota=settings.gpu_quota,
        max_gpus_per_job=settings.max_gpus_per_job,
        weight=settings.fairshare_weight,
        allow_borrowing=settings.allow_borrowing,
        borrowing_limit=settings.borrowing_limit,
    )


def held_sweeps(sessions: Sessions, limit: int = insight.DEFAULT_LIMIT) -> list[insight.HeldSweep]:
    """The active trainings' held jobs, for the queue's projection to release as the runtime
    does (``JobRuntime._release_sweeps``): each sweep's jobs that hold one of its ``parallel``
    places (``sweeps.PLACE_STATES``, as ``sweeps.to_release`` counts them), and its
    held jobs by number, the first ``limit`` of them in all (the projection places no more jobs
    than that). One query of the trainings that hold jobs back (most hold none), one of their
    jobs' ids, one of the held jobs' columns (not ORM rows: over a sweep of 1,000 trials they
    took 42 ms, docs/benchmarks.md)."""
    job, training = models.Job, models.Training
    holding = select(training.id).where(
        training.id.in_(select(job.training_id).where(job.held.is_(True), job.state == JobState.QUEUED.value)),
        training.state == "active")
    with sessions() as session:
        parallel = {tid: TrainingSpec.from_json(spec).parallel for tid, spec in session.execute(
            select(training.id, type_coerce(training.spec, JSON)).where(training.id.in_(holding)))}
        if not parallel:
            return []
        members: dict[str, list[str]] = {}
        for tid, jid in session.execute(select(job.training_id, job.id).where(
                job.training_id.in_(holding), job.state.in_(sweeps.PLACE_STATES), job.held.is_(False))):
            members.setdefault(tid, []).append(jid)
        held: dict[str, list[Job]] = {}
        for row in session.execute(select(*_CORE_COLUMNS).where(
                job.training_id.in_(holding), job.held.is_(True), job.state == JobState.QUEUED.value)
                .order_by(job.submitted_at, job.training_id, job.seq).limit(limit)):
            held.setdefault(row.training_id, []).append(to_core(row))
    out = []
    for tid, jobs in held.items():
        if tid in parallel:
            mine = members.get(tid, [])
            out.append(insight.HeldSweep(frozenset(mine), tuple(jobs), max(0, parallel[tid] - len(mine))))
    return out


def policy_options(settings) -> dict:
    """The operator's settings that are options of the scheduling policy: the preemption budget
    (``FLIGHTBASE_PREEMPTION_BUDGET``), for the policies that have one (``las``)."""
    cls = POLICIES.get(settings.scheduler_policy)
    if cls is None or "preemption_budget" not in {f.name for f in dataclasses.fields(cls)}:
        return {}
    return {"preemption_budget": parse_preemption_budget(settings.preemption_budget)}


class JobRuntime:
    def __init__(self, settings: PlatformSettings, sessions: Sessions, *, code_root: Path,
                 datasets: DatasetClient | None = None, grace_seconds: float = 30.0,
                 cancel_grace_seconds: float = 5.0, interval: float = 2.0, min_interval: float = 0.2):
        self.settings = settings
        self.datasets = datasets
        self.sessions = sessions
        self.code_root = code_root
        self.cancel_grace_seconds = cancel_grace_seconds
        self.interval = interval
        # Passes are at least this far apart: a burst of submissions wakes the loop
        # hundreds of times a second, and one pass serves them all.
        self.min_interval = min_interval
        self.limits: dict[str, WorkspaceLimits] = {}
        # each workspace's memory_gb_per_gpu (its containers' memory limit), refreshed with the limits
        self.memory_gb_per_gpu: dict[str, float] = {}
        self.store = SqlStore(sessions, lambda: self.limits)
        # names each submitted job's burst (bursts.py); after a restart, the bursts still open
        self.bursts = Bursts()
        self.bursts.resume([*self.store.queued_jobs().jobs(), *(a.job for a in self.store.active_jobs())])

        self.backend, self.inventory = make_backend(settings, self.resolve, resolve_many=self.resolve_many)
        self.policy = make_policy(settings.scheduler_policy, **policy_options(settings))
        # Jupyter trainings' leases are granted by the broker; other jobs go on to the backend
        self.leases = leases.LeaseBroker(self.backend)
        self.coordinator = Coordinator(self.store, self.leases, self.policy, self.inventory,
                                       grace_seconds=grace_seconds)
        self.wakeup = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._step_waiters: list[asyncio.Future] = []
        self.on_lease_cancelled: Callable[[str], None] = lambda job_id: None
        self._end_reasons: dict[str, str] = {}
        # counts every change of the queue's state that a request or the runtime makes (poke,
        # limits); with the flow, the shared projection's version (insight()/insight_cache.py)
        self.version = 0
        self.flow = 0  # the queue's flow: scheduler passes and submissions (insight_cache.py)
        self._insight = SharedInsight(self._explain, lambda: (self.version, self.flow))

    # -- life cycle -----------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.backend.on_event = lambda: self._loop.call_soon_threadsafe(self.wakeup.set)
        self.leases.on_event = self.wakeup.set  # called on the loop thread
        self._recover()
        self._task = asyncio.create_task(self._run(), name="coordinator")

    async def stop(self) -> None:
        await tasks.cancel(self._task)
        try:  # the fair-share usage charged since the last periodic save (Coordinator.save_usage)
            self.coordinator.save_usage(time.time(), force=True)
        except Exception:
            log.exception("could not save the fair-share usage at stop")

    def _recover(self) -> None:
        with self.sessions() as session:
            active = session.scalars(
                select(models.Job).where(models.Job.state.in_([JobState.STARTING.value, JobState.RUNNING.value]))
            ).all()
        for row in active:
            if row.kind == leases.KIND:  # a granted lease: the reconciler checks its server is still there
                self.leases.adopt(row.id)
                log.info("recovered lease %s", row.id)
                continue
            outcome = self.backend.reattach(row.id, stopping=row.stopping or row.cancel_requested)
            if outcome == "lost":
                self._set_reason(row.id, "the job's processes were gone when the jobqueue restarted")
                self.store.mark_lost(row.id)  # its usage interval ends now, as "lost"
            log.info("recovered job %s: %s", row.id, outcome or "still running, re-attached")

    async def _run(self) -> None:
        while True:
            began = time.monotonic()
            try:
                now = time.time()
                with prometheus.SCHEDULER_PASS.time():  # flightbase_scheduler_pass_seconds (failed passes too)
                    result = self.coordinator.step(now)
                prometheus.observe_step(now, result.admitted, result.preempted, self.store.active_jobs)
                if result.finished:
                    self._ended([job_id for job_id, _ in result.finished])
                timeout = self.interval
                if result.wake_at is not None:
                    timeout = min(timeout, max(0.05, result.wake_at - time.time()))
            except Exception:  # a bad step must not stop the loop; the next one retries
                log.exception("coordinator step failed")
                timeout = self.interval
            self._stepped()
            try:
                await asyncio.wait_for(self.wakeup.wait(), timeout)
            except asyncio.TimeoutError:
                pass
            self.wakeup.clear()
            pause = self.min_interval - (time.monotonic() - began)
            if pause > 0:
                await asyncio.sleep(pause)

    def poke(self) -> None:
        self.version += 1
        self.wakeup.set()

    def _stepped(self) -> None:
        self.flow += 1
        waiters, self._step_waiters = self._step_waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    async def next_step(self, timeout: float) -> None:
        """Wait until the coordinator has made its next pass (or ``timeout``): long polls use it."""
        fut = asyncio.get_running_loop().create_future()
        self._step_waiters.append(fut)
        self.wakeup.set()  # a pass is asked for, nothing changed (the pass counts as flow)
        try:
            await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            pass

    def note(self, job_id: str, reason: str | None) -> None:
        """Record (or clear) what users should know of a job now, e.g. an idle warning."""
        self._set_reason(job_id, reason)

    def ending(self, job_id: str, reason: str) -> None:
        """Why a lease is about to end (its server is being stopped for it), whoever releases it."""
        self._end_reasons[job_id] = reason
        self._set_reason(job_id, reason)

    def release_lease(self, job_id: str, reason: str) -> None:
        """A Jupyter training's server is gone: its lease ends (a queued one is cancelled)."""
        reason = self._end_reasons.pop(job_id, reason)
        state = self.store.state_of(job_id)
        if state is not None and state.holds_gpus():
            self._set_reason(job_id, reason)
            self.leases.release(job_id)
            self.poke()
        elif state in (JobState.QUEUED, JobState.PREEMPTED):
            self.cancel(job_id, reason)

    # -- what the API calls (on the loop thread) --------------------------------------
    @property
    def gpu_kind(self) -> str:
        """What the scheduler hands out: ``gpu``, or ``cpu-slot`` on a machine without GPUs."""
        return self.backend.gpu_kind

    def gpus_held(self) -> int:
        """How many GPUs the active jobs hold now (every node)."""
        return sum(len(g) for a in self.store.active_jobs() for g in a.placement.values())

    def admissible(self, job: Job, limits: WorkspaceLimits) -> str | None:
        return check_admissible(job, self.inventory.nodes(), limits)

    def submitted(self, rows: Sequence[models.Job]) -> None:
        self.store.enqueue(rows)
        # the queue's flow, not a change of the jobs already in it (insight_cache.py)
        self.flow += 1
        self.wakeup.set()

    def cancel(self, job_id: str, reason: str) -> None:
        state = self.store.state_of(job_id)
        now = time.time()
        if state in (JobState.QUEUED, JobState.PREEMPTED):
            self.store.transition(job_id, JobState.CANCELLED, at=now, reason=reason)
            self._ended([job_id])
        elif state is not None and state.holds_gpus():
            if job_id in self.leases.held:  # a Jupyter training cancelled from the jobs API: its server stops too
                self.on_lease_cancelled(job_id)
            self.store.mark_cancel_requested(job_id)
            self._set_reason(job_id, reason)
            self.coordinator.cancel(job_id, now, grace_seconds=self.cancel_grace_seconds)
        self.poke()

    def set_priority(self, job_id: str, priority: int) -> None:
        """A job's new priority, used from the next scheduling pass on."""
        self.store.set_priority(job_id, priority)
        self.poke()

    def requeue(self, job_id: str, reason: str) -> bool:
        """Stop a running job and queue it again, as a preemption would; False if it holds no GPUs
        or is already being stopped (:meth:`Coordinator.requeue`)."""
        done = self.coordinator.requeue(job_id, time.time(), reason)
        self.poke()
        return done

    def hold(self, job_ids: Sequence[str], held: bool) -> None:
        self.store.set_held(job_ids, held, time.time())
        self.poke()

    def release_training(self, training_id: str) -> None:
        self._release_sweeps([training_id])
        self.poke()

    def insight(self, require: Iterable[str] = ()) -> dict[str, insight.QueueInsight]:
        """The whole queue's projection, shared by requests until a request changes the queue,
        a pass does (reused a while when the projection is expensive) or it is 2 s old
        (insight_cache.py); read-only, each request filters it and shows only queued jobs."""
        return self._insight.get(require)

    def _explain(self) -> dict[str, insight.QueueInsight]:
        snap = self.coordinator.snapshot(time.time())
        room = insight.DEFAULT_LIMIT - len(snap.queue)  # (the projection places no more jobs than that)
        held = held_sweeps(self.sessions, room) if room > 0 else []
        found = insight.explain(snap, policy=self.coordinator.policy, sweeps=held)
        return {i.job_id: i for i in found}

    def set_limits(self, limits: Mapping[str, WorkspaceLimits]) -> None:
        limits = dict(limits)
        if limits != self.limits:  # (a refresh that changed nothing leaves the projection be)
            self.limits = limits
            self.version += 1

    def use_limits(self, workspace: str, limits: WorkspaceLimits, memory_gb_per_gpu: float | None = None) -> None:
        """The workspace's limits as a request just read them apply from now on: work submitted to a
        workspace made (or changed) less than a refresh ago is not scheduled without its quota."""
        if self.limits.get(workspace) != limits:  # (each submission reads them: most change nothing)
            self.limits = {**self.limits, workspace: limits}
            self.version += 1
        if memory_gb_per_gpu is not None:
            self.memory_gb_per_gpu = {**self.memory_gb_per_gpu, workspace: memory_gb_per_gpu}

    # -- internals ----------------------------------------------------------------------
    def _set_reason(self, job_id: str, reason: str) -> None:
        with self.sessions.begin() as session:
            session.execute(update(models.Job).where(models.Job.id == job_id).values(reason=reason))

    def _ended(self, job_ids: Sequence[str]) -> None:
        """After jobs end: the next jobs of their sweeps may go, their datasets are free.

        One query for a pass's ended jobs (three before): each job's workspace, whether its
        training still has held queued jobs (only a sweep's can; most trainings have none,
        and then there is nothing to release), and its spec as plain JSON (most name no
        dataset, and reading each as a TrainingSpec, a validation, only to find that out was
        much of what an ended job cost)."""
        with self.sessions() as session:
            rows = [row for chunk in in_chunks(list(dict.fromkeys(job_ids)))
                    for row in session.execute(_ENDED.where(_JOBS.c.id.in_(chunk)))]
        held = {training_id for _, _, training_id, has_held, _ in rows if has_held}
        if held:
            self._release_sweeps(sorted(held))
        if self.datasets is None:
            return
        for job_id, workspace, _, _, raw in rows:
            if isinstance(raw, dict) and raw.get("dataset_versions"):
                spec = TrainingSpec.from_json(raw)
                asyncio.get_running_loop().create_task(
                    self.datasets.mark(workspace, spec.dataset_versions, [job_id], in_use=False))

    def _release_sweeps(self, trainings: Sequence[str]) -> None:
        """Let the next jobs of these trainings' sweeps go, as many as each one's ``parallel``."""
        with self.sessions() as session:
            ids = list(dict.fromkeys(trainings))
            release: list[str] = []
            found = [t for chunk in in_chunks(ids)
                     for t in session.scalars(select(models.Training).where(models.Training.id.in_(chunk)))]
            for training in found:
                if training.state != "active":
                    continue
                parallel = training.spec.parallel
                rows = session.execute(
                    select(models.Job.seq, models.Job.state, models.Job.held, models.Job.id)
                    .where(models.Job.training_id == training.id)
                ).all()
                by_seq = {seq: job_id for seq, _, _, job_id in rows}
                release += [by_seq[s] for s in sweeps.to_release([(s, st, h) for s, st, h, _ in rows], parallel)]
        if release:
            self.store.set_held(release, False, time.time())

    def resolve(self, job_id: str) -> LaunchSpec:
        """The job's shared LaunchSpec; the backend adds its own part (called by the backend on start).
        Raises KeyError for a job that is not stored, SpecError for a spec that cannot start one."""
        found = self.resolve_many([job_id])[job_id]
        if isinstance(found, Exception):
            raise found
        return found

    def resolve_many(self, job_ids: Sequence[str]) -> dict[str, LaunchSpec | Exception]:
        """:meth:`resolve` for many jobs in two queries (their jobs with their trainings' specs, then
        the trainings' secret values), not three each: a backend that starts a pass's admissions
        together (the simulated one) asks once. Each id maps to its LaunchSpec, or to the error
        :meth:`resolve` would raise for it."""
        jobs, trainings, secrets = models.Job.__table__, models.Training.__table__, models.TrainingSecret.__table__
        wanted = list(dict.fromkeys(job_ids))
        with self.sessions() as session:
            rows = [row for chunk in in_chunks(wanted) for row in session.execute(
                select(jobs.c.id, jobs.c.workspace, jobs.c.created_by, jobs.c.params, jobs.c.restarts,
                       trainings.c.id.label("training_id"), trainings.c.spec)
                .join(trainings, trainings.c.id == jobs.c.training_id)
                .where(jobs.c.id.in_(chunk)))]
            values: dict[str, dict[str, str]] = {row.training_id: {} for row in rows}
            for chunk in in_chunks(list(values)):
                for training_id, name, value in session.execute(
                        select(secrets.c.training_id, secrets.c.name, secrets.c.value)
                        .where(secrets.c.training_id.in_(chunk))):
                    if models.TrainingSecret.is_env(name):
                        values[training_id][name] = value
        out: dict[str, LaunchSpec | Exception] = {job_id: KeyError(job_id) for job_id in wanted}
        for row in rows:
            spec = row.spec
            if spec.entrypoint is None:
                out[row.id] = SpecError(f"training {row.training_id}'s spec has no entrypoint: it cannot start a job")
                continue
            out[row.id] = LaunchSpec(
                job_id=row.id,
                training_id=row.training_id,
                workspace=row.workspace,
                user=row.created_by,
                launcher=spec.launcher,
                entrypoint=spec.entrypoint,
                args=tuple(spec.args) + tuple(sweeps.job_args(row.params)),
                env=dict(spec.env),
                secret_env=dict(values[row.training_id]),  # every job of the training: a sweep's, a retry's, a restart's
                code_dir=(self.code_root / spec.code_id) if spec.code_id else (
                    builtin.model_dir(spec.builtin_model) if spec.builtin_model else None),
                params=dict(row.params),
                datasets=tuple(DatasetVersion(d.name, d.version, Path(d.path)) for d in spec.dataset_versions),
                image=spec.image_or_default,
                image_reference=spec.image_reference,
                memory_gb_per_gpu=self.memory_gb_per_gpu.get(row.workspace, DEFAULT_MEMORY_GB_PER_GPU),
                restarts=row.restarts,
                gpudirect_p2p=spec.gpudirect_p2p,
                gpudirect_rdma=spec.gpudirect_rdma,
            )
        return out


"""The SQL store of jobs: the coordinator's :class:`~.ports.Store` over SQLAlchemy.

Write-through: every transition is committed to the database first, then
applied to the in-memory view the scheduler reads (the queue as a
:class:`QueueView`, the active jobs). Only this process writes job state, so
the memory view is exact; it is rebuilt from the database at start-up
(:meth:`SqlStore.load`), which is what makes a crash lose nothing that was
accepted. A scheduler pass's transitions (the backend's events it handles, then
its admissions) are each written in one transaction (:meth:`SqlStore.batch`)
rather than one per job: committed, then applied to the memory view, and only
then does the coordinator act on them (start the admitted jobs), so nothing
acted on is ever missing from the database; a batch that fails to commit
writes nothing.

Usage accounting lives here too: each run of a job is a row of
``usage_intervals``, opened as the job enters STARTING and closed as it
leaves STARTING/RUNNING, in the transaction of that state change (see
:mod:`flightbase_jobqueue.accounting`).

Threading: the coordinator and every memory mutation run on the service's
event-loop thread. API handlers insert new rows from worker threads
(:func:`insert_jobs`) and then hand the jobs to the loop (:meth:`enqueue`).
"""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from dataclasses import replace
from functools import lru_cache
from typing import Callable, Iterable, Iterator, Mapping, Sequence

from sqlalchemy import Connection, bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from flightbase_server.service.db import Sessions, in_chunks

from flightbase_jobqueue import models
from flightbase_jobqueue.scheduling.queueview import QueueView
from flightbase_jobqueue.scheduling.types import ActiveJob, Job, Placement, WorkspaceLimits
from flightbase_jobqueue.states import JobState, check_transition


def to_core(row: models.Job) -> Job:
    return Job(
        id=row.id,
        workspace=row.workspace,
        gpus=row.gpus,
        submitted_at=row.submitted_at,
        priority=row.priority,
        gpus_per_node=row.gpus_per_node,
        preemptible=row.preemptible,
        max_runtime=row.max_runtime,
        kind=row.kind,  # type: ignore[arg-type]
        attained=row.attained,
        restarts=row.restarts,
        enqueued_at=row.enqueued_at,
        name=row.name,
        training=row.training_id,
        burst=row.burst or "",
    )


def placement_from_json(data: Mapping | None) -> Placement:
    return {node: tuple(gpus) for node, gpus in (data or {}).items()}


def placement_to_json(placement: Placement) -> dict:
    return {node: list(gpus) for node, gpus in placement.items()}


class SqlStore:
    def __init__(self, sessions: Sessions, limits: Callable[[], Mapping[str, WorkspaceLimits]] = dict):
        self.sessions = sessions
        self._limits = limits
        self._queue = QueueView()
        self._active: dict[str, ActiveJob] = {}
        self._state: dict[str, JobState] = {}  # states of queued and active jobs
        self._lost: set[str] = set()  # active jobs found lost at recovery (their usage ends as "lost")
        self._batch: _Batch | None = None  # the open batch (:meth:`batch`)
        self._batch_thread: int | None = None  # (a batch is its own thread's: the loop's)
        self.load()

    def load(self) -> None:
        """(Re)build the memory view from the database."""
        self._queue = QueueView()
        self._active.clear()
        self._state.clear()
        live = [JobState.QUEUED.value, JobState.STARTING.value, JobState.RUNNING.value, JobState.PREEMPTED.value]
        with self.sessions() as session:
            for row in session.scalars(select(models.Job).where(models.Job.state.in_(live))):
                self._remember(row)

    def _remember(self, row: models.Job) -> None:
        state = JobState(row.state)
        self._state[row.id] = state
        if state is JobState.QUEUED and not row.held:
            self._queue.add(to_core(row))
        elif state.holds_gpus():
            self._active[row.id] = ActiveJob(
                to_core(row), placement_from_json(row.placement), row.started_at or row.submitted_at, row.stopping
            )

    # -- the Store protocol ------------------------------------------------------
    def queued_jobs(self) -> QueueView:
        return self._queue

    def active_jobs(self) -> Sequence[ActiveJob]:
        return list(self._active.values())

    def workspace_limits(self) -> Mapping[str, WorkspaceLimits]:
        return self._limits()

    def state_of(self, job_id: str) -> JobState | None:
        return self._state.get(job_id)

    @contextmanager
    def batch(self, job_ids: Iterable[str] = ()) -> Iterator[None]:
        """One transaction for every :meth:`transition` made inside (a scheduler pass's), instead
        of one each. Nothing of it is on disk, nor in the memory view, until the block ends
        and it commits: the caller acts on the changes (starts jobs) only after that. If the
        block raises, or the commit fails, none of it is written and the memory view is as
        before. ``job_ids``: the jobs it will move, read in one query rather than one each.
        Nested, the inner block is part of the outer one."""
        if self._batch is not None and self._batch_thread == threading.get_ident():
            yield
            return
        try:
            with self.sessions.begin_connection() as conn:  # Core only: no session's bookkeeping
                batch = self._batch = _Batch(conn)
                self._batch_thread = threading.get_ident()
                batch.read(job_ids)
                yield
                batch.write()
        finally:
            self._batch, self._batch_thread = None, None
        for apply in batch.after:  # committed: now the memory view
            apply()

    def transition(self, job_id: str, new_state: JobState, *, at: float, placement: Placement | None = None,
                   attained: float | None = None, restarts: int | None = None, exit_code: int | None = None,
                   reason: str | None = None) -> Job:
        if self._batch is not None and self._batch_thread == threading.get_ident():
            job, apply = self._write(self._batch, job_id, new_state, at=at, placement=placement, attained=attained,
                                     restarts=restarts, exit_code=exit_code, reason=reason)
            if apply is not None:
                self._batch.after.append(apply)
            return job
        with self.sessions.begin_connection() as conn:
            batch = _Batch(conn)
            job, apply = self._write(batch, job_id, new_state, at=at, placement=placement, attained=attained,
                                     restarts=restarts, exit_code=exit_code, reason=reason)
            batch.write()
        if apply is not None:  # committed: now the memory view
            apply()
        return job

    def _write(self, batch: _Batch, job_id: str, new_state: JobState, *, at: float, placement: Placement | None,
               attained: float | None, restarts: int | None, exit_code: int | None,
               reason: str | None) -> tuple[Job, Callable[[], None] | None]:
        """A transition's writes in ``batch`` (made when it is written); returns the job as written
        and what to do to the memory view once they are committed (None: nothing changed)."""
        row = batch.row(job_id)
        if row is None:
            raise KeyError(job_id)
        old = JobState(row.state)
        if old is new_state:
            return to_core(row), None
        check_transition(old, new_state)
        row.state = new_state.value
        if old.holds_gpus() and not new_state.holds_gpus():  # its run ends: so does its usage interval
            outcome = "lost" if new_state is JobState.FAILED and job_id in self._lost else new_state.value
            batch.close_interval(job_id, at, outcome)
        if new_state is JobState.STARTING:
            if placement is None:
                raise ValueError("a job moving to STARTING needs its placement")
            row.placement = placement_to_json(placement)
            row.started_at = at
            row.stopping = False
            batch.close_interval(job_id, at, "lost")  # (none is open: a run ends before the next starts)
            batch.open_interval({
                "job_id": job_id, "training_id": row.training_id, "workspace": row.workspace,
                "user": row.created_by, "kind": row.kind, "gpus": row.gpus, "placement": row.placement,
                "started_at": at, "ended_at": None, "outcome": None})
        if attained is not None:
            row.attained = attained
        if restarts is not None:
            row.restarts = restarts
        if exit_code is not None:
            row.exit_code = exit_code
        if reason is not None and not (row.cancel_requested and row.reason):
            row.reason = reason  # (a cancel keeps the reason recorded when it was asked for)
        if new_state is JobState.QUEUED:
            row.enqueued_at = at
            row.placement = None
            row.stopping = False
        if new_state.is_terminal():
            row.finished_at = at
        job = to_core(row)
        held = row.held
        return job, lambda: self._applied(job_id, old, new_state, job, placement, at, held)

    def _applied(self, job_id: str, old: JobState, new_state: JobState, job: Job, placement: Placement | None,
                 at: float, held: bool) -> None:
        """A committed transition, in the memory view."""
        if old is JobState.QUEUED and job_id in self._queue:
            self._queue.remove(job_id)
        if old.holds_gpus() and not new_state.holds_gpus():
            self._active.pop(job_id, None)
        if new_state is JobState.STARTING:
            self._active[job_id] = ActiveJob(job, placement, at)
        elif new_state is JobState.RUNNING and job_id in self._active:
            self._active[job_id] = replace(self._active[job_id], job=job)
        elif new_state is JobState.QUEUED and not held:
            self._queue.add(job)
        if new_state.is_terminal():
            self._state.pop(job_id, None)
        else:
            self._state[job_id] = new_state
        if not new_state.holds_gpus():
            self._lost.discard(job_id)

    def mark_lost(self, job_id: str) -> None:
        """The job's processes were found gone at recovery: its run, when it ends (FAILED), ends as "lost"."""
        self._lost.add(job_id)

    def record_preemption(self, job_id: str, reason: str, at: float) -> None:
        active = self._active.get(job_id)
        if active is None or active.stopping:
            return
        with self.sessions.begin() as session:
            session.add(models.Preemption(job_id=job_id, reason=reason, at=at))
            session.execute(update(models.Job).where(models.Job.id == job_id).values(stopping=True))
        self._active[job_id] = replace(active, stopping=True)

    # -- the controller's side (called on the loop thread) ------------------------
    def enqueue(self, rows: Iterable[models.Job]) -> None:
        """Jobs already committed as QUEUED (by :func:`insert_jobs`) join the queue."""
        for row in rows:
            if row.id not in self._state:
                self._remember(row)

    def set_held(self, job_ids: Sequence[str], held: bool, at: float) -> list[str]:
        """Hold (pause) or release queued jobs; returns the ids that changed.

        A released job enters the queue ``at`` then (``enqueued_at``, as a requeued one does):
        its wait counts from there, not from its submission. A sweep's job held for hours
        behind its ``parallel``, or a paused training's, did not wait for GPUs meanwhile;
        counted from its submission, ``las`` found it starving the moment it was released
        (queued 6 h or more), promoted it above every job and let it preempt at once, so a
        sweep of many short trials jumped the whole queue trial after trial. It keeps its
        place in the queue's order (submission), as within a service level."""
        changed = []
        with self.sessions.begin() as session:
            rows = [row for chunk in in_chunks(list(dict.fromkeys(job_ids)))
                    for row in session.scalars(select(models.Job).where(models.Job.id.in_(chunk)))]
            for row in rows:
                if row.state != JobState.QUEUED.value or row.held == held:
                    continue
                row.held = held
                changed.append(row.id)
                if held:
                    if row.id in self._queue:
                        self._queue.remove(row.id)
                else:
                    row.enqueued_at = at
                    self._queue.add(to_core(row))
        return changed

    def set_priority(self, job_id: str, priority: int) -> Job:
        """Change a live job's priority: committed, then in the queue the core reads (a queued job
        moves to its new place) or in the active job (what preemption weighs), so the next pass
        uses it. A held job takes it when released (``set_held`` reads the row)."""
        with self.sessions.begin() as session:
            row = session.get(models.Job, job_id)
            if row is None:
                raise KeyError(job_id)
            row.priority = priority
            session.flush()
            job = to_core(row)
        if job_id in self._queue:
            self._queue.remove(job_id)
            self._queue.add(job)
        elif job_id in self._active:
            active = self._active[job_id]
            self._active[job_id] = replace(active, job=replace(active.job, priority=priority))
        return job

    def completed_runtimes(self, limit: int) -> list[tuple[Job, float]]:
        """The last ``limit`` jobs that succeeded, oldest first, each with its run time (seconds,
        every run together): the runtime history of the start estimates and of ``las``'s
        expectations (``coordinator.estimates``), learnt again at start-up."""
        j = models.Job
        with self.sessions() as session:  # the columns the history keys on, not whole rows
            rows = session.execute(
                select(j.id, j.workspace, j.gpus, j.kind, j.attained, j.training_id)
                .where(j.state == JobState.SUCCEEDED.value, j.gpus > 0)
                .order_by(j.finished_at.desc(), j.id.desc()).limit(limit)).all()
        return [(Job(id=job_id, workspace=ws, gpus=gpus, kind=kind, training=tid), attained / gpus)
                for job_id, ws, gpus, kind, attained, tid in reversed(rows)]

    def preemption_ledger(self, since: float) -> tuple[list[float], list[float]]:
        """The preemption budget's ledger (scheduling/budget.py), learnt again at start-up: when
        each training job that first started at ``since`` or later did so (its first stretch of
        GPU time), and when each preemption since then was made (not administrators' and
        managers' requeues, which the scheduler did not choose)."""
        u, p = models.UsageInterval, models.Preemption
        with self.sessions() as session:
            first = func.min(u.started_at)
            starts = session.scalars(select(first).where(u.kind != "lease").group_by(u.job_id)
                                     .having(first >= since)).all()
            stops = session.scalars(select(p.at).where(p.at >= since, p.reason.not_like("requeued by %"))).all()
        return list(starts), list(stops)

    # -- fair-share usage (the coordinator's ledger, saved in batches) -------------------
    def load_usage(self) -> dict[str, tuple[float, float]]:
        with self.sessions() as session:
            return {r.workspace: (r.gpu_seconds, r.at) for r in session.scalars(select(models.FairshareUsage))}

    def save_usage(self, usage: Mapping[str, tuple[float, float]]) -> None:
        """One transaction for the whole ledger: a row per workspace, updated where it changed."""
        with self.sessions.begin() as session:
            rows = {r.workspace: r for r in session.scalars(select(models.FairshareUsage))}
            for ws, (gpu_seconds, at) in usage.items():
                row = rows.get(ws)
                if row is None:
                    session.add(models.FairshareUsage(workspace=ws, gpu_seconds=gpu_seconds, at=at))
                elif (row.gpu_seconds, row.at) != (gpu_seconds, at):
                    row.gpu_seconds, row.at = gpu_seconds, at

    def mark_cancel_requested(self, job_id: str) -> None:
        with self.sessions.begin() as session:
            session.execute(update(models.Job).where(models.Job.id == job_id).values(cancel_requested=True))

    def cancel_requested(self) -> set[str]:
        """The active jobs whose cancel was asked (:meth:`mark_cancel_requested`): the coordinator
        recovers them, so that they end CANCELLED after a restart too."""
        active = [JobState.STARTING.value, JobState.RUNNING.value]
        with self.sessions() as session:
            return set(session.scalars(select(models.Job.id).where(models.Job.cancel_requested.is_(True),
                                                                   models.Job.state.in_(active))))


_JOBS = models.Job.__table__
_INTERVALS = models.UsageInterval.__table__
# built once: constructing a statement cost more than running it, once per job and change
_READ_JOBS = select(_JOBS)
_CLOSE_INTERVAL = (update(_INTERVALS)
                   .where(_INTERVALS.c.job_id == bindparam("job"), _INTERVALS.c.ended_at.is_(None))
                   .values(ended_at=bindparam("at"), outcome=bindparam("end_outcome")))
_OPEN_INTERVAL = insert(_INTERVALS)


@lru_cache(maxsize=64)
def _update_jobs(columns: tuple[str, ...]):
    """``UPDATE jobs SET <columns> WHERE id = :job``, for executemany (one per set of columns)."""
    return (update(_JOBS).where(_JOBS.c.id == bindparam("job"))
            .values({c: bindparam(f"v_{c}", type_=_JOBS.c[c].type) for c in columns}))


class _Row:
    """A job's row in a batch: its columns as attributes, as the ORM's row has them; those set
    are written when the batch is (:meth:`_Batch.write`)."""

    __slots__ = ("values", "changed")

    def __init__(self, values: Mapping):
        object.__setattr__(self, "values", dict(values))
        object.__setattr__(self, "changed", set())

    def __getattr__(self, name: str):
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value) -> None:
        self.values[name] = value
        self.changed.add(name)


class _Batch:
    """The writes of one transaction of state changes, made with table statements, not the ORM.

    The ORM's unit of work (an object per job read, their changes found at the flush, an
    INSERT per usage interval) was most of a scheduler pass's time once the pass's changes
    shared one transaction (docs/benchmarks.md, "Scale of the live service"). Here the jobs
    are read as plain rows (:class:`_Row`), changed in memory, and written at the end: one
    UPDATE executed for all the rows that changed the same columns, and the usage intervals
    opened and closed in order, one statement executed for each run of closes or opens."""

    def __init__(self, conn: Connection):
        self.conn = conn
        self.rows: dict[str, _Row] = {}
        self.intervals: list[tuple[int, dict]] = []  # (phase, params): see close_interval
        self._phase: dict[str, int] = {}  # job -> the phase of its last interval change
        self.after: list[Callable[[], None]] = []  # the memory view's changes, once committed

    def read(self, job_ids: Iterable[str]) -> None:
        wanted = [j for j in dict.fromkeys(job_ids) if j not in self.rows]
        for chunk in in_chunks(wanted):
            for values in self.conn.execute(_READ_JOBS.where(_JOBS.c.id.in_(chunk))).mappings():
                self.rows[values["id"]] = _Row(values)

    def row(self, job_id: str) -> _Row | None:
        if job_id not in self.rows:
            self.read([job_id])
        return self.rows.get(job_id)

    def close_interval(self, job_id: str, at: float, outcome: str) -> None:
        """End the job's open usage interval (there is at most one).

        A job's interval changes must reach the table in the order they were made (the close of
        a run before the next run's open, that open before its close), other jobs' need not.
        So each change gets a phase, closes even and opens odd, the first after the job's
        previous change: the phases are then written in order, each with one statement."""
        self._add(job_id, 0, {"job": job_id, "at": at, "end_outcome": outcome})

    def open_interval(self, params: dict) -> None:
        self._add(params["job_id"], 1, params)

    def _add(self, job_id: str, parity: int, params: dict) -> None:
        last = self._phase.get(job_id)
        # its first change: the first phase of its kind; then the same phase, or the next one
        phase = parity if last is None else last + (last % 2 != parity)
        self._phase[job_id] = phase
        self.intervals.append((phase, params))

    def write(self) -> None:
        by_columns: dict[tuple[str, ...], list[dict]] = {}
        for job_id, row in self.rows.items():
            if row.changed:
                columns = tuple(sorted(row.changed))
                by_columns.setdefault(columns, []).append(
                    {"job": job_id, **{f"v_{c}": row.values[c] for c in columns}})
        for columns, params in by_columns.items():
            self.conn.execute(_update_jobs(columns), params)
        phases: dict[int, list[dict]] = {}
        for phase, params in self.intervals:
            phases.setdefault(phase, []).append(params)
        for phase in sorted(phases):
            self.conn.execute(_OPEN_INTERVAL if phase % 2 else _CLOSE_INTERVAL, phases[phase])


def insert_jobs(session: Session, rows: list[models.Job]) -> None:
    """Persist new QUEUED jobs (the API's half of a submission)."""
    session.add_all(rows)


def dumps(value) -> str:
    return json.dumps(value, sort_keys=True)

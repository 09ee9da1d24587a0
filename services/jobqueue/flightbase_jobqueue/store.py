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
from typing import Callable, Iterable, Iterator, Mapping, Sequence

from sqlalchemy import bindparam, select, update
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
        # the open batch (:meth:`batch`): its session, the memory changes to make once it commits,
        # and the jobs whose usage interval it opened (not yet flushed)
        self._batch: Session | None = None
        self._batch_thread: int | None = None  # (a batch is its own thread's: the loop's)
        self._after: list[Callable[[], None]] = []
        self._opened: set[str] = set()
        self._closes: list[dict] = []  # the batch's usage intervals to close, written together (_write_closes)
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
        after: list[Callable[[], None]] = []
        try:
            with self.sessions.begin() as session:
                self._batch, self._after, self._opened, self._closes = session, after, set(), []
                self._batch_thread = threading.get_ident()
                ids = list(job_ids)
                # (held here: the session keeps the rows it read only while something refers to them)
                rows = [row for chunk in in_chunks(ids)
                        for row in session.scalars(select(models.Job).where(models.Job.id.in_(chunk)))]
                yield
                self._write_closes(session)
                del rows
        finally:
            self._batch, self._after, self._opened, self._batch_thread = None, [], set(), None
            self._closes = []
        for apply in after:  # committed: now the memory view
            apply()

    def transition(self, job_id: str, new_state: JobState, *, at: float, placement: Placement | None = None,
                   attained: float | None = None, restarts: int | None = None, exit_code: int | None = None,
                   reason: str | None = None) -> Job:
        if self._batch is not None and self._batch_thread == threading.get_ident():
            job, apply = self._write(self._batch, job_id, new_state, at=at, placement=placement, attained=attained,
                                     restarts=restarts, exit_code=exit_code, reason=reason)
            if apply is not None:
                self._after.append(apply)
            return job
        with self.sessions.begin() as session:
            job, apply = self._write(session, job_id, new_state, at=at, placement=placement, attained=attained,
                                     restarts=restarts, exit_code=exit_code, reason=reason)
        if apply is not None:  # committed: now the memory view
            apply()
        return job

    def _write(self, session: Session, job_id: str, new_state: JobState, *, at: float, placement: Placement | None,
               attained: float | None, restarts: int | None, exit_code: int | None,
               reason: str | None) -> tuple[Job, Callable[[], None] | None]:
        """A transition's writes in ``session``; returns the job as written and what to do to the
        memory view once they are committed (None: nothing changed)."""
        row = session.get(models.Job, job_id)
        if row is None:
            raise KeyError(job_id)
        old = JobState(row.state)
        if old is new_state:
            return to_core(row), None
        check_transition(old, new_state)
        row.state = new_state.value
        if job_id in self._opened:  # its interval was opened in this batch, not yet written: write it now
            self._write_closes(session)  # (after the closes asked before it)
            session.flush()
        if old.holds_gpus() and not new_state.holds_gpus():  # its run ends: so does its usage interval
            outcome = "lost" if new_state is JobState.FAILED and job_id in self._lost else new_state.value
            self._close(session, job_id, at, outcome)
        if new_state is JobState.STARTING:
            if placement is None:
                raise ValueError("a job moving to STARTING needs its placement")
            row.placement = placement_to_json(placement)
            row.started_at = at
            row.stopping = False
            self._close(session, job_id, at, "lost")  # (none is open: a run ends before the next starts)
            session.add(models.UsageInterval(
                job_id=job_id, training_id=row.training_id, workspace=row.workspace, user=row.created_by,
                kind=row.kind, gpus=row.gpus, placement=row.placement, started_at=at))
            if self._batch is session:
                self._opened.add(job_id)
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
        if self._batch is not session:  # (a batch's rows are flushed together, at its commit)
            session.flush()
        job = to_core(row)
        held = row.held
        return job, lambda: self._applied(job_id, old, new_state, job, placement, at, held)

    def _close(self, session: Session, job_id: str, at: float, outcome: str) -> None:
        """End the job's open usage interval: at once, or in a batch with the batch's others."""
        params = {"job": job_id, "at": at, "end_outcome": outcome}
        if self._batch is session:
            self._closes.append(params)
        else:
            _close_intervals(session, [params])

    def _write_closes(self, session: Session) -> None:
        if self._closes:
            _close_intervals(session, self._closes)
            self._closes = []

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

    def set_held(self, job_ids: Sequence[str], held: bool) -> list[str]:
        """Hold (pause) or release queued jobs; returns the ids that changed."""
        changed = []
        with self.sessions.begin() as session:
            for row in session.scalars(select(models.Job).where(models.Job.id.in_(job_ids))):
                if row.state != JobState.QUEUED.value or row.held == held:
                    continue
                row.held = held
                changed.append(row.id)
                if held:
                    if row.id in self._queue:
                        self._queue.remove(row.id)
                else:
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


_INTERVALS = models.UsageInterval.__table__
# built once: constructing the statement cost more than running it, once per ended run
_CLOSE_INTERVAL = (update(_INTERVALS)
                   .where(_INTERVALS.c.job_id == bindparam("job"), _INTERVALS.c.ended_at.is_(None))
                   .values(ended_at=bindparam("at"), outcome=bindparam("end_outcome")))


def _close_intervals(session: Session, closes: list[dict]) -> None:
    """End each job's open usage interval (there is at most one), in order: ``closes`` are
    ``{"job": id, "at": time, "end_outcome": ...}``, one statement executed for all of them.

    A statement on the table, not the ORM entity: the ORM's would flush the session first and
    look for the rows among the session's objects, a third of a pass's time, for nothing (the
    intervals are written here and never read back in the same transaction). Without autoflush
    too: the statement reads only intervals already written (one opened in this transaction and
    not flushed is flushed first by ``SqlStore._write``), and flushing the session's changed jobs
    before each statement made a pass's batch flush one job at a time instead of all at once."""
    with session.no_autoflush:
        session.execute(_CLOSE_INTERVAL, closes)


def insert_jobs(session: Session, rows: list[models.Job]) -> None:
    """Persist new QUEUED jobs (the API's half of a submission)."""
    session.add_all(rows)


def dumps(value) -> str:
    return json.dumps(value, sort_keys=True)

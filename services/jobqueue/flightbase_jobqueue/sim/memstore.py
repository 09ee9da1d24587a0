"""An in-memory :class:`~flightbase_jobqueue.ports.Store` (the simulator's).

Follows the Store contract in ``ports.py`` exactly (declared transitions
only, idempotent repeats), keeps the queue as an incrementally maintained
:class:`QueueView`, and keeps the preemption records and the usage intervals
(:attr:`MemStore.usage`, as the SQL store's ``usage_intervals``; the core's
jobs carry no user or training, so those fields are empty).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Mapping, Sequence

from ..accounting import Interval
from ..scheduling.queueview import QueueView
from ..scheduling.types import ActiveJob, Job, Placement, WorkspaceLimits
from ..states import JobState, check_transition


class MemStore:
    def __init__(self, limits: Mapping[str, WorkspaceLimits] | None = None):
        self.limits: dict[str, WorkspaceLimits] = dict(limits or {})
        self.jobs: dict[str, Job] = {}
        self.states: dict[str, JobState] = {}
        self.queue = QueueView()
        self.active: dict[str, ActiveJob] = {}
        self.preemptions: list[tuple[str, str, float]] = []
        self.exit_codes: dict[str, int] = {}
        self.transitions = 0
        self.usage: list[Interval] = []  # every run of every job, in start order
        self._open: dict[str, int] = {}  # job id -> index in usage of its open interval
        self.saved_usage: dict[str, tuple[float, float]] = {}  # the fair-share ledger as last saved

    # -- the controller's side (not part of the Store protocol) --------------
    def submit(self, job: Job) -> None:
        """Accept a validated job: it is QUEUED from now on."""
        if job.id in self.jobs:
            raise ValueError(f"job {job.id} exists")
        self.jobs[job.id] = job
        self.states[job.id] = JobState.QUEUED
        self.queue.add(job)

    def state(self, job_id: str) -> JobState:
        return self.states[job_id]

    # -- Store protocol ---------------------------------------------------------
    def queued_jobs(self) -> QueueView:
        return self.queue

    def active_jobs(self) -> Sequence[ActiveJob]:
        return list(self.active.values())

    def workspace_limits(self) -> Mapping[str, WorkspaceLimits]:
        return self.limits

    def load_usage(self) -> Mapping[str, tuple[float, float]]:
        return dict(self.saved_usage)

    def save_usage(self, usage: Mapping[str, tuple[float, float]]) -> None:
        self.saved_usage.update(usage)

    def transition(self, job_id: str, new_state: JobState, *, at: float,
                   placement: Placement | None = None, attained: float | None = None,
                   restarts: int | None = None, exit_code: int | None = None,
                   reason: str | None = None) -> Job:
        old = self.states[job_id]
        if old is new_state:
            return self.jobs[job_id]
        check_transition(old, new_state)
        job = self.jobs[job_id]
        if new_state is JobState.STARTING:
            if placement is None:
                raise ValueError("a job starts with a placement")
            self.queue.remove(job_id)
            self.active[job_id] = ActiveJob(job, dict(placement), at)
            self._open[job_id] = len(self.usage)
            self.usage.append(Interval(job.workspace, "", job.gpus, at, job_id=job_id, kind=job.kind))
        elif old is JobState.QUEUED:  # cancelled or failed while queued
            self.queue.remove(job_id)
        if old.holds_gpus() and not new_state.holds_gpus():
            self.active.pop(job_id, None)
            i = self._open.pop(job_id, None)
            if i is not None:
                self.usage[i] = replace(self.usage[i], ended_at=at, outcome=new_state.value)
            changes = {}
            if attained is not None:
                changes["attained"] = attained
            if restarts is not None:
                changes["restarts"] = restarts
            if changes:
                job = replace(job, **changes)
        if exit_code is not None:
            self.exit_codes[job_id] = exit_code
        if new_state is JobState.QUEUED:  # back from PREEMPTED
            job = replace(job, enqueued_at=at)
            self.queue.add(job)
        self.jobs[job_id] = job
        self.states[job_id] = new_state
        self.transitions += 1
        return job

    def record_preemption(self, job_id: str, reason: str, at: float) -> None:
        a = self.active.get(job_id)
        if a is None or a.stopping:
            return
        self.active[job_id] = replace(a, stopping=True)
        self.preemptions.append((job_id, reason, at))

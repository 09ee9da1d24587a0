"""The jobqueue's Prometheus metrics (served at ``/services/jobqueue/metrics``, flightbase_server.service.metrics).

Named as Prometheus and Kueue name theirs: a unit suffix, ``_total`` on
counters, the workspace as a label.

Observed as things happen (process-wide, in prometheus_client's registry):

- ``flightbase_scheduler_pass_seconds``: one coordinator step (``JobRuntime._run``);
- ``flightbase_admission_wait_seconds{workspace}``: how long a job waited in
  the queue (since it last entered it) when the scheduler admitted it;
- ``flightbase_preemptions_total{workspace}``: preemptions the scheduler decided.

Computed at scrape time from the running service (``JobqueueCollector``; a
snapshot taken on the event loop, ``live_state``, and counts from the
database, ``stored_counts``), so that they cannot drift from the truth:

- ``flightbase_pending_jobs{workspace,reason}``: queued jobs. ``reason`` is
  ``quota`` (the workspace's quota is in use and the job may not borrow),
  ``resources`` (it waits for free GPUs, or for the next scheduler pass) or
  ``held`` (a sweep's job waiting for the earlier ones, or a paused sweep).
  The first two are the jobs ``GET /api/v1/queue`` lists.
- ``flightbase_oldest_pending_seconds{workspace}``: the longest wait among
  them (held jobs excluded: they do not wait for GPUs); 0 with none.
- ``flightbase_gpus{state="allocated|free"}``: GPUs (or CPU slots) held by
  jobs and notebook leases, and free on schedulable nodes.
- ``flightbase_workspace_allocated_gpus{workspace}``, ``flightbase_workspace_gpu_quota{workspace}``.
- ``flightbase_jobs{workspace,state}``: jobs by state, as stored.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Sequence

from prometheus_client import Counter as CounterMetric
from prometheus_client import Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from sqlalchemy import func, select

from flightbase_jobqueue import models
from flightbase_jobqueue.scheduling.core import BLOCKED, quota_verdict
from flightbase_jobqueue.scheduling.types import DEFAULT_LIMITS, ActiveJob, Job, Node, WorkspaceLimits
from flightbase_jobqueue.states import JobState

# A pass is milliseconds on a small queue and grows with the queue and the cluster.
PASS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# Waits range from the next pass to days (Kueue's admission wait buckets are similar).
WAIT_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 28800, 86400, 259200)

SCHEDULER_PASS = Histogram(
    "flightbase_scheduler_pass_seconds",
    "Duration of one scheduler pass: backend events, the policy's decisions, and applying them.",
    buckets=PASS_BUCKETS,
)
ADMISSION_WAIT = Histogram(
    "flightbase_admission_wait_seconds",
    "Time a job waited in the queue (since it last entered it) before the scheduler admitted it.",
    ["workspace"],
    buckets=WAIT_BUCKETS,
)
PREEMPTIONS = CounterMetric(
    "flightbase_preemptions",  # exposed as flightbase_preemptions_total
    "Jobs the scheduler preempted (stopped to give their GPUs to others; they go back to the queue).",
    ["workspace"],
)

PENDING_REASONS = ("quota", "resources", "held")


def observe_step(now: float, admitted: Sequence[str], preempted: Sequence[str],
                 active: Callable[[], Sequence[ActiveJob]]) -> None:
    """After a coordinator step at ``now``: the admitted jobs' waits, and the preemptions it decided."""
    if not admitted and not preempted:
        return
    jobs = {a.job.id: a.job for a in active()}
    for job_id in admitted:
        job = jobs.get(job_id)
        if job is not None:
            ADMISSION_WAIT.labels(job.workspace).observe(max(0.0, now - job.queued_since))
    for job_id in preempted:
        job = jobs.get(job_id)
        if job is not None:
            PREEMPTIONS.labels(job.workspace).inc()


def pending_reason(job: Job, in_use: int, limits: WorkspaceLimits) -> str:
    """Why a queued (not held) job waits: its workspace's quota, or GPUs (as queue insight words it)."""
    if quota_verdict(limits, in_use, job) == BLOCKED:
        return "quota"
    return "resources"


@dataclass(frozen=True)
class LiveState:
    """What the scheduler holds in memory, copied on the event loop (where it changes)."""

    now: float
    queued: tuple[Job, ...]  # queued and not held, in queue order
    active: tuple[ActiveJob, ...]
    nodes: tuple[Node, ...]
    limits: Mapping[str, WorkspaceLimits]


@dataclass(frozen=True)
class StoredCounts:
    """What is counted in the database."""

    jobs: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (workspace, state) -> jobs
    held: Mapping[str, int] = field(default_factory=dict)  # workspace -> queued jobs that are held


def live_state(runtime, now: float) -> LiveState:
    """Copy what the scheduler sees now (call on the event loop thread): the coordinator's snapshot, as
    queue insight (``GET /queue``) reads it, with the node inventory it caches."""
    snap = runtime.coordinator.snapshot(now)
    return LiveState(now=now, queued=tuple(snap.queue), active=tuple(snap.active), nodes=tuple(snap.nodes),
                     limits=dict(snap.limits))


def stored_counts(session) -> StoredCounts:
    jobs = {(ws, state): n for ws, state, n in session.execute(
        select(models.Job.workspace, models.Job.state, func.count()).group_by(models.Job.workspace, models.Job.state))}
    held = {ws: n for ws, n in session.execute(
        select(models.Job.workspace, func.count())
        .where(models.Job.state == JobState.QUEUED.value, models.Job.held.is_(True))
        .group_by(models.Job.workspace))}
    return StoredCounts(jobs=jobs, held=held)


class JobqueueCollector:
    """The state gauges of one scrape, from a ``LiveState`` and ``StoredCounts`` (pure: no I/O)."""

    def __init__(self, live: LiveState, stored: StoredCounts):
        self.live = live
        self.stored = stored

    def collect(self) -> Iterable[Metric]:
        live, stored = self.live, self.stored
        in_use: Counter[str] = Counter()
        held_gpus: dict[str, set[int]] = {}
        for a in live.active:
            in_use[a.job.workspace] += a.job.gpus
            for node, gpus in a.placement.items():
                held_gpus.setdefault(node, set()).update(gpus)

        workspaces = sorted(set(live.limits) | {j.workspace for j in live.queued} | set(stored.held)
                            | {a.job.workspace for a in live.active})
        pending: Counter[tuple[str, str]] = Counter()
        oldest: dict[str, float] = {}
        for job in live.queued:
            ws = job.workspace
            pending[ws, pending_reason(job, in_use[ws], live.limits.get(ws, DEFAULT_LIMITS))] += 1
            oldest[ws] = max(oldest.get(ws, 0.0), live.now - job.queued_since)
        for ws, n in stored.held.items():
            pending[ws, "held"] += n

        family = GaugeMetricFamily("flightbase_pending_jobs", "Queued jobs, by workspace and why they wait "
                                   "(quota: the workspace's quota is in use; resources: no free GPUs yet; "
                                   "held: a sweep's later jobs, or a paused sweep).", labels=["workspace", "reason"])
        for ws in workspaces:
            for reason in PENDING_REASONS:
                family.add_metric([ws, reason], pending[ws, reason])
        yield family

        family = GaugeMetricFamily("flightbase_oldest_pending_seconds", "How long the workspace's longest-waiting "
                                   "queued job has waited (held jobs excluded); 0 with none.", labels=["workspace"])
        for ws in workspaces:
            family.add_metric([ws], max(0.0, oldest.get(ws, 0.0)))
        yield family

        allocated = sum(in_use.values())
        free = sum(len([g for g in node.free if g not in held_gpus.get(node.name, ())])
                   for node in live.nodes if node.schedulable)
        family = GaugeMetricFamily("flightbase_gpus", "GPUs (or CPU slots) allocated to jobs and notebook leases, "
                                   "and free on schedulable nodes.", labels=["state"])
        family.add_metric(["allocated"], allocated)
        family.add_metric(["free"], free)
        yield family

        family = GaugeMetricFamily("flightbase_workspace_allocated_gpus", "GPUs (or CPU slots) the workspace's jobs "
                                   "and notebook leases hold.", labels=["workspace"])
        for ws in workspaces:
            family.add_metric([ws], in_use[ws])
        yield family

        family = GaugeMetricFamily("flightbase_workspace_gpu_quota", "The workspace's GPU quota (gpu_quota; "
                                   "absent for a workspace without one).", labels=["workspace"])
        for ws in workspaces:
            quota = live.limits.get(ws, DEFAULT_LIMITS).quota
            if quota is not None:
                family.add_metric([ws], quota)
        yield family

        family = GaugeMetricFamily("flightbase_jobs", "Jobs by workspace and state, as stored (ended ones until "
                                   "their training is deleted).", labels=["workspace", "state"])
        for ws in sorted({ws for ws, _ in stored.jobs}):
            for state in JobState:
                family.add_metric([ws, state.value], stored.jobs.get((ws, state.value), 0))
        yield family

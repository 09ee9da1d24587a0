"""Plain data the scheduling core reads and returns.

Everything here is a frozen dataclass (or a read-only view) so that one
scheduling pass is a pure function ``Snapshot -> Decisions``: no I/O, no
clock reads, no globals.  The coordinator builds the snapshot from the store
and applies the decisions; the simulator does the same with a virtual clock.

Units: times are float seconds (the caller's clock, passed in as
``Snapshot.now``); service is GPU-seconds; GPU counts are ints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Mapping, Protocol, Sequence

if TYPE_CHECKING:  # pragma: no cover
    from .placement import FreeMap
    from .queueview import QueueView

JobKind = Literal["training", "lease"]
Placement = Mapping[str, tuple[int, ...]]
"""Node name -> concrete GPU indices on that node, e.g. ``{"node-1": (0, 1)}``."""


@dataclass(frozen=True, slots=True)
class Job:
    """A request for GPUs, as the core sees it (queued or running).

    ``gpus_per_node`` set means "``gpus // gpus_per_node`` nodes with exactly
    ``gpus_per_node`` GPUs each" (an N x G request); unset means the core
    chooses (one node when it fits, otherwise whole nodes).
    ``attained`` is the GPU-seconds of service received in earlier runs (for
    LAS); ``enqueued_at`` is when the job last entered the queue (submission,
    its requeue after a preemption, or its release from a hold).  ``training``
    is the training the job belongs to (a sweep's jobs share it): start
    estimates read the runtimes of its finished jobs first; scheduling never
    reads it.  ``burst`` names the burst the job was submitted in (``bursts.py``: a
    workspace's alike jobs submitted together), given at submission; the start estimates
    draw one runtime quantile for a burst's jobs, and scheduling never reads it either.
    """

    id: str
    workspace: str
    gpus: int
    submitted_at: float = 0.0
    priority: int = 0
    gpus_per_node: int | None = None
    preemptible: bool = True
    max_runtime: float | None = None
    kind: JobKind = "training"
    attained: float = 0.0
    restarts: int = 0
    enqueued_at: float | None = None
    name: str = ""
    training: str = ""
    burst: str = ""

    @property
    def queued_since(self) -> float:
        return self.submitted_at if self.enqueued_at is None else self.enqueued_at

    @property
    def label(self) -> str:
        """How reasons refer to the job ("training X", "notebook lease X")."""
        what = "notebook lease" if self.kind == "lease" else "training"
        return f"{what} {self.name or self.id}"


def lease(id: str, workspace: str, submitted_at: float = 0.0, *, priority: int = 0,
          preemptible: bool = False, name: str = "") -> Job:
    """A Jupyter training's GPU lease: one GPU, non-preemptible by default,
    no declared runtime.  It goes through the same core as any job so that
    quotas count notebooks and jobs together."""
    return Job(id=id, workspace=workspace, gpus=1, submitted_at=submitted_at,
               priority=priority, preemptible=preemptible, kind="lease", name=name)


@dataclass(frozen=True, slots=True)
class ActiveJob:
    """A job that holds GPUs (state STARTING or RUNNING).

    ``started_at`` is the start of the current run; ``job.attained`` is the
    service from earlier runs, so the service so far is
    ``job.attained + job.gpus * (now - started_at)``.  ``stopping`` is set once
    a preemption has been requested: the GPUs are still held until the
    backend reports the job stopped.
    """

    job: Job
    placement: Placement
    started_at: float
    stopping: bool = False


@dataclass(frozen=True, slots=True)
class Node:
    """A GPU node.  ``free`` lists the GPU indices not held by any active job."""

    name: str
    total: int
    free: tuple[int, ...]
    labels: Mapping[str, str] = field(default_factory=dict)
    schedulable: bool = True


@dataclass(frozen=True, slots=True)
class WorkspaceLimits:
    """Per-workspace scheduling limits.

    ``quota``: guaranteed GPUs (None: no guarantee and no cap).  A workspace
    may run above its quota on idle GPUs when ``allow_borrowing``; those
    borrowed GPUs are reclaimed (by preemption) when a workspace that is
    under its own quota needs them.  Non-preemptible jobs never borrow.
    ``borrowing_limit``: the most GPUs the workspace may borrow above its
    quota (Kueue's ``borrowingLimit``: it holds at most ``quota +
    borrowing_limit`` in all); None: no limit.  The rule is
    :func:`~.core.quota_verdict`.
    ``weight``: the workspace's weight under fair share.
    """

    quota: int | None = None
    max_gpus_per_job: int | None = None
    weight: float = 1.0
    allow_borrowing: bool = True
    borrowing_limit: int | None = None


DEFAULT_LIMITS = WorkspaceLimits()


class RuntimeEstimates(Protocol):
    """What the core may know of a job's runtime: its declared maximum, or an
    estimate from history.  Never the true duration (except for an oracle
    policy, where the simulator declares the true duration as max_runtime)."""

    def estimate(self, job: Job) -> float: ...


@dataclass(frozen=True, slots=True)
class DeclaredOrDefault:
    """The simplest estimates: the declared max_runtime, else ``default``."""

    default: float = 3600.0

    def estimate(self, job: Job) -> float:
        return job.max_runtime if job.max_runtime is not None else self.default


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The input of one scheduling pass.

    ``queue``: the queued jobs (a :class:`QueueView`, which orders them by
    submission with priorities applied within each workspace).
    ``active``: jobs holding GPUs.  ``usage``: decayed GPU-seconds per
    workspace (fair share).  ``in_use``: GPUs held per workspace (derived from
    ``active`` when omitted).  ``free_map``: optionally, the free GPUs of
    ``nodes`` already indexed (the coordinator keeps one up to date so that a
    pass need not rebuild it); it must describe exactly ``nodes``, and the
    core only copies it (copy-on-write), never changes it.
    """

    now: float
    queue: "QueueView"
    active: Sequence[ActiveJob]
    nodes: Sequence[Node]
    limits: Mapping[str, WorkspaceLimits] = field(default_factory=dict)
    usage: Mapping[str, float] = field(default_factory=dict)
    estimates: RuntimeEstimates = DeclaredOrDefault()
    in_use: Mapping[str, int] | None = None
    free_map: "FreeMap | None" = None
    #: (jobs started for the first time, preemptions) over the last 14 days, for the
    #: preemption budget (:mod:`.budget`); None: no ledger, no budget.
    preemption_counts: tuple[int, int] | None = None

    def limits_for(self, workspace: str) -> WorkspaceLimits:
        return self.limits.get(workspace, DEFAULT_LIMITS)


@dataclass(frozen=True, slots=True)
class Admit:
    """Start ``job_id`` on ``placement``.  ``borrowed``: the job runs above its
    workspace's quota on lent capacity and may be reclaimed."""

    job_id: str
    placement: Placement
    borrowed: bool = False


@dataclass(frozen=True, slots=True)
class Preempt:
    """Stop ``job_id`` (grace period, checkpoint) and requeue it."""

    job_id: str
    reason: str
    for_job: str | None = None


@dataclass(frozen=True, slots=True)
class Decisions:
    """The output of one pass.

    ``waiting`` holds a short reason for the queued jobs the pass examined
    and left queued; jobs it did not reach are behind a blocked one (see
    :mod:`.insight` for full per-job explanations).  ``wake_at``: the next
    time the decisions could change without any event (a LAS threshold, a
    starvation promotion); None when only events matter.
    """

    admits: tuple[Admit, ...] = ()
    preempts: tuple[Preempt, ...] = ()
    waiting: Mapping[str, str] = field(default_factory=dict)
    wake_at: float | None = None

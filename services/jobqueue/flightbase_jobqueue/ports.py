"""The jobqueue's ports: the coordinator's (the store, the execution backend, the node
inventory) and the API's window on what jobs wrote (:class:`JobOutput`).

Small ``typing.Protocol``s so that the SQLAlchemy store and the
local-process / Kubernetes backends plug into the same
:class:`~flightbase_jobqueue.coordinator.Coordinator` as the simulator's
in-memory store and simulated backend (``sim/memstore.py``,
``sim/backend.py``).

Contract in one line: the coordinator persists every state change through
the :class:`Store` *before* it tells the :class:`Backend`; the backend reports
what happened through :meth:`Backend.poll_events`, and the coordinator
persists that too.  After a crash, :meth:`Coordinator.recover` rebuilds
everything from the store, so both sides must be idempotent.

The API reads a job's output (its log, metrics and NCCL record) through
:class:`JobOutput` only (``flightbase_jobqueue.output.BackendOutput``, made
once in ``app.py``), never through the runtime's backend or store.
"""

from __future__ import annotations

import queue
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping, Protocol, Sequence, Union

from .scheduling.queueview import QueueView
from .scheduling.types import ActiveJob, Job, Node, Placement, WorkspaceLimits
from .states import JobState

if TYPE_CHECKING:
    from .backends.spec import JobRef


class Store(Protocol):
    """Where job state lives.  Every method is one transaction.

    A store that records cancels (the SQL store's ``mark_cancel_requested``) also offers
    ``cancel_requested() -> set[str]``, the active jobs whose cancel was asked:
    :meth:`~flightbase_jobqueue.coordinator.Coordinator.recover` reads it, so they end CANCELLED
    after a restart too.  The simulator's store has no cancels and leaves it out.

    A store may also offer ``batch(job_ids)``, a context in which every ``transition`` is
    part of one transaction, committed (and only then visible) when the block ends, and
    none of it written if the block raises: the coordinator writes a pass's events, and
    then its admissions, each in one (``SqlStore.batch``), and acts on them only after."""

    def queued_jobs(self) -> QueueView:
        """The jobs in state QUEUED, as a :class:`QueueView` (an SQL store can
        ``QueueView.build(rows)``; an in-memory one keeps it up to date).
        The coordinator reads it during a pass and never mutates it."""
        ...

    def active_jobs(self) -> Sequence[ActiveJob]:
        """The jobs in STARTING or RUNNING, each with its placement, the start
        of its current run and whether a stop (preemption) was requested."""
        ...

    def transition(self, job_id: str, new_state: JobState, *, at: float,
                   placement: Placement | None = None, attained: float | None = None,
                   restarts: int | None = None, exit_code: int | None = None,
                   reason: str | None = None) -> Job:
        """Persist ``job_id``'s move to ``new_state`` at time ``at`` and return
        the job as now stored.

        Must call :func:`~flightbase_jobqueue.states.check_transition` and
        raise its ``InvalidTransition`` (persisting nothing) when the move is
        not declared.  Idempotent: moving a job to the state it is already in
        is a no-op returning the job.  Field rules:

        - QUEUED -> STARTING: ``placement`` is required; the job leaves the
          queue and becomes active with ``started_at = at``.
        - leaving STARTING/RUNNING: the job stops being active; ``attained``
          (total GPU-seconds of service, all runs) and ``restarts`` are
          stored when given; ``exit_code`` and ``reason`` too.
        - PREEMPTED -> QUEUED: the job re-enters the queue at its original
          submission position with ``enqueued_at = at``.
        - usage accounting: entering STARTING opens a usage interval (the
          job's GPUs from ``at``) and leaving STARTING/RUNNING closes it at
          ``at`` in the same transaction, so preemption gaps are never
          counted (:mod:`~flightbase_jobqueue.accounting`).
        """
        ...

    def record_preemption(self, job_id: str, reason: str, at: float) -> None:
        """Persist a preemption record (job, reason, time) and mark the active
        job as stopping (``ActiveJob.stopping``) in the same transaction.
        Idempotent: a second call for a job already stopping records nothing."""
        ...

    def workspace_limits(self) -> Mapping[str, WorkspaceLimits]:
        """Quota, per-job maximum, weight and borrowing per workspace (from
        the hub's group properties); workspaces missing here get defaults."""
        ...

    def load_usage(self) -> Mapping[str, tuple[float, float]]:
        """The fair-share usage saved last (:meth:`save_usage`), empty if none."""
        ...

    def save_usage(self, usage: Mapping[str, tuple[float, float]]) -> None:
        """Persist the fair-share ledger, ``{workspace: (gpu_seconds, at)}``
        (:meth:`~.scheduling.usage.UsageLedger.state`), in one transaction,
        replacing what was saved for those workspaces."""
        ...


@dataclass(frozen=True, slots=True)
class Started:
    """The job's processes are up (STARTING -> RUNNING)."""

    job_id: str
    at: float


@dataclass(frozen=True, slots=True)
class Exited:
    """The job ended by itself (0: success, anything else: failure), with why when the
    backend knows better than the exit code (it could not start; it ran out of memory)."""

    job_id: str
    at: float
    exit_code: int
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Stopped:
    """The job stopped because :meth:`Backend.stop` asked it to (after its
    grace period; a checkpoint was written if the job handles the signal)."""

    job_id: str
    at: float


BackendEvent = Union[Started, Exited, Stopped]


class Backend(Protocol):
    """Runs jobs on GPUs."""

    def start(self, job: Job, placement: Placement) -> None:
        """Launch ``job`` on exactly the GPUs of ``placement`` (the local
        backend sets ``CUDA_VISIBLE_DEVICES`` from the indices).  Called after
        the store has the job in STARTING.  Must not block on the job; must
        be idempotent (a second call for a job it already runs is a no-op).
        A job with ``restarts > 0`` resumes from its checkpoint."""
        ...

    def stop(self, job_id: str, grace_seconds: float, reason: str) -> None:
        """Send the job a termination signal now, kill it after
        ``grace_seconds`` (its time to checkpoint), then report
        :class:`Stopped` (or :class:`Exited`, if it finished first).
        Idempotent; a no-op for a job it does not know."""
        ...

    def poll_events(self) -> list[BackendEvent]:
        """Events since the last call, in the order they happened.  Each event
        is delivered once; after a restart the backend reports jobs that ended
        while nobody listened (the coordinator ignores repeats)."""
        ...


class NodeInventory(Protocol):
    def nodes(self) -> Sequence[Node]:
        """Every GPU node with *all* its GPU indices in ``Node.free`` (the
        coordinator subtracts what active jobs hold), its labels and whether
        it is schedulable."""
        ...


class JobOutput(Protocol):
    """What a job wrote, as the API shows it: its output (all ranks merged, or followed live),
    its metric records and its ranks' NCCL logs.  Local files for the on-machine backends; the
    pods' logs and the workspaces volume for the Kubernetes one."""

    def log_lines(self, job: "JobRef") -> list[str]:
        """The last part of the job's output (a bounded tail, every rank), as lines."""
        ...

    def log_from(self, job: "JobRef", offset: int) -> bytes:
        """A bounded piece of the job's output after its first ``offset`` bytes (b"": nothing new
        yet); for following a job.  May block (the Kubernetes API is asked): call it off the loop."""
        ...

    def rank_prefix(self, launcher: str) -> str | None:
        """The pattern (with a ``rank`` group) that tags each output line of ``launcher``'s jobs
        with its rank; None when the output is one process's."""
        ...

    def metric_records(self, job: "JobRef") -> list[dict[str, float]]:
        """Every metric record the job reported, in order: its metrics file, then its output's
        ``key=value`` lines."""
        ...

    def nccl_logs(self, job: "JobRef") -> Mapping[str, str]:
        """The latest run's NCCL logs, ``{file name: text}`` (empty when none, or when the backend
        cannot read them); :func:`~flightbase_jobqueue.comms.record_for` turns them into a record.
        May block: call it off the loop."""
        ...

    def ended(self, job_id: str) -> bool:
        """Whether the job is no longer queued or active (its output will not grow)."""
        ...


def drain(events: "queue.SimpleQueue[BackendEvent]") -> list[BackendEvent]:
    """Everything a backend's threads have queued so far (what :meth:`Backend.poll_events` returns)."""
    out = []
    while True:
        try:
            out.append(events.get_nowait())
        except queue.Empty:
            return out

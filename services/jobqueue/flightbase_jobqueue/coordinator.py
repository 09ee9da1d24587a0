"""The coordinator: applies the scheduling core's decisions, one step at a time.

One :meth:`Coordinator.step` (woken by an event or a timer):

1. drains the backend's events and persists each transition
   (Started: STARTING -> RUNNING; Exited: -> SUCCEEDED / FAILED / CANCELLED;
   Stopped after a preemption: -> PREEMPTED -> QUEUED, keeping the service
   attained and counting the restart);
2. builds a :class:`~.scheduling.types.Snapshot` from the store, the node
   inventory and its own ledgers, and calls the pure policy;
3. applies the decisions, persisting first: a preemption is recorded (with
   its reason) before the backend is asked to stop the job with a grace
   period; an admission moves the job to STARTING (with its placement)
   before the backend starts it.

With the SQL store, the transitions of step 1 are written in one transaction,
and those of step 3's admissions in another (``SqlStore.batch``), each
committed before anything acts on it: the backend starts a job only once every
admission of the pass is on disk.

The controller (API: validate with ``check_admissible``, enqueue) is
separate and only writes QUEUED jobs to the store.  Steps are synchronous so
the simulator can run them back to back; the service's async loop that calls
them is ``runtime.JobRuntime``'s.  The coordinator keeps two derived ledgers
(GPUs held per node and per workspace) so a step costs what changed, not the
size of the cluster; :meth:`recover` rebuilds them from the store after a
restart.  It also owns the set of running jobs being cancelled (their end is
CANCELLED, whatever their exit code): :meth:`cancel` adds to it, and
:meth:`recover` rebuilds it from the store (``Store.cancel_requested``), so a
job whose cancel was asked before a restart still ends CANCELLED.

Fair-share usage (:class:`~.scheduling.usage.UsageLedger`, charged as each
run ends) cannot be rebuilt that way, so it is saved: loaded from the store
when the coordinator is made, and written back by :meth:`save_usage`, which a
step calls after its events, at most every ``usage_save_seconds`` and only
when something was charged (one small transaction, never one per pass), and
which the service calls once more as it stops.  A crash loses at most the
charges of the last interval (docs/scheduling.md).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field, replace
from typing import Sequence

from .ports import Backend, Exited, NodeInventory, Started, Stopped, Store
from .scheduling.budget import PreemptionLedger, first_start
from .scheduling.estimates import HistoryEstimates
from .scheduling.placement import FreeMap
from .scheduling.policies import Policy
from .scheduling.types import ActiveJob, Decisions, Node, Snapshot
from .scheduling.usage import UsageLedger
from .states import JobState

log = logging.getLogger("flightbase.jobqueue.coordinator")
# How often, at most, the fair-share ledger is written (seconds; only when it changed).
USAGE_SAVE_SECONDS = 10.0


@dataclass
class StepResult:
    admitted: list[str] = field(default_factory=list)
    preempted: list[str] = field(default_factory=list)
    finished: list[tuple[str, JobState]] = field(default_factory=list)
    requeued: list[str] = field(default_factory=list)
    decisions: Decisions | None = None

    @property
    def wake_at(self) -> float | None:
        return self.decisions.wake_at if self.decisions else None


# Successful jobs whose run times the runtime history learns again at start-up: as many as
# HistoryEstimates keeps for all jobs together (long_window, 1,000) five times over, so that
# the keys of each workspace and size get theirs too.
HISTORY_AT_START = 5000


class Coordinator:
    def __init__(self, store: Store, backend: Backend, policy: Policy, nodes: NodeInventory, *,
                 grace_seconds: float = 30.0, estimates: HistoryEstimates | None = None,
                 usage: UsageLedger | None = None, usage_save_seconds: float = USAGE_SAVE_SECONDS):
        self.store = store
        self.backend = backend
        self.policy = policy
        self.inventory = nodes
        self.grace_seconds = grace_seconds
        self.estimates = estimates if estimates is not None else HistoryEstimates()
        # The runtime history is in memory: learnt again from the store's last successes, so
        # that a restart of the service (the hub restarts it if it dies; upgrades) does not
        # turn every estimate back into the default hour until jobs have ended again.
        history = getattr(self.store, "completed_runtimes", None)  # (the simulator's store has none)
        if history is not None:
            for job, runtime in history(HISTORY_AT_START):
                self.estimates.observe(job, runtime)
        self.usage = usage if usage is not None else UsageLedger()
        self.usage.restore(self.store.load_usage())  # what the last run of the service saved
        self.usage_save_seconds = usage_save_seconds
        self._usage_saved_at = -math.inf
        # First starts and preemptions of the last 14 days, for the preemption budget
        # (scheduling/budget.py): read from the store at start-up, then kept here.
        self.ledger = PreemptionLedger()
        history = getattr(self.store, "preemption_ledger", None)  # (the simulator's store starts empty)
        if history is not None:
            self.ledger.restore(*history(time.time() - self.ledger.window))  # (the service's clock)
        self._cancelling: set[str] = set()
        self._held: dict[str, set[int]] = {}
        self._in_use: dict[str, int] = {}
        self._active: dict[str, ActiveJob] = {}
        self._node_cache: dict[str, Node] = {}
        self._dirty: set[str] = set()
        self._inventory: Sequence[Node] = ()
        self._free_map: FreeMap | None = None
        self.recover()

    # -- ledgers -------------------------------------------------------------
    def recover(self) -> None:
        """Rebuild the ledgers and the jobs being cancelled from the store (start-up, after a crash)."""
        self._held.clear()
        self._in_use.clear()
        self._active.clear()
        for a in self.store.active_jobs():
            self._hold(a)
        requested = getattr(self.store, "cancel_requested", None)  # a store that records cancels (not the simulator's)
        if requested is not None:
            self._cancelling = set(requested()) & set(self._active)
        self.refresh_nodes()

    def refresh_nodes(self) -> None:
        """Re-read the node inventory (call when nodes join, leave or are cordoned)."""
        self._inventory = tuple(self.inventory.nodes())
        self._node_cache.clear()
        self._free_map = None
        self._dirty = {n.name for n in self._inventory}

    def _hold(self, a: ActiveJob) -> None:
        self._active[a.job.id] = a
        ws = a.job.workspace
        self._in_use[ws] = self._in_use.get(ws, 0) + a.job.gpus
        for n, g in a.placement.items():
            self._held.setdefault(n, set()).update(g)
            self._dirty.add(n)

    def _release(self, job_id: str) -> ActiveJob | None:
        a = self._active.pop(job_id, None)
        if a is None:
            return None
        ws = a.job.workspace
        self._in_use[ws] -= a.job.gpus
        for n, g in a.placement.items():
            self._held[n].difference_update(g)
            self._dirty.add(n)
        return a

    def _nodes(self) -> list[Node]:
        """The nodes with their free GPUs now; also brings the indexed copy
        handed to the core (``Snapshot.free_map``) up to date, node by node."""
        fmap = self._free_map
        if self._dirty:
            cache = self._node_cache
            dirty = self._dirty
            for node in self._inventory:
                name = node.name
                if name in dirty:
                    held = self._held.get(name)
                    free = node.free if not held else tuple(g for g in node.free if g not in held)
                    # (not dataclasses.replace: ten times slower, and this runs every step)
                    cache[name] = Node(name, node.total, free, node.labels, node.schedulable)
                    if fmap is not None:
                        fmap.set_free(name, free)
            dirty.clear()
        nodes = [self._node_cache[n.name] for n in self._inventory]
        if fmap is None:
            self._free_map = FreeMap(nodes)
        return nodes

    def save_usage(self, now: float, *, force: bool = False) -> bool:
        """Write the fair-share ledger to the store if it was charged since it was last
        written, and (unless ``force``: a clean stop) the last write is at least
        ``usage_save_seconds`` old.  True if it wrote."""
        if not self.usage.dirty or (not force and now - self._usage_saved_at < self.usage_save_seconds):
            return False
        self.store.save_usage(self.usage.state())
        self.usage.dirty = False  # (only after the write: a failed one is retried)
        self._usage_saved_at = now
        return True

    # -- events ----------------------------------------------------------------
    def _end_run(self, job_id: str, at: float, new_state: JobState, *, exit_code: int | None = None,
                 reason: str | None = None, restart: bool = False) -> ActiveJob | None:
        a = self._active.get(job_id)
        if a is None:  # already handled (a repeated event)
            return None
        job = a.job
        ran = max(0.0, at - a.started_at)
        attained = job.attained + job.gpus * ran
        self.store.transition(job_id, new_state, at=at, attained=attained,
                              restarts=job.restarts + 1 if restart else None,
                              exit_code=exit_code, reason=reason)
        self._release(job_id)
        self.usage.charge(job.workspace, job.gpus * ran, at)
        if new_state is JobState.SUCCEEDED:
            self.estimates.observe(job, attained / job.gpus)
        return a

    def handle(self, event, result: StepResult) -> None:
        if isinstance(event, Started):
            a = self._active.get(event.job_id)
            if a is not None:
                self.store.transition(event.job_id, JobState.RUNNING, at=event.at)
        elif isinstance(event, Exited):
            if event.job_id in self._cancelling:
                state = JobState.CANCELLED
            else:
                state = JobState.SUCCEEDED if event.exit_code == 0 else JobState.FAILED
            if self._end_run(event.job_id, event.at, state, exit_code=event.exit_code, reason=event.reason):
                result.finished.append((event.job_id, state))
            self._cancelling.discard(event.job_id)
        elif isinstance(event, Stopped):
            if event.job_id in self._cancelling:
                self._cancelling.discard(event.job_id)
                if self._end_run(event.job_id, event.at, JobState.CANCELLED, reason="cancelled"):
                    result.finished.append((event.job_id, JobState.CANCELLED))
                return
            if self._end_run(event.job_id, event.at, JobState.PREEMPTED, restart=True):
                self.store.transition(event.job_id, JobState.QUEUED, at=event.at)
                result.requeued.append(event.job_id)

    def _handle_events(self, events: Sequence, result: StepResult) -> None:
        """The backend's events (:meth:`handle`), their transitions in one transaction where the
        store offers one (``batch``, the SQL store's), committed before the pass goes on (they
        free the GPUs it hands out).  If that transaction fails, none of it was written: the
        ledgers go back to the store's (and the usage and cancels to what they were), and the
        events are handled again one at a time, each in its own transaction, as without batches."""
        events = list(events)
        batch = getattr(self.store, "batch", None)
        if batch is None or len(events) < 2:
            for event in events:
                self.handle(event, result)
            return
        usage, dirty, cancelling = self.usage.state(), self.usage.dirty, set(self._cancelling)
        finished, requeued = len(result.finished), len(result.requeued)
        try:
            with batch([e.job_id for e in events if e.job_id in self._active]):
                for event in events:
                    self.handle(event, result)
        except Exception:
            log.exception("the backend's %d events could not be saved at once: one at a time", len(events))
            self.recover()
            self._cancelling = cancelling
            self.usage._value, self.usage.dirty = usage, dirty  # (as before the batch: its charges are made again)
            del result.finished[finished:], result.requeued[requeued:]
            for event in events:
                self.handle(event, result)

    def cancel(self, job_id: str, at: float, grace_seconds: float | None = None) -> None:
        """Cancel a running job: ask the backend to stop it; the job becomes
        CANCELLED when the backend reports it gone.  (A queued job is
        cancelled by the controller with a plain store transition.)"""
        if job_id in self._active:
            self._cancelling.add(job_id)
            self.backend.stop(job_id, self.grace_seconds if grace_seconds is None else grace_seconds,
                              "cancelled")

    def requeue(self, job_id: str, at: float, reason: str) -> bool:
        """Stop a running job and put it back in the queue, as a preemption does (an
        administrator's or manager's request): the preemption is recorded with its reason
        before the backend is asked to stop the job, with the preemption grace period (time to
        checkpoint); when the backend reports it stopped, :meth:`handle` moves it to PREEMPTED
        and QUEUED, keeping its checkpoint and counting the restart. False when the job holds
        no GPUs or is already being stopped."""
        a = self._active.get(job_id)
        if a is None or a.stopping or job_id in self._cancelling:
            return False
        self.store.record_preemption(job_id, reason, at)
        self._active[job_id] = replace(a, stopping=True)
        self.backend.stop(job_id, self.grace_seconds, reason)
        return True

    # -- one step --------------------------------------------------------------
    def snapshot(self, now: float) -> Snapshot:
        nodes = self._nodes()
        return Snapshot(now=now, queue=self.store.queued_jobs(), active=self.store.active_jobs(),
                        nodes=nodes, limits=self.store.workspace_limits(),
                        usage=self.usage.view(now), estimates=self.estimates, in_use=self._in_use,
                        free_map=self._free_map, preemption_counts=self.ledger.counts(now))

    def step(self, now: float) -> StepResult:
        result = StepResult()
        self._handle_events(self.backend.poll_events(), result)
        try:
            self.save_usage(now)
        except Exception:  # the usage is kept (dirty) and written at a later pass: scheduling goes on
            log.exception("could not save the fair-share usage")
        queue = self.store.queued_jobs()
        if not len(queue):
            return result
        dec = self.policy.schedule(self.snapshot(now))
        result.decisions = dec
        for p in dec.preempts:
            a = self._active.get(p.job_id)
            if a is None or a.stopping:
                continue
            self.store.record_preemption(p.job_id, p.reason, now)
            self.ledger.preempted(now)
            self._active[p.job_id] = replace(a, stopping=True)
            self.backend.stop(p.job_id, self.grace_seconds, p.reason)
            result.preempted.append(p.job_id)
        batch = getattr(self.store, "batch", None)  # a store that writes a pass's changes at once (the SQL store)
        if batch is None:
            for adm in dec.admits:
                job = queue.get(adm.job_id)
                if first_start(job):
                    self.ledger.started(now)
                self.store.transition(adm.job_id, JobState.STARTING, at=now, placement=adm.placement)
                self._hold(ActiveJob(job, adm.placement, now))
                self.backend.start(job, adm.placement)
                result.admitted.append(adm.job_id)
            return result
        admits = [(adm, queue.get(adm.job_id)) for adm in dec.admits]
        if admits:
            # every admission of the pass in one transaction; if it fails, none is written nor started
            with batch([adm.job_id for adm, _ in admits]):
                for adm, _ in admits:
                    self.store.transition(adm.job_id, JobState.STARTING, at=now, placement=adm.placement)
        for adm, job in admits:  # committed: now the backend may start them
            if first_start(job):
                self.ledger.started(now)
            self._hold(ActiveJob(job, adm.placement, now))
            self.backend.start(job, adm.placement)
            result.admitted.append(adm.job_id)
        return result

"""Queue insight: position, estimated start (and range) and a pending reason per queued job.

A pure function of the snapshot, like a scheduling pass.  Positions follow
queue order (submission order, priorities within a workspace).  Estimated
starts come from a forward projection of the cluster (:func:`project`):

- each running job ends after the time it is still expected to need *given
  what it has already run* (:meth:`~.estimates.HistoryEstimates.remaining`:
  a quantile of the completed runtimes longer than its own so far), and a
  queued job, once started, holds its GPUs for its own estimate;
- the projection follows the policy's order and rules when it knows them.
  Under ``las`` (the default) queued jobs are walked by service level, a job
  that does not fit does not block smaller ones behind it, and a queued job
  takes the GPUs of running jobs of a lower service level (once they have
  run ``min_run``), as the policy would preempt them; a running job's GPUs
  are counted for a queued job from the moment it is expected to sink below
  that job's level; jobs reaching the starvation limit go first (and one
  that cannot start holds back the rest), and a gang whose GPUs are free but
  spread gathers them (``drain``, after ``migrate_after``); ``preempt_after``,
  ``swap_after`` and ``quantum`` are honoured.  Under other policies the projection makes
  their pass (``core.admission_loop``) at each of its moments, in the policy's order (the
  queue's; ``sjf``'s shortest expected run first; fair share's workspace that deserves it
  most, with its usage charged as runs end): the guaranteed sweep under quotas, then the walk
  from the head, where the first job that does not fit blocks the rest but for jobs within
  their guarantee, or, under EASY backfilling (``backfill``, ``sjf``, ``fairshare``), is
  reserved GPUs from the running jobs' *estimated* ends, as the pass reserves them, and the
  jobs behind it start where they do not delay it (past its first ``FIFO_MOMENT_STARTS``
  starts, one walk in the queue's order, ``sjf``'s under ``sjf``; past ``PASS_LOOKS`` jobs
  looked at for backfill or for the sweep in the policy's order, neither);
- runtimes are not known, so the projection runs several times: five
  (``SAMPLES``) times with each job's runtime drawn at its own pseudo-random quantile of
  the history (the median of the five starts is ``estimated_start``; one
  projection with every job at its median runtime would be late, because
  the first of many jobs to end ends much sooner than the median one), the
  jobs of one burst (a workspace's trainings of one size submitted
  together, named at submission: bursts.py, :func:`_burst`) at one
  quantile, since they are alike, and
  twice with every runtime at its 25th, then 75th percentile: those two
  (widened to cover the five samples) are ``estimated_range`` (earliest,
  latest);
- the runtime history counts the jobs still running as censored runtimes
  (Kaplan-Meier, :meth:`~.estimates.HistoryEstimates.censor`): recent
  completions alone favour short jobs and make every estimate early.

docs/scheduling.md ("Start estimates") gives the measured accuracy; the
replay records every estimate the queue would show
(:class:`~..sim.replay.EstimateRecorder`).

Jobs that arrive later are not foreseen (under ``las`` they rank behind a
queued job of the same level anyway).  A sweep's held jobs (:class:`HeldSweep`) are: each
joins the projection's queue when one of its sweep's jobs ends in it, as the runtime releases
them, and waits from then.  ``limit`` bounds the work on a very
long queue (later jobs in the projection's order get no estimate).

Example reason: "needs 4 GPUs on one node; workspace quota 8/8 in use;
estimated start 14:10 when training X ends".
"""

from __future__ import annotations

import heapq
from collections import deque
from itertools import islice
from bisect import bisect_left, bisect_right, insort
from dataclasses import dataclass, replace
from types import SimpleNamespace
from typing import Callable, Iterable, Sequence
from zlib import crc32

from .core import (BLOCKED, BORROW, LEASE_NOTE_DEPTH, NO_QUOTA, WITHIN, PassState, _find_unless_known_to_fail, clock,
                   VICTIM_WINDOW, describe_need, estimated_end, lease_protects, pick_victims, reservation_at,
                   open_ended, quota_cap, quota_verdict)
from .queueview import _job_key
from .budget import MIN_STARTS, credit as budget_credit, first_start, first_step_reason, owed as budget_owed
from .placement import DEFAULT_TOPOLOGY_KEYS, FreeMap, copy_freemap, take_available
from .policies.fairshare import FairShareOrder, share_parts
from .policies.las import drain_plan
from .policies.sjf import sjf_key
from .queueview import QueueView
from .types import Job, Snapshot, WorkspaceLimits
from .usage import decay

#: Sampled projections per estimate: each draws every job's runtime at its
#: own quantile (:func:`_qf`; a burst's jobs at one, :func:`_burst`); the median of their
#: starts is the estimate.  5 since 2026-12-08 (3 before): a job waiting on one burst is
#: shown its middle fifth, not its middle third, and on the light windows of the Philly trace
#: the issue's target no longer hangs on the seed of the draws (docs/benchmarks.md, "Start
#: estimates over several draws").
SAMPLES = 5
#: A sampled projection draws one quantile for the jobs of a burst (:func:`_burst`): those
#: named at submission (bursts.py); a job stored with none (before bursts were named), its
#: workspace's trainings of its size submitted in the same window of this many seconds
#: (docs/benchmarks.md, "A burst's jobs drawn alike").
BURST_WINDOW = 60.0
#: The range: the projections with every runtime at these quantiles (short
#: runs everywhere, long runs everywhere), widened to the samples if need be.
RANGE_QUANTILES = (0.25, 0.75)
INF = float("inf")
#: Drain searches (``las.drain_plan``) per ``las`` projection: on a busy cluster of gangs the
#: search, over nodes and the jobs on them, is most of a projection's time (docs/benchmarks.md,
#: "The projection follows the pass").
DRAIN_LOOKS = 200
#: Said of a waiting job while the preemption budget (budget.py) is spent.
BUDGET_SPENT = "the preemption budget is spent (FLIGHTBASE_PREEMPTION_BUDGET): no running job is stopped for it"
#: A projection stops after this many events (job ends, level changes).
MAX_EVENTS = 20_000
#: Jobs projected at most (later ones in the projection's order get no estimate).
DEFAULT_LIMIT = 1000
#: Under las, the pass's guaranteed sweep is projected on queues of this many jobs at most.
GUARANTEED_SWEEP_QUEUE = 1000
#: Under the policies other than las, the projection makes their pass at each moment for this
#: many starts; the rest, one walk in the queue's order (_project_fifo's tail).
FIFO_MOMENT_STARTS = 1500
#: Under ``backfill``, ``sjf`` and ``fairshare`` a projection looks at this many jobs in all, its
#: moments together, beyond what ``fifo``'s rule needs: backfill candidates behind a reserved head,
#: and under ``sjf`` and ``fairshare`` the jobs their guaranteed sweep walks in their order. Past
#: them, a blocked head blocks the rest, and the sweep takes each workspace's jobs in queue order.
PASS_LOOKS = 20_000


@dataclass(frozen=True, slots=True)
class QueueInsight:
    job_id: str
    position: int            # 1-based, overall
    workspace_position: int  # 1-based, within its workspace
    estimated_start: float | None
    reason: str
    # (earliest, latest) of the projections with short and long runtimes;
    # None when there is no estimate.
    estimated_range: tuple[float, float] | None = None


@dataclass(frozen=True, slots=True)
class HeldSweep:
    """A sweep's jobs as the projection releases them: ``members``, the ids of its jobs that
    hold one of its ``parallel`` places now (queued and not held, or running); ``held``, its
    held jobs in the order they are released (``sweeps.to_release``: by number); ``free``,
    places free now (those held jobs join at once, as the next pass releases them).  Each end
    of a member in a projection releases the next held job, which becomes a member."""
    members: frozenset[str]
    held: tuple[Job, ...]
    free: int = 0


class _Releases:
    """One projection's held sweep jobs still to release (:class:`HeldSweep`)."""

    __slots__ = ("of", "held", "count")

    def __init__(self, sweeps: Sequence[HeldSweep]):
        self.of: dict[str, int] = {}  # a member's id -> its sweep
        self.held: list[deque[Job]] = []
        self.count = 0
        for k, sw in enumerate(sweeps):
            self.of.update(dict.fromkeys(sw.members, k))
            self.held.append(deque(sw.held))
            self.count += len(sw.held)

    def initial(self, sweeps: Sequence[HeldSweep]) -> list[Job]:
        """The held jobs released at once (their sweeps' free places)."""
        out = []
        for k, sw in enumerate(sweeps):
            for _ in range(min(sw.free, len(self.held[k]))):
                out.append(self.release(k))
        return out

    def ended(self, job_id: str) -> Job | None:
        """The held job that ``job_id``'s end releases, if any."""
        k = self.of.pop(job_id, None)
        if k is None or not self.held[k]:
            return None
        return self.release(k)

    def release(self, k: int) -> Job:
        """The next held job of sweep ``k`` (which has one), now one of its members."""
        job = self.held[k].popleft()
        self.count -= 1
        self.of[job.id] = k
        return job


def _remaining(est, job: Job, ran: float, q: float) -> float:
    """Seconds ``job`` still needs after ``ran`` seconds in all: the
    estimates' conditional quantile when they have one, else (declared or
    default estimates) the total estimate minus what it ran."""
    fn = getattr(est, "remaining", None)
    if fn is not None:
        return fn(job, ran, q)
    left = est.estimate(job) - ran
    if left <= 0:
        # Overran its estimate: expect it to run about as long again.
        left = ran if ran > 60.0 else 60.0
    return left


@dataclass(slots=True)
class _Holder:
    job: Job
    placement: dict
    run_start: float
    att0: float        # GPU-seconds attained before this run
    end: float
    preemptible: bool
    seq: int = 0       # order of hold() calls (victims are looked at in this order)
    protect: float = 0.0  # how long this run keeps its GPUs (min_run, or min_rerun after a restart)

    def attained(self, at: float) -> float:
        """GPU-seconds attained by ``at`` (this run included)."""
        return self.att0 + self.job.gpus * (at - self.run_start)

    @property
    def started_at(self) -> float:  # (as ActiveJob names it: las.drain_plan reads it)
        return self.run_start


def _unit(salt_of: int) -> Callable[[str], float]:
    """A pseudo-random number in (0, 1) per key, fixed by the key and ``salt_of`` (a replay
    stays reproducible)."""
    salt = (salt_of * 0x9E3779B9) & 0xFFFFFFFF

    def u(key: str) -> float:
        h = crc32(key.encode()) ^ salt  # then murmur3's finaliser: every input bit moves the top ones
        h = ((h ^ (h >> 16)) * 0x85EBCA6B) & 0xFFFFFFFF
        h = ((h ^ (h >> 13)) * 0xC2B2AE35) & 0xFFFFFFFF
        return ((h ^ (h >> 16)) + 0.5) / 4294967296.0
    return u


#: The seed of the sampled projections' pseudo-random quantiles (:func:`_qf`): 0 in the
#: service.  A light window's result can hang on the draws of one or two bursts, so
#: ``benchmarks/estimate_bench.py --draw-seeds`` replays a window with other seeds to tell
#: the estimator from the luck of its draws (docs/benchmarks.md, "Start estimates over
#: several draws").  Read when a projection draws, never by the scheduler.
DRAW_SEED = 0
#: Salts of ``_unit`` for one seed: the samples' (0 to SAMPLES - 1), and each burst's order
#: of the samples' parts (``_ORDER_SALT``); each seed moves them by ``_SEED_STRIDE``.
_ORDER_SALT = 1000
_SEED_STRIDE = 1009


def _qf(spec: int, seed: int | None = None) -> Callable[[str], float]:
    """A runtime quantile per burst (the key :func:`_burst` gives) for the sample number
    ``spec`` (0 to ``SAMPLES`` - 1): a pseudo-random quantile of each burst, fixed by its key
    and the sample.  The samples are a Latin hypercube: a burst's quantiles in the
    ``SAMPLES`` samples fall one in each of as many equal parts of (0, 1), in an order of its
    own.  A job waiting on one burst is then shown the start of
    the burst's middle part, not the median of the draws anywhere in (0, 1): with one draw
    for forty jobs, that would be as noisy as a single job's.  ``seed``: the draws' seed
    (:data:`DRAW_SEED` when None); seed 0 gives the service's draws."""
    shift = _SEED_STRIDE * (DRAW_SEED if seed is None else seed)
    u, order = _unit(spec + shift), _unit(_ORDER_SALT + shift)

    def q(key: str) -> float:
        return ((spec + int(SAMPLES * order(key))) % SAMPLES + u(key)) / SAMPLES
    return q


def project(snap: Snapshot, free: FreeMap, q: float = 0.5, policy=None, limit: int = DEFAULT_LIMIT,
            only: Iterable[str] | None = None, not_before: dict[str, float | str] | None = None,
            sweeps: Sequence[HeldSweep] = ()) -> dict[str, tuple[float, str]]:
    """Projected start of queued jobs: job id -> (time, what makes room).
    ``free``: the free GPUs now (not modified).  ``only``: stop once these
    jobs have a start (the replay's recorder); otherwise the first ``limit``
    jobs in the projection's order are projected.  ``not_before``: job id -> the time before
    which it may not start, or the id of a job that must start before it in the same
    projection (under ``las``; explain's held notebook leases).  ``sweeps``: held sweep jobs,
    released into the projection as their sweeps' jobs end (:class:`HeldSweep`), each projected
    too."""
    return project_many(snap, free, (q,), policy, limit, only, not_before, sweeps)[0]


def project_many(snap: Snapshot, free: FreeMap, qs: Sequence[float | int], policy=None, limit: int = DEFAULT_LIMIT,
                 only: Iterable[str] | None = None, not_before: dict[str, float | str] | None = None,
                 sweeps: Sequence[HeldSweep] = ()) -> list[dict[str, tuple[float, str]]]:
    """:func:`project` for each entry of ``qs``: a runtime quantile (float)
    for every job, or a sample number (int): each job's runtime drawn at its
    own pseudo-random quantile (:func:`_qf`; a burst's jobs at one, :func:`_burst`).  The work they share, ordering
    the queue, is done once."""
    _censor(snap)
    if policy is not None and getattr(policy, "name", "") == "las" and hasattr(policy, "_ranked"):
        return _project_las(snap, free, qs, policy, limit, only, not_before, sweeps)
    # The guaranteed sweep's lists, the same for every projection (each works on a copy).
    lists = (_Guaranteed.lists(((0, j, 0) for j in snap.queue.jobs()), snap.limits)
             if any(lim.quota is not None for lim in snap.limits.values()) else None)
    rules = _PassRules.of(policy)
    return [_project_fifo(snap, free, q, limit, only, sweeps, lists, rules) for q in qs]


@dataclass(frozen=True)
class _PassRules:
    """What the projection makes of a policy other than ``las`` (``core.admission_loop``): its
    head-of-line rule, ``hol`` ("block": ``fifo``; "reserve": EASY backfilling behind the first
    blocked job, looking at ``depth`` jobs past it), and its order (``order``: "queue", the
    queue's; "sjf", :func:`~.policies.sjf.sjf_key`; "fairshare",
    :class:`~.policies.fairshare.FairShareOrder` with ``horizon`` and ``starve_after``, a head
    aged past it reserved strictly where ``strict``).  No policy, or one it does not know:
    ``fifo``'s."""
    hol: str = "block"
    order: str = "queue"
    depth: int = 1000
    horizon: float = 3600.0
    starve_after: float = INF
    strict: bool = False

    @staticmethod
    def of(policy) -> "_PassRules":
        name = getattr(policy, "name", "")
        if name == "backfill":
            return _PassRules("reserve", "queue", policy.depth)
        if name == "sjf":
            return _PassRules("reserve", "sjf", policy.depth)
        if name == "fairshare":
            return _PassRules("reserve", "fairshare", policy.depth, policy.horizon, policy.starve_after,
                              policy.strict_aging)
        return _PassRules()


class _Shares(dict):
    """Each workspace's (quota, usage, weight), fair share's order key's parts
    (:class:`~.policies.fairshare.FairShareOrder`), at the projection's moment (:meth:`at`):
    made when first asked for, from the projection's ``usage`` (each workspace's
    ``(GPU-seconds, as of)``, the ledger's entries) decayed to that moment with the ledger's
    half-life (``usage.decay``), as the pass then reads it; the projection drops a workspace's
    when it charges it."""

    def __init__(self, snap: Snapshot, usage: dict[str, tuple[float, float]], half_life: float):
        super().__init__()
        self._limits_for = snap.limits_for
        self._limits: dict[str, WorkspaceLimits] = {}
        self._usage = usage
        self.half_life = half_life
        self.t = snap.now

    def at(self, t: float) -> None:
        """The moment the order is made for: every part made for another is dropped (decay)."""
        if t != self.t:
            self.clear()
            self.t = t

    def __missing__(self, ws: str) -> tuple[int | None, float, float]:
        lim = self._limits.get(ws)
        if lim is None:
            lim = self._limits[ws] = self._limits_for(ws)
        u, since = self._usage.get(ws, (0.0, self.t))
        v = self[ws] = share_parts(lim, decay(u, self.t - since, self.half_life))
        return v


class _KeyOrder:
    """The projection's queue in a policy's own order (``sjf``'s), kept per workspace: entries
    ``(key, n, job)``, sorted; an entry is stale once its job left the queue or was queued again
    (another :class:`Job`), and the stale ones are dropped now and then.  A walk
    (:class:`_KeyCursor`) merges the workspaces' lists, so a workspace it blocks costs it nothing
    more."""

    def __init__(self, jobs: Iterable[Job], key: Callable[[Job], tuple]):
        self.key = key
        self.n = 0
        self.count = 0
        self.by_ws: dict[str, list[tuple]] = {}
        for job in jobs:
            self.n += 1
            self.by_ws.setdefault(job.workspace, []).append((key(job), self.n, job))
        for entries in self.by_ws.values():
            entries.sort()
            self.count += len(entries)

    def add(self, job: Job) -> None:
        self.n += 1
        self.count += 1
        insort(self.by_ws.setdefault(job.workspace, []), (self.key(job), self.n, job))

    def compact(self, queue: QueueView) -> None:
        if self.count > len(queue) + 64:
            get = queue.get
            for entries in self.by_ws.values():
                entries[:] = [e for e in entries if get(e[2].id) is e[2]]
            self.count = sum(len(entries) for entries in self.by_ws.values())

    def cursor(self, queue: QueueView, only: set[str] | None = None) -> "_KeyCursor":
        """A walk in this order (of the workspaces ``only``, where given)."""
        return _KeyCursor(self.by_ws, queue, only)


class _KeyCursor:
    """A walk of a :class:`_KeyOrder` (the pass's order protocol: ``block`` a workspace)."""

    def __init__(self, by_ws: dict[str, list[tuple]], queue: QueueView, only: set[str] | None):
        self._lists = by_ws
        self._queue = queue
        self._blocked: set[str] = set()
        self._heap = [(entries[0], ws, 0) for ws, entries in by_ws.items()
                      if entries and (only is None or ws in only)]
        heapq.heapify(self._heap)

    def block(self, workspace: str) -> None:
        self._blocked.add(workspace)

    def __iter__(self) -> "_KeyCursor":
        return self

    def __next__(self) -> Job:
        heap, get, blocked = self._heap, self._queue.get, self._blocked
        while heap:
            e, ws, k = heap[0]
            if ws in blocked:
                heapq.heappop(heap)
                continue
            entries = self._lists[ws]
            if k + 1 < len(entries):
                heapq.heapreplace(heap, (entries[k + 1], ws, k + 1))
            else:
                heapq.heappop(heap)
            job = e[2]
            if get(job.id) is job:
                return job
        raise StopIteration


def _censor(snap: Snapshot) -> None:
    """Tell the estimates what running and preempted jobs have run so far
    (:meth:`~.estimates.HistoryEstimates.censor`), when they take it."""
    fn = getattr(snap.estimates, "censor", None)
    if fn is None:
        return
    now = snap.now
    runs = [(a.job, a.job.attained / a.job.gpus + max(0.0, now - a.started_at)) for a in snap.active]
    runs += [(j, j.attained / j.gpus) for j in snap.queue.jobs() if j.attained > 0]
    fn(now, runs)


def _left_fn(est, spec: float | int) -> Callable[[Job, float], float]:
    """``left(job, ran)``: the time ``job`` still needs after ``ran`` seconds,
    at the quantile ``spec`` (a float) or drawn for sample ``spec`` (an int:
    each job at its own quantile, :func:`_qf`, a burst's jobs at one, :func:`_burst`)."""
    remaining = getattr(est, "remaining", None)
    if remaining is None:
        return lambda job, ran: _remaining(est, job, ran, 0.5)
    if isinstance(spec, float):
        # A range's bound (RANGE_QUANTILES): widened where a sweep has too few finished
        # trials to tell a spread (HistoryEstimates.bound).
        bound = getattr(est, "bound", None)
        if bound is not None:
            return lambda job, ran: bound(job, ran, spec)
        return lambda job, ran: remaining(job, ran, spec)
    u = _qf(spec)
    return lambda job, ran: remaining(job, ran, u(_burst(job)))


def _burst(job: Job) -> str:
    """What a sampled projection draws one runtime quantile for: the burst ``job`` was
    submitted in (``Job.burst``, bursts.py: a person's alike jobs submitted together are
    alike; drawn apart, the first of a burst of forty to end would end within minutes, however
    long the burst runs); a notebook lease alone (each is someone's own session).  A job given
    no burst (stored before bursts were) falls in its workspace's jobs of its size and training
    submitted in the same ``BURST_WINDOW``."""
    if job.kind == "lease":
        return job.id
    return job.burst or f"{job.workspace}|{job.gpus}|{job.training or job.kind}|{int(job.submitted_at // BURST_WINDOW)}"


class _Quotas:
    """The GPUs each workspace holds as a projection goes, and the cap on them for a job
    (``core.quota_cap``: its quota where it may not borrow, its quota plus its borrowing limit
    where it has one): a job that would take its workspace past the cap does not start until
    its workspace's jobs have ended, as the pass holds it (verdict BLOCKED).  Reclaiming
    borrowed GPUs for a job within its guarantee is projected by the guaranteed sweep
    (:class:`_Guaranteed`; under ``las`` on queues of up to ``GUARANTEED_SWEEP_QUEUE`` jobs)."""

    __slots__ = ("limits", "use", "caps", "quota", "under")

    def __init__(self, snap: Snapshot, running: Iterable[Job]):
        self.limits = snap.limits
        self.use: dict[str, int] = {}
        self.quota = {ws: lim.quota for ws, lim in snap.limits.items() if lim.quota is not None}
        self.under = {ws for ws, q in self.quota.items() if q > 0}  # with room in their guarantee
        for job in running:
            self.add(job, job.gpus)
        self.caps: dict[tuple[str, bool], int | None] = {}

    @staticmethod
    def of(snap: Snapshot, running: Iterable[Job]) -> "_Quotas | None":
        """None where no workspace has a quota (the projection then skips every check)."""
        return _Quotas(snap, running) if any(l.quota is not None for l in snap.limits.values()) else None

    def add(self, job: Job, gpus: int) -> None:
        ws = job.workspace
        u = self.use[ws] = self.use.get(ws, 0) + gpus
        q = self.quota.get(ws)
        if q is not None:
            if u < q:
                self.under.add(ws)
            else:
                self.under.discard(ws)

    def cap(self, job: Job) -> int | None:
        return self.cap_of(job.workspace, job.preemptible)

    def cap_of(self, ws: str, preemptible: bool) -> int | None:
        k = (ws, preemptible)
        if k not in self.caps:
            self.caps[k] = quota_cap(self.limits.get(ws), preemptible)
        return self.caps[k]

    def shields(self, victim: Job, job: Job, lost: int = 0) -> bool:
        """Whether ``victim``, running, is safe from ``job`` of another workspace: its own
        workspace has a guarantee and would hold less than it without ``victim`` (``las``
        preempts only borrowed GPUs, ``PassState.shielded``); ``lost``: GPUs the workspace
        already loses in the same search."""
        ws = victim.workspace
        q = self.quota.get(ws)
        return ws != job.workspace and q is not None and self.use.get(ws, 0) - lost - victim.gpus < q

    def guarantee(self, ws: str) -> int:
        return self.quota.get(ws, 0)

    def borrowing(self, ws: str, lost: int = 0) -> bool:
        """Whether ``ws`` holds more than its guarantee (``PassState.over_guarantee``), without
        the ``lost`` GPUs a reclaim already takes from it: its jobs may be reclaimed for another
        workspace's job within its guarantee."""
        return self.use.get(ws, 0) - lost > self.quota.get(ws, 0)

    def over(self, job: Job) -> bool:
        """Whether ``job`` may not start now for its workspace's cap."""
        c = self.cap(job)
        return c is not None and self.use.get(job.workspace, 0) + job.gpus > c


def _project_fifo(snap, free, spec, limit, only, sweeps: Sequence[HeldSweep] = (),
                  lists: dict | None = None, rules: _PassRules | None = None) -> dict[str, tuple[float, str]]:
    """The policies other than ``las`` (``core.admission_loop``), at each moment of the
    projection (now, then each projected end) as their pass makes it, in their order
    (``rules``): under quotas the guaranteed sweep first (``core.guaranteed_sweep``:
    each job within its workspace's guarantee takes free GPUs or reclaims other workspaces'
    borrowed ones, at once, the newest first), then the walk from the head, where the first
    job that does not fit blocks the rest, but for jobs within their guarantee. A job its
    workspace's cap holds back holds back that workspace's later jobs, and nobody else's. A
    notebook lease does not start while a job ahead that rule 5 protects from it waits
    (``core.lease_protects``; the pass may start it beside their reservations: not projected).
    A sweep's held jobs join the queue at their place as its jobs end (:class:`_Releases`).
    ``rules`` (:class:`_PassRules`): the policy's order and head-of-line rule. Under EASY
    backfilling the first job that does not fit is reserved GPUs (``core.reservation_at``, from
    the ends the pass expects: ``pass_ends``) and the walk goes on, each later job starting
    where it fits and would not delay that job (``core.admission_loop``'s rule), up to
    ``PASS_LOOKS`` jobs looked at in all; past them, the head blocks the rest. Under
    ``sjf`` and fair share the guaranteed sweep walks their order, as their pass does
    (``policy_sweep``); under the others, each workspace's jobs in its queue order, taken by
    submission (:class:`_Guaranteed`). Each moment costs about the number of workspaces plus
    what starts (and, backfilling, what it looks at); on a long queue under quotas, where jobs
    within their guarantee keep passing the head, thousands of starts may come before the
    first jobs in queue order, so past ``FIFO_MOMENT_STARTS`` starts the rest is one walk
    (``tail``). ``lists``: the guaranteed sweep's (:meth:`_Guaranteed.lists` of the queue),
    made once for several projections."""
    left = _left_fn(snap.estimates, spec)
    now = snap.now
    fm = copy_freemap(free)
    limits = snap.limits
    queue = snap.queue.copy()  # (jobs leave and join it as the walk goes)
    rules = rules or _PassRules()
    est = snap.estimates.estimate  # (what the pass expects of a job: its reservations, backfill)
    keyed = _KeyOrder(queue.jobs(), lambda j: sjf_key(est, j)) if rules.order == "sjf" else None
    # Fair share's order: the GPUs each workspace holds, and its usage, charged as the projection
    # goes with each run's GPU-seconds at its end, as the coordinator charges it, and decayed
    # as the ledger decays it (_Shares; a plain mapping of usage, in tests, does not decay).
    fair = rules.order == "fairshare"
    held: dict[str, int] = {}
    usage: dict[str, tuple[float, float]] = {}
    half_life = INF
    if fair:
        entries = getattr(snap.usage, "entries", None)
        if entries is not None:
            usage = dict(entries())
            half_life = snap.usage.half_life
        else:
            usage = {ws: (snap.usage[ws], now) for ws in snap.usage}
    def charge(ws: str, gpu_seconds: float, at: float) -> None:  # (UsageLedger.charge's rule)
        u, since = usage.get(ws, (0.0, at))
        usage[ws] = (decay(u, at - since, half_life) + gpu_seconds, at)

    order_state = SimpleNamespace(snap=SimpleNamespace(queue=queue), now=now, in_use=held) if fair else None
    shares = _Shares(snap, usage, half_life) if fair else None
    if only is not None:
        want = set(only)
    else:
        want = {j.id for j in islice(snap.queue, limit)}
        room = limit - len(want)
        for sw in sweeps:  # (held sweep jobs too, within the limit)
            take = sw.held[:max(0, room)]
            want.update(j.id for j in take)
            room -= len(take)
    holders: dict[str, _Holder] = {}
    ends: list[tuple[float, int, str]] = []  # (end, seq, id): stale once its holder is another
    seq = 0
    t = now

    def hold(job: Job, p, start: float, att0: float, end: float) -> None:
        nonlocal seq
        seq += 1
        holders[job.id] = _Holder(job, p, start, att0, end, job.preemptible, seq)
        heapq.heappush(ends, (end, seq, job.id))

    running = []
    back: list[Job] = []  # being preempted: queued again once stopped (at once, grace aside)
    for a in snap.active:
        job = a.job
        if a.stopping:
            fm.give(a.placement)
            ran = max(0.0, now - a.started_at)
            back.append(_queued_again(job, job.attained + job.gpus * ran, now))
            if fair:  # (charged when it stops, as the coordinator charges it)
                charge(job.workspace, job.gpus * ran, now)
            continue
        running.append(job)
        if fair:
            held[job.workspace] = held.get(job.workspace, 0) + job.gpus
        hold(job, a.placement, a.started_at, job.attained,
             now + left(job, job.attained / job.gpus + max(0.0, now - a.started_at)))
    quotas = _Quotas.of(snap, running)
    if quotas is not None:  # never started: more than its workspace may ever hold
        want.difference_update(j.id for j in snap.queue.jobs() if (c := quotas.cap(j)) is not None and c < j.gpus)
    # The guaranteed sweep's lists (entries ``(n, job, 0)``: ``n`` orders two entries of one job,
    # the first of which is stale once the job was stopped and queued again).
    guaranteed = None
    if quotas is not None:
        guaranteed = _Guaranteed(lists if lists is not None else _Guaranteed.lists(
            ((0, j, 0) for j in queue.jobs()), limits))
    joined = 0

    def enqueue(job: Job) -> None:  # (queued again, or released)
        nonlocal joined
        queue.add(job)
        if keyed is not None:
            keyed.add(job)
        if guaranteed is not None:
            joined += 1
            guaranteed.add((joined, job, 0))

    def offer(offers: list, ws: str, passed: set[str], waiting: list) -> None:
        """``ws``'s next job within its guarantee, if any, onto ``offers`` by submission."""
        while True:
            e, before = guaranteed.next(ws, quotas, queue, lambda e, b: (
                e[1].kind == "lease" and open_ended(e[1]) and (b or ws in passed or bool(waiting))))
            if before:
                passed.add(ws)
            if e is None:
                return
            job = e[1]
            if queue.get(job.id) is job:
                heapq.heappush(offers, (job.submitted_at, job.id, ws, e))
                return
            guaranteed.drop(e)  # (a stale entry: the job was queued again since)

    releases = _Releases(sweeps) if sweeps else None
    if releases is not None:
        for job in releases.initial(sweeps):
            enqueue(replace(job, enqueued_at=now))
    out: dict[str, tuple[float, str]] = {}
    last_label = ""

    def verdict(job: Job) -> str:
        return quota_verdict(limits.get(job.workspace), quotas.use.get(job.workspace, 0), job)

    starts = 0

    def start(job: Job, p) -> None:
        nonlocal starts
        starts += 1
        fm.take(p)
        if fair:
            held[job.workspace] = held.get(job.workspace, 0) + job.gpus
        if quotas is not None:
            quotas.add(job, job.gpus)
        hold(job, p, t, job.attained, t + left(job, job.attained / job.gpus))
        if job.id in want:
            out[job.id] = (t, last_label)
            want.discard(job.id)

    def ended(h: _Holder) -> None:
        """``h``'s run ends (or is stopped) at ``t``: under fair share its workspace holds less,
        and has used more."""
        if fair:
            ws = h.job.workspace
            held[ws] -= h.job.gpus
            charge(ws, h.job.gpus * (t - h.run_start), t)
            shares.pop(ws, None)

    def next_end() -> tuple | None:
        """The next end still its job's, out of ``ends``."""
        while ends:
            e = heapq.heappop(ends)
            if _holds(holders, e):
                return e
        return None

    def finish(e: tuple) -> None:
        """A job ends (``e``, its entry in ``ends``): its GPUs back, its sweep's next job in."""
        nonlocal last_label
        h = holders.pop(e[2])
        fm.give(h.placement)
        ended(h)
        if quotas is not None:
            quotas.add(h.job, -h.job.gpus)
        last_label = h.job.label
        if releases is not None:
            nxt = releases.ended(e[2])
            if nxt is not None:
                if late is None:
                    enqueue(replace(nxt, enqueued_at=t))
                else:
                    late.append(nxt)

    late: list[Job] | None = None  # in the tail: held sweep jobs released there, in turn

    def tail() -> None:
        """Past ``FIFO_MOMENT_STARTS`` starts, the rest as one walk in the queue's order of the
        projection's start (as the walk before 2026-12-07: it reaches the jobs wanted without
        walking the jobs that passed them since), then the jobs that joined since: each starts
        when its gang fits (as jobs end) after every job ahead of it; one its workspace's cap
        holds back, after the rest; the sweeps' held jobs last, those released meanwhile first.
        Under ``sjf``, in its order (the jobs that joined with the rest)."""
        nonlocal late
        late = []
        capped = []
        seen: set[str] = set()

        def rest():
            if keyed is not None:
                yield from keyed.cursor(queue)
                return
            for j0 in snap.queue:
                job = queue.get(j0.id)
                if job is not None:
                    seen.add(job.id)
                    yield job
            yield from [j for j in queue if j.id not in seen]

        for job in rest():
            if not want:
                return
            if quotas is not None and quotas.over(job):
                if quotas.cap(job) >= job.gpus:  # (else it never starts)
                    capped.append(job)
                continue
            if not until_fits(job):
                return
        for job in capped:
            if not want or not until_fits(job):
                return
        while want and (late or (releases is not None and releases.count)):
            if not late:
                late.append(next(releases.release(k) for k, dq in enumerate(releases.held) if dq))
            if not until_fits(late.pop(0)):
                return

    def until_fits(job: Job) -> bool:
        """``job`` started at the first moment from ``t`` on that it fits and its cap lets it."""
        nonlocal t
        while True:
            p = None if quotas is not None and quotas.over(job) else fm.find(job)
            if p is not None:
                start(job, p)
                return True
            e = next_end()
            if e is None:
                return False
            t = max(t, e[0])
            finish(e)

    def requeue(h: _Holder) -> None:  # reclaimed: its GPUs back, queued again after this moment
        fm.give(h.placement)
        del holders[h.job.id]
        ended(h)
        stopped.append(_queued_again(h.job, h.attained(t), t))

    def rule5_holds(job: Job, v: str) -> bool:
        """Whether ``job``, a notebook lease, waits behind a job left waiting ahead of it that
        rule 5 protects from it (``PassState.lease_room``; starting it beside their
        reservations is not projected)."""
        return bool(waiting) and open_ended(job) and bool(lease_protects(job, v, waiting))

    def note(job: Job, v: str) -> None:  # left waiting for GPUs (PassState.note_blocked)
        if len(waiting) < LEASE_NOTE_DEPTH:
            waiting.append((job, v))

    def within_past(head: str, handled: set[str], capped: set[str], waiting: list) -> None:
        """The walk past its blocked ``head``: each workspace's jobs within its guarantee, in its
        order up to its first job that is not, where they fit (:meth:`_Guaranteed.fitting`)."""
        failed: set[tuple[int, bool]] = set()  # (GPUs, preemptible) that did not fit
        offers: list[tuple] = []
        passed = {*handled, head}  # (the walk skips the jobs the sweep tried)

        def push(ws: str) -> None:
            if fm.total_free > 0:
                f = guaranteed.fitting(ws, quotas, queue, passed, failed, fm.total_free)
                if f is not None:
                    heapq.heappush(offers, (f[1][1].submitted_at, f[1][1].id, ws, f))

        for ws in [w for w in guaranteed.by_ws if w in quotas.under and w not in capped]:
            push(ws)
        while offers:
            _, _, ws, (_, e, kind) = heapq.heappop(offers)
            job = e[1]
            p = None
            if not rule5_holds(job, WITHIN):
                p = fm.find(job)
            if p is None:
                failed.add(kind)  # (this size fits nowhere now: the free GPUs only shrink)
                note(job, WITHIN)
            else:
                start(job, p)
                queue.remove(job.id)
            push(ws)

    def take_within(job: Job) -> bool:
        """``job``, within its workspace's guarantee, started on free GPUs or on GPUs reclaimed
        from other workspaces' borrowed jobs (stopped at once); False where neither is enough."""
        p = fm.find(job)
        if p is None:
            k = len(stopped)
            p = _reclaim(fm, job, holders, quotas, requeue)
            for vj in stopped[k:]:
                quotas.add(vj, -vj.gpus)
        if p is None:
            return False
        start(job, p)
        return True

    def policy_sweep(handled: set[str], waiting: list) -> None:
        """The guaranteed sweep in the policy's own order (``sjf``'s, fair share's), as
        ``core.guaranteed_sweep`` walks it: a workspace's jobs within its guarantee until its
        first that neither is nor borrows with room left in it."""
        nonlocal looks
        live = set(quotas.under)  # (a workspace with no room left in its guarantee has no job within it)
        if not live:
            return
        order = keyed.cursor(queue, live) if keyed is not None else make_order()
        passed: set[str] = set()
        taken = []
        for job in order:
            if not live or looks >= PASS_LOOKS:
                break
            looks += 1
            ws = job.workspace
            v = verdict(job)
            if v != WITHIN:
                if v != BORROW or quotas.use.get(ws, 0) >= quotas.guarantee(ws):
                    order.block(ws)
                    live.discard(ws)
                else:
                    passed.add(ws)
                continue
            if job.kind == "lease" and open_ended(job) and (ws in passed or waiting):
                passed.add(ws)  # (rule 5: the main walk decides)
                continue
            handled.add(job.id)
            if take_within(job):
                taken.append(job.id)
                if ws not in quotas.under:
                    live.discard(ws)
            else:
                note(job, WITHIN)
                order.block(ws)
                live.discard(ws)
        for jid in taken:
            queue.remove(jid)

    def make_order():
        """The policy's order over the queue now (``rules.order``)."""
        if keyed is not None:
            return keyed.cursor(queue)
        if fair:
            order_state.now = t
            shares.at(t)
            return FairShareOrder(order_state, rules.horizon, rules.starve_after, shares)
        return queue.cursor()

    def pass_ends() -> list:
        """Every running job's end as the pass would expect it now (``core.estimated_end``: from
        its estimate, not from the projection's runtimes), for a reservation."""
        return [(estimated_end(est(h.job), h.job, h.att0, h.run_start, t), h.seq, h.job, h.placement)
                for h in holders.values()]

    looks = 0  # jobs looked at beyond fifo's rule (PASS_LOOKS), all moments together
    events = 0
    while want and events < MAX_EVENTS:
        events += 1
        started: list[str] = []
        stopped: list[Job] = back  # (those being stopped at first: queued again after the first walk)
        back = []
        waiting: list[tuple[Job, str]] = []
        handled: set[str] = set()
        if guaranteed is not None and rules.order != "queue" and looks < PASS_LOOKS:
            policy_sweep(handled, waiting)
        elif guaranteed is not None:
            # The guaranteed sweep (core.guaranteed_sweep): each workspace with room in its
            # guarantee offers its next job within it (_Guaranteed.next), taken by submission.
            passed: set[str] = set()
            offers: list[tuple] = []
            for ws in [w for w in guaranteed.by_ws if w in quotas.under]:
                offer(offers, ws, passed, waiting)
            while offers:
                _, _, ws, e = heapq.heappop(offers)
                job = e[1]
                handled.add(job.id)
                if not take_within(job):
                    note(job, WITHIN)  # the pass holds the rest of the workspace's sweep
                    continue
                queue.remove(job.id)
                if ws in quotas.under:
                    offer(offers, ws, passed, waiting)
        # The walk (core.admission_loop), from the head to the first job that does not fit;
        # under EASY backfilling ("reserve") that job is reserved GPUs, and the walk goes on.
        head = None
        capped: set[str] = set()  # workspaces whose cap holds back a job (and so the rest)
        order = make_order()
        excl = None  # under "reserve": the free GPUs the reserved head's do not include
        shadow = 0.0
        head_strict = False
        fail_fm = fail_excl = 1 << 30  # (the smallest one-node job that did not fit)
        examined = 0
        depth = min(rules.depth, PASS_LOOKS - looks)
        to_end = False  # the walk went past a reserved head to the end of the queue
        for job in order:
            if job.id in handled:
                continue
            v = NO_QUOTA if quotas is None else verdict(job)
            if v == BLOCKED:
                order.block(job.workspace)
                capped.add(job.workspace)
                continue
            if rule5_holds(job, v):
                continue
            if excl is not None and v != WITHIN:
                # A backfill candidate: it may not delay the reserved head (core.admission_loop).
                examined += 1
                if examined > depth or fm.total_free == 0 or (head_strict and excl.total_free == 0):
                    break  # (the rest wait, but for jobs within their guarantee: within_past)
                per = job.gpus_per_node
                one_node = (job.gpus <= fm.max_size) if per is None else per >= job.gpus
                if t + est(job) - job.attained / job.gpus <= shadow and not head_strict:
                    p, fail_fm = _find_unless_known_to_fail(fm, job, one_node, fail_fm)
                else:
                    p, fail_excl = _find_unless_known_to_fail(excl, job, one_node, fail_excl)
                if p is None:
                    note(job, v)
                    continue
                start(job, p)
                started.append(job.id)
                take_available(excl, p)
                continue
            p = fm.find(job)
            if p is not None:
                start(job, p)
                started.append(job.id)
                if excl is not None:
                    take_available(excl, p)
                continue
            note(job, v)
            if excl is not None:
                continue  # (within its guarantee, past the reserved head: it waits)
            head = job
            if rules.hol == "reserve" and fm.total_free > 0 and looks < PASS_LOOKS:
                r = reservation_at(fm, pass_ends(), job)
                if r is not None:
                    shadow = r[0]
                    head_strict = rules.strict and job.queued_since <= t - rules.starve_after
                    excl = copy_freemap(fm)
                    take_available(excl, r[1])
                    continue
            break
        else:
            to_end = excl is not None
        looks += examined
        for jid in started:
            queue.remove(jid)
        if keyed is not None:
            keyed.compact(queue)
        if head is not None and guaranteed is not None and fm.total_free > 0 and not to_end:
            # Past the head the walk starts only jobs within their guarantee, on free GPUs.
            within_past(head.id, handled, capped, waiting)
        for vj in stopped:
            enqueue(vj)
        if stopped:
            continue  # the next pass, at once: the stopped jobs are queued again
        if starts >= FIFO_MOMENT_STARTS:
            tail()
            break
        # The next moment: the next end (or ends, at one time).
        e = next_end()
        if e is None:
            break
        t = max(t, e[0])
        finish(e)
        while ends and ends[0][0] <= t:
            e = heapq.heappop(ends)
            if _holds(holders, e):
                finish(e)
    return out


def _holds(holders: dict[str, _Holder], end: tuple[float, int, str]) -> bool:
    """Whether ``end`` (``(time, seq, id)``) is still its job's: not stopped since."""
    h = holders.get(end[2])
    return h is not None and h.seq == end[1]


def _project_las(snap, free, qs, policy, limit, only, not_before=None,
                 sweeps: Sequence[HeldSweep] = ()) -> list[dict[str, tuple[float, str]]]:
    now = snap.now
    # the policy's own ranking of the queue, kept from pass to pass (LasPolicy._ranked)
    queue = [(r, j, since) for r, since, j in policy._ranked(snap.queue, now, keep=False)]
    if only is not None:
        want = set(only)
    else:
        want = {j.id for _, j, _ in queue[:limit]}
        room = limit - len(want)
        for sw in sweeps:  # (held sweep jobs too, within the limit)
            take = sw.held[:max(0, room)]
            want.update(j.id for j in take)
            room -= len(take)
    base = []
    stopping = []
    for a in snap.active:
        job = a.job
        if a.stopping:
            stopping.append(a)
        else:
            base.append((job, a.placement, a.started_at, job.attained / job.gpus + max(0.0, now - a.started_at)))
    patience = getattr(policy, "preempt_after", 0.0) or 0.0
    # The guaranteed sweep (_Guaranteed) on queues of up to GUARANTEED_SWEEP_QUEUE jobs: on
    # longer ones it places thousands more jobs before las's first ``limit`` (each
    # workspace's jobs within its guarantee first), and the projection runs on the loop
    # thread (docs/benchmarks.md, "The guaranteed sweep in the projection").
    sweep_limits = snap.limits if len(queue) <= GUARANTEED_SWEEP_QUEUE else None
    prepared = _Prepared(queue, patience, *_swap_wait(policy, patience), limits=sweep_limits)
    del queue
    # With ``only``, as many starts as ``limit`` at most: a job not started by then is past what
    # the queue shows anyway (explain's held leases; the replay's recorder asks for few jobs).
    starts = limit if only is not None and not_before else INF
    return [_las_run(snap, free, q, policy, prepared, set(want), base, stopping, not_before, starts, sweeps)
            for q in qs]


class _Prepared:
    """What every projection of one explain starts from, built once from the ranked queue
    (``(rank, job, since)`` entries) and copied for each (copies of lists, sets and dicts
    cost a fraction of building them job by job): the ids queued, the starvation limits
    of the jobs not yet promoted and their heap, the heap of the ends of ``preempt_after``
    and ``swap_after`` waits, and the per-size lists of :class:`_Walk`."""

    __slots__ = ("queued", "since_of", "sinces", "waits", "lists", "count", "guaranteed")

    def __init__(self, queue: Sequence[tuple], patience: float, swap_after: float = 0.0,
                 swapper: Callable[[Job], bool] | None = None, limits=None):
        self.queued = {job.id for _, job, _ in queue}
        self.since_of = {job.id: since for rank, job, since in queue if rank[0] >= 0}
        self.sinces = [(since, jid) for jid, since in self.since_of.items()]
        heapq.heapify(self.sinces)
        self.waits = [(job.queued_since + patience, job.id) for _, job, _ in queue] if patience else []
        if swapper is not None:
            self.waits += [(job.queued_since + swap_after, job.id) for _, job, _ in queue if swapper(job)]
        heapq.heapify(self.waits)
        self.lists: dict[int, list[tuple]] = {}
        for e in queue:  # already by rank
            self.lists.setdefault(e[1].gpus, []).append(e)
        self.count = len(queue)
        # The jobs of each workspace with a quota, per GPU count and preemptibility, each list
        # in the queue's order within a workspace (QueueView: priority, then submission; as
        # ``(key, entry)``): the guaranteed sweep's (_Guaranteed).
        self.guaranteed = _Guaranteed.lists(queue, limits) if limits else {}


def _las_run(snap, free, spec, policy, prepared: _Prepared, want, base, stopping,
             not_before: dict[str, float | str] | None = None, starts: float = INF,
             sweeps: Sequence[HeldSweep] = ()) -> dict[str, tuple[float, str]]:
    """One projection under ``las`` (see the module docstring): queued jobs
    walked in rank order at each event, promoted when they reach the
    starvation limit (a promoted job that cannot start holds back the rest,
    as the policy does), running jobs of a higher level preempted."""
    left = _left_fn(snap.estimates, spec)
    now = snap.now
    thr = tuple(policy.thresholds)
    # min_run, and after a restart min_rerun once the budget's first step is reached, as the
    # pass applies them (LasPolicy.protections)
    min_run, rerun = policy.protections(snap.preemption_counts)
    # The policy's other rules, where it has them (their defaults: off).
    patience = getattr(policy, "preempt_after", 0.0) or 0.0   # wait this long before preempting
    quantum = getattr(policy, "quantum", 0.0) or 0.0          # a restarted job keeps its GPUs a while
    drain = bool(getattr(policy, "drain", False))              # a spread-out gang moves jobs to fit
    # (the pass moves jobs for a gang only once it has waited preempt_after too)
    migrate_after = max(patience, getattr(policy, "migrate_after", 0.0) or 0.0)
    # Expected-remaining levels (LasPolicy.job_level), read without keeping new ones.
    expecting = bool(getattr(policy, "expecting", False))
    job_level = policy.job_level if expecting else None
    expect_min = getattr(policy, "expect_min_gpus", 1 << 30)
    gate_for = getattr(policy, "gate_for", None)  # expect_gate: which victims a job may stop
    swap_limit = getattr(policy, "swap_limit", None)  # swap_after: small victims only after a wait
    swap_after, swapper = _swap_wait(policy, patience)
    fm = copy_freemap(free)
    quotas = _Quotas.of(snap, (job for job, _, _, _ in base))
    # The preemption budget (budget.py), as the pass spends it: preemptions by choice only
    # while it lasts, and each job's first start in the projection adds to it (once the
    # first starts are past the young cluster's allowance, budget.MIN_STARTS).
    per_job = getattr(policy, "preemption_budget", None)
    credit = budget_credit(per_job, snap.preemption_counts)
    counted = snap.preemption_counts[0] if snap.preemption_counts is not None else 0
    first_starts: set[str] = set()
    stopped_ids: set[str] = set()  # jobs the projection stopped (their next start is a restart)
    holders: dict[str, _Holder] = {}
    events: list[tuple[float, int, str]] = []
    # Preemptible holders by the end of their protection (min_run), and those past it:
    # the possible victims, kept as the clock moves instead of looked for among every
    # holder at every event.
    protected: list[tuple[float, int, _Holder, float]] = []
    exposed: dict[str, _Holder] = {}
    seq = 0
    held_preemptible = 0  # GPUs the preemptible holders hold
    push = heapq.heappush
    pop = heapq.heappop

    def hold(job: Job, placement, run_start: float, att0: float, end: float) -> None:
        nonlocal seq, held_preemptible
        pre = job.preemptible
        seq += 1
        h = holders[job.id] = _Holder(job, placement, run_start, att0, end, pre, seq)
        push(events, (end, seq, job.id))
        if pre:
            held_preemptible += job.gpus
            # Moments its level changes, and the ends of its protection (before its end): a
            # victim from the first for the preemptions owed, from the second for the others.
            protect = max(min_run, quantum * att0 / job.gpus)
            h.protect = max(protect, rerun) if job.restarts or job.id in stopped_ids else protect
            push(protected, (run_start + protect, seq, h, protect))
            t1 = run_start + protect
            if now < t1 < end:
                seq += 1
                push(events, (t1, seq, job.id))
            if h.protect > protect:
                t1 = run_start + h.protect
                if now < t1 < end:
                    seq += 1
                    push(events, (t1, seq, job.id))
            for th in thr:
                if th > att0:
                    t1 = run_start + (th - att0) / job.gpus
                    if t1 < end:
                        seq += 1
                        push(events, (t1, seq, job.id))
            if expecting and job.gpus >= expect_min:
                # Its expectation is taken again at each doubling of its run time.
                r0 = att0 / job.gpus
                r = policy.next_expectation(r0)
                while run_start + r - r0 < end:
                    seq += 1
                    push(events, (run_start + r - r0, seq, job.id))
                    r = policy.next_expectation(r)

    # Jobs being preempted: their GPUs free at once (grace aside), and they are queued again
    # after the first walk (as at the pass after the one that stopped them).
    back = []
    for a in stopping:
        fm.give(a.placement)
        back.append(_requeued_entry(a.job, a.job.attained + a.job.gpus * max(0.0, now - a.started_at), now, policy))
        stopped_ids.add(a.job.id)
    for job, p, started, ran in base:
        hold(job, p, started, job.attained, now + left(job, ran))
    out: dict[str, tuple[float, str]] = {}
    t = now
    last_label = ""

    def level(h: _Holder, at: float) -> int:
        if expecting:
            return job_level(h.job, h.attained(at), False)
        return bisect_right(thr, h.attained(at))

    # The moments a queued job's rank or rights change, by the clock alone: its starvation
    # limit (``since``, for jobs not yet promoted) and the end of its ``preempt_after`` wait.
    # Heaps, so that an event costs what changes, not the queue's length; an entry is stale
    # once its job left the queue (``queued``) or, for ``since``, was requeued with another.
    # (Copies of the heaps built once per explain: a copy of a heap is a heap.)
    queued: set[str] = set(prepared.queued)
    since_of: dict[str, float] = dict(prepared.since_of)
    sinces: list[tuple[float, str]] = list(prepared.sinces)
    waits: list[tuple[float, str]] = list(prepared.waits)
    if not_before:  # jobs that may not start before these times (explain's held leases)
        waits += [(at, jid) for jid, at in not_before.items() if not isinstance(at, str) and at > t]
        heapq.heapify(waits)

    # The queue, by rank within each GPU count (see _Walk).
    walk = _Walk({g: list(lst) for g, lst in prepared.lists.items()}, prepared.count)
    parked = _Parked()
    guaranteed = _Guaranteed(prepared.guaranteed) if quotas is not None and prepared.guaranteed else None
    releases = _Releases(sweeps) if sweeps else None

    def join(entry: tuple) -> None:
        """A job (re)joins the queue now, as ``(rank, job, since)``: one the projection preempted,
        or a held sweep job released (:func:`released`)."""
        rank, job, since = entry
        walk.add(entry)
        if guaranteed is not None:
            guaranteed.add(entry)
        queued.add(job.id)
        since_of[job.id] = since
        push(sinces, (since, job.id))
        if patience and job.queued_since + patience > t:
            push(waits, (job.queued_since + patience, job.id))
        if swapper is not None and job.queued_since + swap_after > t and swapper(job):
            push(waits, (job.queued_since + swap_after, job.id))

    def released(job: Job) -> tuple:
        """A held sweep job released now, ranked as the pass ranks it and waiting from now
        (``enqueued_at``, as the store releases it)."""
        job = replace(job, enqueued_at=t)
        rank, since, _ = policy._entry(job, t, False)
        return (rank, job, since)

    if releases is not None:
        for job in releases.initial(sweeps):
            join(released(job))
    roomier: set[str] = set()  # workspaces whose jobs were preempted in this walk
    # At each moment: (GPUs, GPUs per node, level, swap limit, workspace) -> the lowest gate (LasPolicy.gate_for)
    # at which a queued job found no room by preemption since GPUs last changed hands (a job
    # with a gate as high or higher, fewer victims, finds none either: on a long queue under
    # quotas, where most victims are within their guarantee, thousands of jobs tried each
    # moment); and the victims' expected work at this moment, for the gate.
    fails: dict[tuple, float] = {}
    work: dict[str, float] = {}

    def run(job: Job, p, start: float) -> None:
        """``job`` starts at ``start`` on ``p`` (out of the queue already)."""
        nonlocal credit, starts
        fails.clear()
        fm.take(p)
        if quotas is not None:
            quotas.add(job, job.gpus)
        queued.discard(job.id)
        if per_job is not None and first_start(job) and job.id not in first_starts and job.id not in stopped_ids:
            first_starts.add(job.id)
            if counted + len(first_starts) > MIN_STARTS:
                credit += per_job
        hold(job, p, start, job.attained, start + left(job, job.attained / job.gpus))
        starts -= 1
        if job.id in want:
            out[job.id] = (start, last_label)
            want.discard(job.id)

    def held_back(e: tuple, passed: bool) -> bool:
        """Whether the guaranteed sweep passes over ``e``'s job: explain holds it (``not_before``),
        or it is a notebook lease that rule 5 leaves to the walk (the pass's test)."""
        job = e[1]
        if not_before and (b := not_before.get(job.id)) is not None and (
                b in queued if isinstance(b, str) else t < b):
            return True
        return job.kind == "lease" and open_ended(job) and (passed or blocked_ahead)

    def reclaim(job: Job) -> dict | None:
        """Room for ``job`` (within its guarantee) from other workspaces' borrowed GPUs."""
        stopped = len(requeued)
        p = _reclaim(fm, job, holders, quotas, lambda h: _requeue(fm, h, holders, requeued, t, policy))
        stopped_from(stopped)
        return p

    def stopped_from(k: int) -> None:
        """The jobs ``requeued[k:]``, just stopped (preempted or reclaimed), no longer hold GPUs."""
        nonlocal held_preemptible
        if k < len(requeued):
            fails.clear()
        for e in requeued[k:]:
            held_preemptible -= e[1].gpus  # (victims are preemptible)
            stopped_ids.add(e[1].id)  # restarted from now on (LasPolicy.protections; budget.first_start)
            if quotas is not None:
                quotas.add(e[1], -e[1].gpus)
                roomier.add(e[1].workspace)  # (back to the walk after it: not during)

    def offer_within(offers: list, ws: str) -> None:
        """``ws``'s next job within its guarantee (:meth:`_Guaranteed.next`), if any, onto
        ``offers`` by its place in the queue."""
        while True:
            e, _ = guaranteed.next(ws, quotas, queued, held_back)
            if e is None:
                return
            if _find(walk.lists.get(e[1].gpus, ()), e) is None and not parked.has(e):
                guaranteed.drop(e)  # (not its live entry: that one is in the lists too)
                continue
            heapq.heappush(offers, (_job_key(e[1]), ws, e))
            return

    kept: list[dict] = []  # free GPUs kept in this walk for spread-out gangs to drain (drain_plan)
    drains = 0
    max_moves = getattr(policy, "max_moves", 0)
    index_key: tuple = ()
    index: dict[str, list[_Holder]] = {}

    def node_index() -> dict[str, list[_Holder]]:
        """The holders on each node, made again when holders came or went."""
        nonlocal index_key, index
        key = (seq, len(holders))
        if key != index_key:
            index = {}
            for h in holders.values():
                for n in h.placement:
                    index.setdefault(n, []).append(h)
            index_key = key
        return index

    def movable(job: Job, owed: bool) -> Callable[[_Holder], bool]:
        """Which running jobs the pass may move for ``job``, a spread-out gang (its
        ``movable_ok``): smaller preemptible ones past their protection, not shielded by
        their workspace's guarantee."""
        prot = min_run if owed else rerun
        return lambda h: (h.job.preemptible and h.job.gpus < job.gpus
                          and at_least(t - h.run_start, prot if h.job.restarts or h.job.id in stopped_ids else min_run)
                          and not (quotas is not None and quotas.shields(h.job, job)))

    blocked_ahead = False
    count = 0
    while want and count < MAX_EVENTS and starts > 0:
        # Jobs reaching the starvation limit go first (level -1).
        due = None
        while sinces and sinces[0][0] <= t:
            since, jid = pop(sinces)
            if jid in queued and since_of.get(jid) == since:
                del since_of[jid]
                if due is None:
                    due = set()
                due.add(jid)
        if due:
            walk.promote(due)
            parked.promote(due)
        # Victims now: preemptible, past min_run, by level (highest first).
        while protected and at_least(t - protected[0][2].run_start, protected[0][3]):
            h = pop(protected)[2]
            if holders.get(h.job.id) is h:
                exposed[h.job.id] = h
        victims = []
        if exposed:
            for jid, h in list(exposed.items()):
                if holders.get(jid) is not h:
                    del exposed[jid]
            victims = [(level(h, t), h) for h in sorted(exposed.values(), key=lambda h: h.seq)]
        requeued = back
        back = []
        fails.clear()
        work.clear()
        if guaranteed is not None:
            # The pass's first sweep (core.guaranteed_sweep, see _Guaranteed).
            blocked_ahead = False
            by_ws = guaranteed.by_ws
            under = quotas.under
            # Each workspace with room in its guarantee offers its next job within it, and the
            # offers are taken in queue order, as the pass walks them (its sweep follows the
            # queue's cursor).  (The workspaces in by_ws's order, not the set's, which changes
            # with the process's string hashing: the projection must not.)
            offers: list[tuple] = []
            for ws in [w for w in by_ws if w in under]:
                offer_within(offers, ws)
            while offers:
                _, ws, e = heapq.heappop(offers)
                job = e[1]
                p = fm.find(job) if fm.total_free >= job.gpus else None
                if p is None:
                    p = reclaim(job)
                if p is None:
                    blocked_ahead = True
                    continue  # the pass holds the rest of the workspace's sweep
                if not walk.remove(e):
                    parked.remove(e)
                run(job, p, t)
                offer_within(offers, ws)
        preemptible_gpus = held_preemptible  # as the walk begins
        top = max((lv for lv, h in victims if h.job.id in holders), default=-2)
        walk.begin()
        rest = False  # past the jobs that may preempt or are starving: only those that fit matter
        while True:
            if not rest:
                g = walk.next_any()
                if g is None:
                    break
                entry = walk.head(g)
                lv = entry[0][0]
                if lv >= top and lv >= 0:
                    rest = True
            if rest:
                if fm.total_free == 0:
                    break
                g = walk.next_within(fm.total_free)
                if g is None:
                    break
                entry = walk.head(g)
                lv = entry[0][0]
            rank, job, _ = entry
            if fm.total_free == 0 and lv >= top:
                break
            if not_before and (b := not_before.get(job.id)) is not None and (
                    b in queued if isinstance(b, str) else t < b):
                walk.skip(g)  # held until then, or while that job waits (in this run: its own runtimes)
                continue
            if quotas is not None and quotas.over(job):
                walk.take(g)  # held for its workspace's quota: out of the walk until it has room
                parked.park(entry)
                continue
            p = fm.find(job)
            owed = budget_owed(job, lv)  # (reclaiming for a guarantee is not projected)
            if p is None and drain and drains < DRAIN_LOOKS and 1 < job.gpus <= fm.total_free and job.preemptible:
                # Enough GPUs are free, but spread: as the pass (LasPolicy._drain, the one rule
                # las.drain_plan), the few jobs in the way on the nodes it picks are moved (once
                # it has waited migrate_after, within the budget), or else those nodes' free
                # GPUs are kept for it (nothing walked after it takes them) while they drain.
                # (At most DRAIN_LOOKS such searches a projection; past them a gang waits until
                # it fits.)
                drains += 1
                where, moves = drain_plan(fm, job, node_index(), movable(job, owed), max_moves)
                if where:
                    if moves and t - job.queued_since >= migrate_after and (owed or len(moves) <= credit):
                        if not owed:
                            credit -= len(moves)
                        k = len(requeued)
                        for h in moves:
                            _requeue(fm, h, holders, requeued, t, policy)
                        stopped_from(k)
                        p = fm.find(job)
                    else:
                        if moves and job.queued_since + migrate_after > t:
                            push(waits, (job.queued_since + migrate_after, job.id))  # (then it may move them)
                        keep = {n: tuple(fm.free[fm.index[n]]) for n in where if fm.free[fm.index[n]]}
                        fm.take(keep)
                        kept.append(keep)
                    if p is None:
                        walk.skip(g)
                        continue
            if p is None and lv < top and (lv < 0 or t >= job.queued_since + patience) and (owed or credit >= 1):
                floor = gate_for(rank) if gate_for else 0.0
                small = swap_limit(job, lv, t - job.queued_since) if swap_limit else 0
                # A job like one that found no room by preemption since the GPUs last changed
                # hands, with no more victims open to it, finds none either (fails).
                fk = (job.gpus, job.gpus_per_node, lv, small, job.workspace if quotas is not None else None, owed)
                if (f := fails.get(fk)) is None or floor < f:
                    stopped = len(requeued)
                    p = _preempt(fm, job, lv, victims, holders, requeued, t, policy, floor, small, quotas, work,
                                 owed)
                    stopped_from(stopped)
                    if not owed:
                        credit -= len(requeued) - stopped
                    if p is not None:
                        top = max((v for v, h in victims if h.job.id in holders), default=-2)
                    elif len(requeued) == stopped:
                        fails[fk] = floor
            if p is None:
                walk.skip(g)
                if lv < 0 and fm.total_free + preemptible_gpus >= job.gpus:
                    break  # a starving job holds back the rest
                continue
            walk.take(g)
            run(job, p, t)
        for keep in kept:  # (kept for this walk only: the next pass decides again)
            fm.give(keep)
        kept.clear()
        was_parked = parked.count
        for ws in roomier:
            parked.release(ws, quotas, walk)
        roomier.clear()
        for entry in requeued:
            join(entry)
        if not want or not (walk.count or parked.count or (releases is not None and releases.count)):
            break
        if parked.count < was_parked:
            # Jobs held for their workspace's quota have room again: the next pass walks them,
            # and they may preempt then (after the preemptions of this walk), so walk again now.
            count += 1
            continue
        if requeued and fm.total_free:
            # A preemption freed more GPUs than its job needed: at the next pass the jobs
            # walked before it may take them, so walk again now.
            count += 1
            continue
        # Next moment something can change for a waiting job (with only jobs held for their
        # quota left, an end).
        low = walk.head(walk.first())[0][0] if walk.count else INF
        while sinces and (sinces[0][1] not in queued or since_of.get(sinces[0][1]) != sinces[0][0]):
            pop(sinces)
        nxt = sinces[0][0] if sinces else None
        while waits and (waits[0][0] <= t or waits[0][1] not in queued):
            pop(waits)
        if waits and (nxt is None or waits[0][0] < nxt):
            nxt = waits[0][0]
        while events:
            et, _, jid = events[0]
            h = holders.get(jid)
            if h is None:
                heapq.heappop(events)
                continue
            if et <= t and et < h.end:
                heapq.heappop(events)  # a level change already taken into account
                continue
            if et >= h.end or (h.preemptible and et - h.run_start >= min_run and level(h, et) > low):
                if nxt is None or et < nxt:
                    nxt = et
                break
            heapq.heappop(events)  # irrelevant to every waiting job
        if nxt is None:
            break
        t = max(t, nxt)
        count += 1
        # Release every job ending by then.
        while events and events[0][0] <= t:
            et, _, jid = heapq.heappop(events)
            h = holders.get(jid)
            if h is not None and h.end <= t:
                del holders[jid]
                if h.preemptible:
                    held_preemptible -= h.job.gpus
                fm.give(h.placement)
                if quotas is not None:
                    quotas.add(h.job, -h.job.gpus)
                    parked.release(h.job.workspace, quotas, walk)
                last_label = h.job.label
                if releases is not None and (nxt_job := releases.ended(jid)) is not None:
                    join(released(nxt_job))
    return out


def _find(lst: list[tuple], entry: tuple) -> int | None:
    """Where ``entry``'s job is in ``lst`` (entries by rank): at its rank, or promoted.  The
    same :class:`Job` only: a job stopped and queued again is another (its service, its
    restarts), and an entry of its earlier stay in the queue is stale."""
    job = entry[1]
    for rank in (entry[0], _promoted_rank(job)):
        i = bisect_left(lst, rank, key=_rank)
        if i < len(lst) and lst[i][1] is job:
            return i
    return None


def _rank(entry: tuple) -> tuple:
    """A ``(rank, job, since)`` entry's rank: what the walk's and the parked lists are kept by."""
    return entry[0]


def _promoted_rank(job: Job) -> tuple:
    """A job's rank once it reaches its starvation limit: level -1, by time queued (as
    ``LasPolicy.rank`` gives it)."""
    return (-1, job.queued_since, -job.priority, job.submitted_at, job.id)


class _Walk:
    """A projection's queue of ``(rank, job, since)`` entries, one list per GPU count, each
    by rank, and one walk over them at a time, in rank order.

    A job that needs more GPUs than are free, may not preempt and is not starving does
    nothing in a walk: it does not start, and stays queued.  Past the jobs that may preempt
    or are starving (ranks only grow along a walk), the walk therefore looks only at the
    lists of the GPU counts that still fit in the free GPUs (``next_within``), not at every
    job: on a long queue of big jobs ranked first (Kueue's mix: the 20-GPU jobs have the
    highest priority), an event costs the jobs it starts, not the queue's length.  The
    order of the jobs looked at, and what they do, is that of a walk over the whole queue."""

    __slots__ = ("lists", "sizes", "count", "at")

    def __init__(self, lists: dict[int, list[tuple]], count: int):
        self.lists = lists  # GPU count -> entries by rank (the walk's own: it changes them)
        self.sizes = sorted(self.lists)
        self.count = count
        self.at: dict[int, int] = {}

    def begin(self) -> None:
        self.at = dict.fromkeys(self.sizes, 0)

    def head(self, g: int) -> tuple:
        return self.lists[g][self.at[g]]

    def _next(self, sizes) -> int | None:
        best = None
        lists, at = self.lists, self.at
        for g in sizes:
            lst = lists[g]
            k = at[g]
            if k < len(lst) and (best is None or lst[k][0] < best[0]):
                best = (lst[k][0], g)
        return None if best is None else best[1]

    def next_any(self) -> int | None:
        """The GPU count of the next job of the walk."""
        return self._next(self.sizes)

    def next_within(self, free: int) -> int | None:
        """The GPU count of the next job of the walk that needs at most ``free`` GPUs."""
        return self._next([g for g in self.sizes if g <= free])

    def first(self) -> int | None:
        """The GPU count of the first job in rank order (outside a walk)."""
        self.begin()
        return self.next_any()

    def skip(self, g: int) -> None:
        self.at[g] += 1  # stays queued

    def take(self, g: int) -> None:
        del self.lists[g][self.at[g]]  # started
        self.count -= 1

    def remove(self, entry: tuple) -> bool:
        """Take ``entry``'s job out (outside a walk: started by the guaranteed sweep)."""
        lst = self.lists.get(entry[1].gpus)
        i = None if lst is None else _find(lst, entry)
        if i is None:
            return False
        del lst[i]
        self.count -= 1
        return True

    def add(self, entry: tuple) -> None:
        g = entry[1].gpus
        lst = self.lists.get(g)
        if lst is None:
            lst = self.lists[g] = []
            self.sizes = sorted(self.lists)
        insort(lst, entry, key=_rank)
        self.count += 1

    def promote(self, ids: set[str]) -> None:
        """The jobs ``ids`` reached their starvation limit: level -1, by time queued."""
        for lst in self.lists.values():
            changed = False
            for i, (rank, job, since) in enumerate(lst):
                if job.id in ids:
                    lst[i] = (_promoted_rank(job), job, since)
                    changed = True
            if changed:
                lst.sort(key=_rank)


class _Guaranteed:
    """A projection's view of ``core.guaranteed_sweep``: before its walk, a pass admits the
    jobs that fit in their workspace's guarantee, in the queue's order within each workspace,
    and reclaims for them the GPUs of other workspaces' jobs that hold more than their own
    guarantee (at once: no ``min_run``, no wait; newest first, ``core.reclaim_order``). Until
    2026-12-06 the projection walked such a job at its ``las`` rank with the rest, so a job
    that would reclaim was shown waiting for borrowed GPUs to free up, and one given free
    GPUs first by the pass was shown behind jobs of a higher rank.

    The queued jobs of each workspace with a quota are kept per GPU count and preemptibility
    (:class:`_Prepared`), so that finding a workspace's next job within its guarantee costs
    the lists' heads, not its queue: the first job in its order that fits in the room its
    guarantee leaves, unless a job its quota blocks comes first (the pass stops the
    workspace's sweep there). Jobs that would borrow are passed over, as the pass does."""

    __slots__ = ("by_ws",)

    def __init__(self, by_ws: dict[str, dict[tuple[int, bool], list[tuple]]]):
        self.by_ws = {ws: {k: list(lst) for k, lst in kinds.items()} for ws, kinds in by_ws.items()}

    @staticmethod
    def lists(entries: Iterable[tuple], limits) -> dict[str, dict[tuple[int, bool], list[tuple]]]:
        """The entries (``(rank, job, since)``) of the workspaces with a quota, per GPU count and
        preemptibility, each list in the queue's order within a workspace (QueueView: priority,
        then submission; as ``(key, entry)``)."""
        by_ws: dict[str, dict[tuple[int, bool], list[tuple]]] = {}
        for e in entries:
            job = e[1]
            lim = limits.get(job.workspace)
            if lim is not None and lim.quota is not None:
                by_ws.setdefault(job.workspace, {}).setdefault((job.gpus, job.preemptible), []).append((_job_key(job), e))
        for kinds in by_ws.values():
            for lst in kinds.values():
                lst.sort()  # (by the key: it ends with the job's id)
        return by_ws

    def add(self, entry: tuple) -> None:
        job = entry[1]
        kinds = self.by_ws.get(job.workspace)
        if kinds is not None:  # (a workspace with a quota)
            # (by the key alone: a job stopped twice has two entries with one key)
            insort(kinds.setdefault((job.gpus, job.preemptible), []), (_job_key(job), entry), key=_first)

    def next(self, ws: str, quotas: _Quotas, queued: set[str], skip: Callable[[tuple, bool], bool]
             ) -> tuple[tuple | None, bool]:
        """``ws``'s next job within its guarantee (None: none before a blocked one), and whether
        a job of ``ws`` that would borrow comes before it (rule 5's "passed")."""
        kinds = self.by_ws[ws]
        used = quotas.use.get(ws, 0)
        room = quotas.guarantee(ws) - used
        if room <= 0:
            return None, False
        best = stop = borrow = None
        for (g, pre), lst in kinds.items():
            while lst and lst[0][1][1].id not in queued:
                del lst[0]  # started or gone: dropped as it reaches the head
            if not lst:
                continue
            key = lst[0][0]
            if g <= room:
                if best is None or key < best[0]:
                    best = (key, (g, pre))
                continue
            cap = quotas.cap_of(ws, pre)
            if cap is not None and used + g > cap:
                if stop is None or key < stop:
                    stop = key
            elif borrow is None or key < borrow:
                borrow = key
        if best is None or (stop is not None and stop < best[0]):
            return None, False
        lst = kinds[best[1]]
        passed = borrow is not None and borrow < best[0]
        for k in range(min(16, len(lst))):  # (held leases of rule 5 are passed over; a few at most)
            e = lst[k][1]
            if e[1].id not in queued:
                continue
            if skip(e, passed):
                passed = True
                continue
            return e, passed
        return None, passed

    def fitting(self, ws: str, quotas: _Quotas, queue: QueueView, passed: set[str], skip: set[tuple[int, bool]],
                free: int) -> tuple | None:
        """``admission_loop``'s walk past its blocked head: ``ws``'s first job in its order
        that is within its guarantee and may fit ``free`` GPUs (not of a size and preemptibility
        in ``skip``: those did not fit at this moment), as ``(key, entry, kind)``; None where a
        job that is not within comes first (the walk holds the rest of the workspace there).
        Jobs within it that cannot fit are passed over, as the walk passes them, and so are the
        jobs ``passed`` (the head, and those the guaranteed sweep tried)."""
        kinds = self.by_ws[ws]
        room = quotas.guarantee(ws) - quotas.use.get(ws, 0)
        if room <= 0:
            return None
        best = bound = None
        for kind, lst in kinds.items():
            ke = _live_first(lst, queue, passed)
            if ke is None:
                continue
            g = kind[0]
            if g > room:
                if bound is None or ke[0] < bound:
                    bound = ke[0]
            elif g <= free and kind not in skip and (best is None or ke[0] < best[0]):
                best = (ke[0], ke[1], kind)
        if best is None or (bound is not None and bound < best[0]):
            return None
        return best

    def drop(self, entry: tuple) -> None:
        """An entry no longer the job's own (it was queued again at another rank)."""
        job = entry[1]
        lst = self.by_ws[job.workspace][(job.gpus, job.preemptible)]
        lst.remove((_job_key(job), entry))


def _live_first(lst: list[tuple], queue: QueueView, passed: set[str]) -> tuple | None:
    """The first ``(key, entry)`` of ``lst`` whose job is queued in ``queue`` as that very job,
    past the jobs ``passed``; entries of jobs gone or queued again since are dropped."""
    i = 0
    while i < len(lst):
        job = lst[i][1][1]
        if queue.get(job.id) is not job:
            del lst[i]
            continue
        if job.id in passed:
            i += 1
            continue
        return lst[i]
    return None


class _Parked:
    """A projection's jobs held for their workspace's quota (:class:`_Quotas`), out of its
    :class:`_Walk` until their workspace has room again, so that a walk does not pass over
    them at every event (on Kueue's mix, 30 workspaces at their caps and 6,000 queued, an
    explain then took 2.5 times as long)."""

    __slots__ = ("by_ws", "count")

    def __init__(self) -> None:
        self.by_ws: dict[str, list[tuple]] = {}
        self.count = 0

    def park(self, entry: tuple) -> None:
        insort(self.by_ws.setdefault(entry[1].workspace, []), entry, key=_rank)
        self.count += 1

    def release(self, ws: str, quotas: _Quotas, walk: _Walk) -> None:
        """``ws`` holds fewer GPUs: back to the walk, in rank order, the jobs that fit its
        cap together."""
        lst = self.by_ws.get(ws)
        if not lst:
            return
        used = quotas.use.get(ws, 0)
        keep = []
        for i, e in enumerate(lst):
            job = e[1]
            cap = quotas.cap(job)
            if cap is None or used + job.gpus <= cap:
                walk.add(e)
                used += job.gpus
                self.count -= 1
            else:
                keep.append(e)
                if job.preemptible and cap is not None and used >= cap:
                    keep.extend(lst[i + 1:])  # no room left for any
                    break
        self.by_ws[ws] = keep

    def has(self, entry: tuple) -> bool:
        lst = self.by_ws.get(entry[1].workspace)
        return bool(lst) and _find(lst, entry) is not None

    def remove(self, entry: tuple) -> bool:
        lst = self.by_ws.get(entry[1].workspace)
        i = None if not lst else _find(lst, entry)
        if i is None:
            return False
        del lst[i]
        self.count -= 1
        return True

    def promote(self, ids: set[str]) -> None:
        """As :meth:`_Walk.promote`, for the jobs held here."""
        for lst in self.by_ws.values():
            if any(e[1].id in ids for e in lst):
                lst[:] = [(_promoted_rank(j), j, since) if j.id in ids else (rank, j, since)
                          for rank, j, since in lst]
                lst.sort(key=_rank)


def at_least(a: float, b: float) -> bool:
    return a >= b - 1e-9


def _swap_wait(policy, patience: float) -> tuple[float, Callable[[Job], bool] | None]:
    """The policy's ``swap_after`` and which queued jobs it applies to (those that may
    not stop small jobs before it, ``LasPolicy.swap_limit``), or (0, None) when it has
    none or it ends no later than the ``preempt_after`` wait (``patience``)."""
    swap_limit = getattr(policy, "swap_limit", None)
    after = getattr(policy, "swap_after", 0.0) or 0.0
    if swap_limit is None or after <= patience:
        return 0.0, None
    return after, lambda job: swap_limit(job, 0, 0.0) > 0


def _preempt(fm: FreeMap, job: Job, lv: int, victims, holders, requeued, t: float, policy,
             floor: float, small: int, quotas: "_Quotas | None", work: dict[str, float],
             owed: bool = True) -> dict | None:
    """Room for ``job`` by preempting running jobs of a level above ``lv``
    (as ``las`` would; with ``floor``, only those expected still to do more work,
    ``LasPolicy.gate_for``; with ``small``, none of that many GPUs or fewer,
    ``LasPolicy.swap_limit``; with ``quotas``, none of another workspace within its
    guarantee); on the nodes chosen, as many victims as it needs are requeued.
    ``work``: the victims' expected work at ``t``, kept as it is asked for.  Not ``owed``
    (budget.owed): a restarted victim only past its longer protection (the budget's first step,
    ``_Holder.protect``)."""
    def expected(h: _Holder) -> float:
        w = work.get(h.job.id)
        if w is None:
            w = work[h.job.id] = policy.expected_work(h.job, h.attained(t), False)
        return w

    mine = [(v, h) for v, h in victims if v > lv and h.job.id in holders and h.job.gpus > small and (
        owed or at_least(t - h.run_start, h.protect)) and (
        quotas is None or not quotas.shields(h.job, job)) and (floor <= 0.0 or expected(h) > floor)]
    if not mine or fm.total_free + sum(h.job.gpus for _, h in mine) < job.gpus:
        return None
    # As the pass picks them (core.pick_victims, PassState.find_victims's rule): node by node,
    # the victims in its order (the highest level first, then the last started), only as many
    # as the job needs there, and under quotas only as many of another workspace's as leave it
    # its guarantee (the pass's guard); the node that costs the fewest GPUs.
    ordered = [h for _, h in sorted(mine, key=lambda e: (-e[0], -e[1].run_start, e[1].job.id))]
    chosen = _victims(fm, job, holders, ordered,
                      None if quotas is None else (lambda v, lost: not quotas.shields(v, job, lost)))
    if chosen is None:
        return None
    for h in chosen:
        _requeue(fm, h, holders, requeued, t, policy)
    return fm.find(job)


def _victims(fm: FreeMap, job: Job, holders: dict[str, _Holder], ordered: list[_Holder],
             allowed: Callable[[Job, int], bool] | None) -> list[_Holder] | None:
    """The holders to stop so that ``job`` fits, as the pass picks its victims
    (``core.pick_victims``, the one rule of ``PassState.find_victims``): the candidates
    ``ordered`` as the pass orders them, node by node over the nodes that hold jobs (those the
    pass looks at), each only where ``allowed(victim, GPUs already taken from its workspace)``,
    where given (the pass's ``_still_borrowing`` or ``_keeps_guarantee``); None when no node
    will do."""
    on: dict[str, list[_Holder]] = {}
    for h in ordered:
        for n in h.placement:
            on.setdefault(n, []).append(h)
    busy = {n for h in holders.values() for n in h.placement}
    found = pick_victims(fm, job, [n for n in fm.names if n in busy], lambda n: on.get(n, ()),
                         None if allowed is None else _taking(allowed), VICTIM_WINDOW)
    return None if found is None else found[1]


def _taking(allowed: Callable[[Job, int], bool]) -> Callable[[Job, dict[str, int]], bool]:
    """``pick_victims``' ``keep`` from ``allowed``: a victim it allows adds its GPUs to what the
    search takes from its workspace (``lost``)."""
    def keep(v: Job, lost: dict[str, int]) -> bool:
        w = v.workspace
        if not allowed(v, lost.get(w, 0)):
            return False
        lost[w] = lost.get(w, 0) + v.gpus
        return True
    return keep


def _first(e: tuple):
    return e[0]


def _requeue(fm: FreeMap, h: _Holder, holders, requeued, t: float, policy) -> None:
    """A running job stopped for another in the projection: its GPUs free, and it queued again
    (``requeued``, joined after the walk: :func:`_requeued_entry`)."""
    fm.give(h.placement)
    del holders[h.job.id]
    requeued.append(_requeued_entry(h.job, h.attained(t), t, policy))


def _queued_again(job: Job, att: float, t: float) -> Job:
    """``job``, stopped at ``t`` with ``att`` GPU-seconds attained, as the store queues it again:
    its service kept, one restart more, waiting from ``t`` (its next run does only the work
    left)."""
    return replace(job, attained=att, enqueued_at=t, restarts=job.restarts + 1)


def _requeued_entry(job: Job, att: float, t: float, policy) -> tuple:
    """``job``, stopped at ``t`` with ``att`` GPU-seconds attained, queued again
    (:func:`_queued_again`), as a walk's entry ``(rank, job, since)``: the rank and starvation
    limit its service gives."""
    vj = _queued_again(job, att, t)
    since = t + max(getattr(policy, "starve_after", INF), getattr(policy, "starve_factor", 1.0) * att / vj.gpus)
    return (policy.queued_rank(vj, att, False), vj, since)


def _reclaim(fm: FreeMap, job: Job, holders: dict[str, _Holder], quotas: _Quotas,
             requeue: Callable[[_Holder], None]) -> dict | None:
    """Room for ``job`` (within its guarantee) by reclaiming the GPUs of ``holders`` of other
    workspaces above their guarantee, as the pass picks them (``core.pick_victims``, the one
    rule of ``PassState.find_victims``): node by node, each node's candidates in
    ``core.reclaim_order`` (the lowest priority, then the newest first), each only while its
    workspace is still above its guarantee without those already taken
    (``PassState._still_borrowing``), on the node that costs the fewest GPUs.  The victims are
    stopped (``requeue``, which gives back their GPUs) and ``job`` placed where it then fits
    (as the pass places it at its next pass)."""
    ws = job.workspace
    lendable = sum(u for w, u in quotas.use.items() if w != ws and u > quotas.guarantee(w))
    if fm.total_free + lendable < job.gpus:
        return None
    cands = [h for h in holders.values()
             if h.preemptible and h.job.workspace != ws and quotas.borrowing(h.job.workspace)]
    if not cands or fm.total_free + sum(h.job.gpus for h in cands) < job.gpus:
        return None
    cands.sort(key=lambda h: (h.job.priority, -h.run_start, h.job.id))
    chosen = _victims(fm, job, holders, cands, lambda v, lost: quotas.borrowing(v.workspace, lost))
    if chosen is None:
        return None
    for h in chosen:
        requeue(h)
    return fm.find(job)


def summarize(runs: Sequence[dict[str, tuple[float, str]]], low: dict | None = None,
              high: dict | None = None) -> dict[str, tuple[float, str, float, float]]:
    """job id -> (estimate, what makes room, earliest, latest): the median
    of the sampled projections ``runs`` (a run that found no start counts as
    never; no estimate when most found none), and the range from the
    projections with short (``low``) and long (``high``) runtimes, widened to
    cover every sampled start."""
    n = len(runs)
    out = {}
    ids = set().union(*runs) if runs else set()
    inf = float("inf")
    for jid in ids:
        got = sorted(((r[jid] if jid in r else (inf, "")) for r in runs), key=lambda e: e[0])
        mid = got[(n - 1) // 2]
        if mid[0] == inf:
            continue
        finite = [g[0] for g in got if g[0] != inf]
        lo = min(finite)
        hi = max(finite)
        if low and jid in low:
            lo = min(lo, low[jid][0])
        if high and jid in high:
            hi = max(hi, high[jid][0])
        out[jid] = (mid[0], mid[1], lo, hi)
    return out


def estimate_starts(snap: Snapshot, free: FreeMap, policy=None, limit: int = DEFAULT_LIMIT,
                    only: Iterable[str] | None = None, not_before: dict[str, float | str] | None = None,
                    sweeps: Sequence[HeldSweep] = ()) -> dict[str, tuple[float, str, float, float]]:
    """job id -> (estimated start, what makes room, earliest, latest): what
    the queue shows (see the module docstring)."""
    runs = project_many(snap, free, (*RANGE_QUANTILES, *range(SAMPLES)), policy, limit, only, not_before, sweeps)
    return summarize(runs[2:], runs[0], runs[1])


def _estimates(snap: Snapshot, fm: FreeMap, policy, limit: int, ranges: bool,
               only: Iterable[str] | None = None, not_before: dict[str, float | str] | None = None,
               sweeps: Sequence[HeldSweep] = ()) -> dict[str, tuple[float, str, float, float]]:
    if ranges:
        return estimate_starts(snap, fm, policy, limit, only, not_before, sweeps)
    return {jid: (t, label, t, t)
            for jid, (t, label) in project(snap, fm, 0.5, policy, limit, only, not_before, sweeps).items()}


def _when(start: float, label: str, now: float) -> str:
    """The reason's part that says when a job is projected to start."""
    if start <= now:
        return "can start at the next pass"
    return f"estimated start {clock(start)}" + (f" when {label} ends" if label else "")


def explain(snap: Snapshot, limit: int = DEFAULT_LIMIT, topology_keys=DEFAULT_TOPOLOGY_KEYS,
            policy=None, ranges: bool = True, sweeps: Sequence[HeldSweep] = ()) -> list[QueueInsight]:
    """Every queued job's place, estimated start (and range) and reason, in queue order; then
    the held jobs of ``sweeps`` (:class:`HeldSweep`), each at position 0 with the start its
    release projects (its reason says only that: the caller says why it is held)."""
    state = PassState(snap, topology_keys)
    fm = state.free
    # A notebook lease never takes GPUs a training queued ahead of it waits for (head-of-line
    # rule 5, core.lease_protects: the pass's own rule, with the same guarantee exception and
    # the same depth): it is left out of the projection, and starts after that training at
    # the soonest.  "Ahead" as the pass walks: submitted before the lease (the queue's order)
    # and, where the policy ranks the queue (``rank``: las), ranked before it; a training
    # requeued at a higher service level than the lease's is walked after it.
    blockers: dict[str, Job] = {}
    ahead: list[tuple[Job, str]] = []
    depth = state.lease_guard_depth
    rank_of = getattr(policy, "rank", None)
    ranks: dict[str, tuple] = {}

    def rank(j: Job) -> tuple:
        r = ranks.get(j.id)
        if r is None:
            r = ranks[j.id] = rank_of(j, snap.now)
        return r

    def verdict_of(j: Job) -> str:
        return quota_verdict(snap.limits.get(j.workspace), state.in_use.get(j.workspace, 0), j)

    # A one-GPU training waiting out ``swap_after`` holds no lease back (the pass's rule too),
    # and one still in its first ``preempt_after`` only until then (LasPolicy.swap_wait_starts):
    # a lease held back by such trainings alone may start from then on as any job, so it is
    # projected as one too (``freed``: lease id -> when the last of them lets it go).
    swap_from = getattr(policy, "swap_wait_starts", None)
    let_go: dict[str, float | None] = {}
    freed: dict[str, float] = {}
    for j in snap.queue:
        if not open_ended(j):
            if len(ahead) < state.lease_note_depth:  # as many as the pass notes
                v = verdict_of(j)
                if v == BLOCKED:
                    continue  # it waits for its quota, not for GPUs: the pass does not note it
                at = None if v == WITHIN or swap_from is None else swap_from(j, snap.now)
                if at is None or at > snap.now:
                    ahead.append((j, v))
                    let_go[j.id] = at
        elif ahead:
            lease_verdict = verdict_of(j)
            # One held for its quota now waits for that first; once its workspace has room it
            # is within its guarantee (leases never borrow), and rule 5 then holds it behind
            # the trainings it protects as such.  (Left out of that, the projection started it
            # as soon as its workspace had room, before the older training of its workspace
            # that the pass then starts first: on 4 CPU slots the notebook was shown at 16:19
            # and that 4-slot training at 17:33, "when notebook lease nb ends".)
            quota_held = lease_verdict == BLOCKED
            walked = ahead if rank_of is None else [(a, v) for a, v in ahead if rank(a) < rank(j)]
            protect = lease_protects(j, WITHIN if quota_held else lease_verdict, walked)[:depth]
            if (protect and not quota_held and fm.find(j) is not None
                    and state.beside_reservations(j, protect)[0] is not None):
                protect = []  # it fits now beside their reservations: the pass starts it (lease_room)
            if protect:
                blockers[j.id] = protect[0]
                ats = [let_go[p.id] for p in protect]
                if None not in ats:
                    freed[j.id] = max(ats)
    projected = (replace(snap, queue=QueueView.build(j for j in snap.queue if j.id not in blockers))
                 if blockers else snap)
    estimates = _estimates(projected, fm, policy, limit, ranges, sweeps=sweeps)
    # Projected with the held leases in the queue as any job; only their own estimates are taken
    # from it: a held lease starts no earlier than there (the GPUs the jobs ahead of it take
    # first, its quota), nor, unless let go earlier (``freed``), than the training it waits for
    # starts in the same run.  (Not than that training's median start: in a run where the
    # running jobs end later, the lease then took a GPU the training still waited for, and its
    # estimate came out at the training's start instead of after it.)
    not_before: dict[str, float | str] = {}
    for jid, b in blockers.items():
        if jid in freed or b.id in estimates:  # (behind a training with no estimate: none either)
            not_before[jid] = freed[jid] if jid in freed else b.id
    early = (_estimates(snap, fm, policy, limit, ranges, only=not_before, not_before=not_before, sweeps=sweeps)
             if not_before else {})
    ws_pos: dict[str, int] = {}
    in_use = state.in_use  # GPUs each workspace holds now (the reason says what is true now)
    # The preemption budget (budget.py) spent: the pass stops no job for one of a lower level
    # now; the reason says so for the jobs it holds to the budget (budget.owed: not the others).
    spent = rank_of is not None and budget_credit(getattr(policy, "preemption_budget", None),
                                                  snap.preemption_counts) < 1
    # Its first step: running jobs restarted after a preemption, past min_run, still kept from
    # the jobs held to the budget; the reason says so while there are any.
    step = None
    if rank_of is not None and not spent and hasattr(policy, "protections"):
        min_run, rerun = policy.protections(snap.preemption_counts)
        if rerun > min_run and any(a.job.restarts and a.job.preemptible and not a.stopping
                                   and min_run <= snap.now - a.started_at < rerun for a in snap.active):
            step = first_step_reason(rerun, min_run)
    out: list[QueueInsight] = []
    for pos, job in enumerate(snap.queue, start=1):
        ws = job.workspace
        ws_pos[ws] = ws_pos.get(ws, 0) + 1
        parts = [describe_need(job, fm.max_size)]
        lim = snap.limits_for(ws)
        if lim.quota is not None:
            used = in_use.get(ws, 0)
            verdict = quota_verdict(lim, used, job)
            if verdict == BORROW:
                parts.append(f"workspace quota {used}/{lim.quota} in use, may borrow idle GPUs")
            elif verdict == BLOCKED:
                limit = lim.borrowing_limit if lim.allow_borrowing and job.preemptible else None
                parts.append(f"workspace quota {used}/{lim.quota} in use" + (
                    f", borrowing limit of {limit} GPUs reached" if limit is not None else ""))
        got = estimates.get(job.id)
        start = rng = None
        blocker = blockers.get(job.id)
        if blocker is not None:
            theirs = estimates.get(blocker.id)
            own = early.get(job.id)
            at = freed.get(job.id)
            ahead = f"may not delay {blocker.label}, ahead of it in the queue"
            if own is not None:
                # its own projection, held until the training starts (or lets it go, ``at``)
                t, label, lo, hi = own
                start, rng = t, ((lo, hi) if ranges else None)
                until = f", until {clock(at)}" if at is not None and (theirs is None or t < theirs[0]) else ""
                parts.append(f"{ahead}{until}; " + _when(t, label, snap.now))
            else:
                start = theirs[0] if theirs is not None else None
                rng = (theirs[2], theirs[3]) if theirs is not None and ranges else None
                parts.append(ahead + (f"; starts after {clock(start)} at the soonest" if start is not None else ""))
        elif got is not None:
            start, label, lo, hi = got
            rng = (lo, hi) if ranges else None
            parts.append(_when(start, label, snap.now))
        else:
            parts.append("no estimate: not enough schedulable GPUs")
            if pos > 1:
                parts.append(f"{pos - 1} job(s) ahead")
        if (spent or step) and (start is None or start > snap.now) and not budget_owed(
                job, rank(job)[0], quota_verdict(lim, in_use.get(ws, 0), job)):
            parts.append(BUDGET_SPENT if spent else step)
        out.append(QueueInsight(job.id, pos, ws_pos[ws], start, "; ".join(parts), rng))
    for sw in sweeps:
        for job in sw.held:
            got = estimates.get(job.id)
            if got is not None:
                start, label, lo, hi = got
                out.append(QueueInsight(job.id, 0, 0, start, _when(start, label, snap.now),
                                        (lo, hi) if ranges else None))
    return out

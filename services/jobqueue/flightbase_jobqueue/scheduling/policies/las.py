"""``las``: preemptive least-attained-service, after Tiresias (NSDI'19).

Jobs are ranked by the GPU-seconds they have received so far (their
*attained service*), discretised into levels by ``thresholds`` (Tiresias's
2D-LAS with a few queues; by default 16, 256 and 1,024 GPU-hours): a new
job starts in level 0 and sinks one level each time its service crosses a
threshold.  A job of 2 GPUs or more is ranked at least at the level of the
work its runtime history expects it still to do (``expect_scale`` x GPUs x
the median remaining time of its workspace's completed jobs of its size that
ran longer than it has: an expected-remaining level, taken again each time
its run time doubles; with no history, plain LAS).  Within a level, the
work the history expects a job still to do (GPUs x that median remaining
time, every size; ``expect_order``) least first, then first come first
served (by submission, then priority); a job preempts only a job expected
to do more than twice its own work (``expect_gate``).  The scheduler does not need durations: short jobs finish while
still in a high level, long jobs sink and yield to newcomers.  On the Philly
trace this comes within 5% of a preemptive shortest-remaining-time scheduler
that knows every duration and pools all GPUs (docs/benchmarks.md,
"Scheduler").

One pass:

- queued jobs are walked in rank order; each starts if it fits;
- a multi-GPU job that does not fit on any node although enough GPUs are
  free in all (they are spread over nodes: a pooled cluster would start it)
  gets the node(s) with the fewest jobs in its way among the emptiest
  (``_drain``).  When at most ``max_moves`` smaller preemptible jobs, each
  past ``min_run``, are in the way, they are moved: stopped and requeued,
  they restart at once on the GPUs free elsewhere.  Otherwise the node's
  free GPUs are kept for the job (nothing ranked after it starts there) so
  that it drains as its jobs end.  Moves count as preemptions;
- otherwise a job that has waited ``preempt_after`` seconds may preempt
  running jobs of a strictly lower level (never within its own level, which
  avoids thrashing; never a non-preemptible job; never a job that started
  less than ``min_run`` seconds ago, which bounds how often a job is
  stopped; never another workspace's job running within its guaranteed
  quota).  The short wait lets a job take GPUs that free up as jobs end (on
  the Philly trace a job ends about every minute) instead of stopping one.
  A one-GPU job waits longer, ``swap_after``, before it stops a small job
  (of at most ``swap_max_gpus`` GPUs; a bigger one after ``preempt_after``):
  that stop is a swap, the stopped job restarting on the next GPU to free
  up, which costs a restart and gains the pair little.
  A job that fits nowhere does not block smaller jobs behind it;
- starvation: a job queued for ``starve_after`` seconds (and at least
  ``starve_factor`` times what it has run so far) is promoted above level 0
  until it runs again; a promoted job that can start neither on free GPUs
  nor by preemption (its victims are younger than ``min_run``) holds back
  every job ranked after it, so that a gang job is not starved by a stream
  of small ones taking each GPU as it frees up (unless GPUs held by
  non-preemptible jobs mean it could not fit anyway);
- quotas: as in every policy (``core.py``), jobs within their workspace's
  guarantee go first and may reclaim borrowed GPUs;
- notebook leases: as in every policy (``core.py``, head-of-line rule 5), a
  lease does not take GPUs that a job ranked ahead of it, waiting for GPUs,
  needs (its reservation, with leases never ending), and does not preempt
  for its GPU while such a job waits.  A one-GPU training waiting out
  ``swap_after`` is not such a job (it spares small victims by choice, and
  takes the next GPU to free up before the lease): the lease may stop one.
  Non-preemptible jobs are never moved;
- ``wake_at`` is the next time a running job crosses a threshold, a queued
  job reaches its starvation limit or the end of its ``preempt_after``
  wait, or a protected victim passes ``min_run``, so the coordinator
  re-runs the pass then.  Not when a gate (``expect_gate``) would open: a
  wake-up for that, tried on nine windows, did no better and could exceed
  the preemption budget (docs/benchmarks.md, "No wake-up when a gate opens").

The defaults were chosen on the October 2017 slice of the Philly trace at
64 x 8 GPUs with a 60 s restart cost and checked on other two-week windows
of the same trace (docs/benchmarks.md).
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_left, bisect_right, insort
from dataclasses import dataclass, field
from typing import Callable, Container, Mapping, Sequence, TypeVar

from ..core import (BLOCKED, BORROW, NO_QUOTA, WITHIN, PassState, ShortageAt, _blocked_reason, _shortage_reason,
                    blocked_args, quota_cap, decisions, describe_need, guaranteed_sweep, open_ended)
from ..budget import allowance as budget_allowance, credit as budget_credit, first_step_reason, owed as budget_owed
from ..placement import FreeMap
from ..queueview import QueueView
from ..types import ActiveJob, Decisions, Job, Snapshot
from .base import Policy

V = TypeVar("V")


_SAME_INSTANT = 1e-6  # seconds: a job that started less than this ago started "now"
_EXPECT_FIRST = 600.0  # seconds: expected-remaining levels are taken at 0, 10, 20, 40 min ... of run time
_ORDER_REFRESH = 3600.0  # seconds: the within-level order's expectations are taken again this often


def _stretch(ran: float) -> int:
    """Which stretch of run time ``ran`` (seconds) is in: 0 under 10 min, then one per doubling."""
    return 0 if ran < _EXPECT_FIRST else 1 + int(math.log2(ran / _EXPECT_FIRST))


@dataclass(frozen=True)
class LasPolicy(Policy):
    thresholds: tuple[float, ...] = (3600.0 * 16, 3600.0 * 256, 3600.0 * 1024)
    starve_after: float = 6 * 3600.0
    # A job is promoted after waiting starve_after and at least this many times the time it has
    # run. 1.0 until 2026-12-04: long gang jobs then took turns through the promotion, and 3 of
    # the trace's 84 two-week windows went over 0.25 preemptions per job; with 2.0 none does, at
    # restart costs of 55, 60 and 65 s, and the average JCT is unchanged (docs/benchmarks.md,
    # "Every window").
    starve_factor: float = 2.0
    # A (re)started job keeps its GPUs at least this long. 45 min until 2026-12-03: the held-out
    # 14-day window from day 14 of the Philly trace then preempted 0.27 times per job (budget
    # 0.25); 1 h keeps every window tried under 0.25 (docs/benchmarks.md, "Scheduler").
    min_run: float = 3600.0
    preempt_after: float = 60.0
    drain: bool = True  # keep / free whole nodes for a spread-out gang job
    # Jobs a gang job may move off a node (0: only keep it).  2 until 2026-12-05, when
    # ``swap_after`` left room in the preemption budget for a third (docs/benchmarks.md,
    # "One-GPU swaps wait").
    max_moves: int = 3
    migrate_after: float = 0.0  # a gang job waits this long (or preempt_after) before moving any
    # A one-GPU job (not starving, not a notebook lease, not within its guaranteed quota) stops
    # a job of at most ``swap_max_gpus`` GPUs only once it has waited ``swap_after`` seconds;
    # before that only bigger ones.  One small job stopped for another is a swap: the stopped
    # one restarts on the next GPU that frees up (within minutes on the Philly trace), so the
    # pair waits about as long either way, plus a restart.  A whole node or more may still be
    # stopped after ``preempt_after``: its GPUs serve many small jobs.  On the 84 two-week
    # windows of the Philly trace, with ``max_moves`` 3: 6 over 1.05x instead of 10, at most
    # 0.223 preemptions per job instead of 0.241 (docs/benchmarks.md, "One-GPU swaps wait").
    # 0: no such wait.
    swap_after: float = 600.0
    swap_max_gpus: int = 4
    # Expected-remaining levels: a job of at least ``expect_min_gpus`` GPUs ranks at least at
    # the level of ``expect_scale`` x its GPUs x the time the runtime history expects it still
    # to run (``snap.estimates.completed_remaining``: the median of the completed runtimes of its
    # workspace and size longer than what it has run; never its own duration).  An 8-GPU job
    # of a workspace whose 8-GPU jobs run for days then waits behind short work from its
    # start instead of starting and being preempted for it.  0: off (plain LAS).  With no
    # history the expectation is "as long again", which is plain LAS.  Measured on the 84
    # two-week windows of the Philly trace (docs/benchmarks.md, "Expected-remaining levels").
    expect_scale: float = 1.0
    expect_min_gpus: int = 2
    # Within a level, queued jobs in the order of the work (GPU-seconds: GPUs x the same
    # median remaining time, for every size) their history expects them still to do, least
    # first; equal expectations (no history) first come first served.  Only which queued job
    # starts first changes: a job still preempts only a job of a higher level (and, with
    # ``expect_gate``, one expected to do more work).  False: first come first served within
    # a level.  On the 84 windows, with the gate: 10 over 1.05x instead of 16, none over 0.25
    # preemptions per job (docs/benchmarks.md, "Within a level, the least expected work
    # first"); without the gate days 48-62 preempt 0.257 times per job.
    expect_order: bool = True
    # With ``expect_order``: a job (not starving) preempts a running job only when the work
    # that one is expected still to do is more than ``expect_gate`` x its own expected work
    # (shortest-remaining-first on expectations: stopping a job expected to end first gains
    # nothing, and costs a restart).  0: no such condition.
    expect_gate: float = 2.0
    # The preemption budget (budget.py): preemptions by choice (not those owed to a starving
    # job, a job within its guarantee or a notebook lease) only while the last 14 days have
    # made fewer than this many per job started (counting at least budget.MIN_STARTS, a young
    # cluster's allowance; and, before that, its first step, below).  None: no budget.  The
    # default, 0.24: the Philly windows at 64x8 stay under it anyway (at most 0.225 per job with
    # it, 0.223 without); the October slice on 48x8, a third more work than GPUs, preempts
    # 0.280 times per job without it and 0.241 with it, at an average JCT 1.9% longer
    # (docs/benchmarks.md, "A preemption budget in two steps", "The budget as the default,
    # measured" and "The memory spikes were a reclaim loop in the projection").
    preemption_budget: float | None = 0.24
    # The budget's first step: once the last 14 days have made ``rerun_share`` x the budget
    # preemptions per job started, a job restarted after a preemption keeps its GPUs at least
    # ``min_rerun`` (not ``min_run``) from the jobs that stop others by choice; the preemptions
    # owed (budget.owed) still stop it after ``min_run``.  Long jobs then take turns less often
    # and the credit is left for new jobs: on the 48x8 slice a budget of 0.24 ends at 0.241
    # preemptions per job at 1.17x the SRTF reference, where its refusals alone ended at 1.27x
    # (docs/benchmarks.md, "A preemption budget in two steps").  ``min_rerun`` no more than
    # ``min_run``: no first step.
    min_rerun: float = 7200.0
    rerun_share: float = 0.8
    # A job's level from (job, attained GPU-seconds) instead of ``thresholds``: only for
    # references that know what no scheduler does (the replay's ``las-oracle``, ranked by
    # true remaining work); None (the service's default) ranks by attained service.
    level_fn: Callable[[Job, float], int] | None = None
    # The queue in rank order, kept from pass to pass (a memo of what the
    # snapshot's queue gives: the decisions stay a function of the snapshot).
    _index: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    name = "las"
    preemptive = True

    @property
    def protection(self) -> float:
        """How long a (re)started job keeps its GPUs, as the pass applies ``min_run`` (and
        the queue's projection with it, ``insight._las_run``): never less than an instant,
        whatever ``min_run`` says.  With ``min_run`` 0, jobs stopped and restarted at one
        instant were stopped again at that instant, and decisions undid each other forever
        (tests/scheduling/test_policies.py)."""
        return max(self.min_run, _SAME_INSTANT)

    def protections(self, counts: tuple[int, int] | None) -> tuple[float, float]:
        """(``protection``, how long a job restarted after a preemption keeps its GPUs) at a
        pass whose ledger gives ``counts`` (first starts, preemptions in the last 14 days;
        budget.py): ``min_rerun`` once the budget's first step is reached, else the same."""
        base = self.protection
        if (self.preemption_budget is None or counts is None or self.min_rerun <= base
                or counts[1] < self.rerun_share * budget_allowance(self.preemption_budget, counts[0])):
            return base, base
        return base, self.min_rerun

    def level(self, attained: float) -> int:
        return bisect_right(self.thresholds, attained)

    @property
    def expecting(self) -> bool:
        """Whether levels are expected-remaining ones (:meth:`job_level`): on, no
        ``level_fn``, and the last pass's estimates can tell a remaining time."""
        return self.expect_scale > 0 and self.level_fn is None and self._index.get("remaining") is not None

    @staticmethod
    def next_expectation(ran: float) -> float:
        """The run time (seconds, every run together) at which a job that has run ``ran``
        has its expectation taken again: the end of its stretch (10, 20, 40 min ...)."""
        return _EXPECT_FIRST * 2.0 ** _stretch(ran)

    def job_level(self, job: Job, attained: float, store: bool = True) -> int:
        """``job``'s service level with ``attained`` GPU-seconds: its LAS level, or its
        expected-remaining level (``expect_scale``) when that is higher.  The expectation is
        taken once per doubling of the job's run time (under 10 min, 10-20 min, 20-40 min
        ...) from the history of the last pass's snapshot, and kept for that stretch, so that
        a job's rank does not move at every completion.  ``store`` False (the queue's
        projection) reads kept expectations without keeping new ones: asking for estimates
        never changes a later pass."""
        lv = bisect_right(self.thresholds, attained)
        if self.expect_scale <= 0 or job.gpus < self.expect_min_gpus:
            return lv
        e = self._expected(job, attained, store)
        return e[0] if e is not None and e[0] > lv else lv

    def _expected(self, job: Job, attained: float, store: bool) -> tuple[int, float] | None:
        """(expected-remaining level, expected remaining GPU-seconds) of ``job`` (of
        ``expect_min_gpus`` or more) with ``attained`` GPU-seconds, from the last pass's
        history, kept per stretch of run time (:meth:`job_level`); None without a history."""
        remaining = self._index.get("remaining")
        if remaining is None:
            return None
        ran = attained / job.gpus
        key = (job.id, _stretch(ran))
        memo = self._index["expected"]
        e = memo.get(key)
        if e is None:
            work = job.gpus * remaining(job, ran)
            e = (bisect_right(self.thresholds, self.expect_scale * work), work)
            if store:
                memo[key] = e
        return e

    def _order_work(self, job: Job, attained: float, store: bool) -> float:
        """``job``'s place within its level (``expect_order``): the GPU-seconds its history
        expects it still to do.  A job that has not run yet and declares no runtime takes
        its workspace and size's expectation, one value per (workspace, GPUs) until the
        next refresh (:meth:`_expect_from`), so that jobs alike stay first come first served
        whatever completed between their submissions.  A notebook lease of unknown length
        goes after every job of its level with an expectation: it cannot be preempted, so
        it must not pass older work it would block (head-of-line rule 5, ``core.py``)."""
        if job.kind == "lease" and open_ended(job):
            return math.inf
        remaining = self._index.get("remaining")
        if remaining is None:
            return 0.0
        if attained > 0 or job.max_runtime is not None:
            return self.expected_work(job, attained, store)
        table = self._index["order"]
        k = (job.workspace, job.gpus)
        w = table.get(k)
        if w is None:
            w = job.gpus * remaining(job, 0.0)
            if store:
                table[k] = w
        return w

    def expected_work(self, job: Job, attained: float, store: bool = True) -> float:
        """The GPU-seconds ``job``, with ``attained`` GPU-seconds, is expected still to do:
        its kept expectation (a gang job, :meth:`_expected`) or one taken now (the last
        pass's history; call only when there is one, :meth:`gate_for`)."""
        if job.gpus >= self.expect_min_gpus and self.expect_scale > 0:
            e = self._expected(job, attained, store)
            if e is not None:
                return e[1]
        return job.gpus * self._index["remaining"](job, attained / job.gpus)

    def gate_for(self, rank: tuple) -> float:
        """The expected work (GPU-seconds) a running job must exceed for a job queued with
        ``rank`` to preempt it (``expect_gate``); 0 when any may be: the gate or the order
        off, no history, a starving job, or one whose expectation is none (a notebook lease;
        its own rules apply).  The pass and the queue's projection both ask here."""
        if not self.expect_order or self.expect_gate <= 0 or rank[0] < 0 or self._index.get("remaining") is None:
            return 0.0
        w = rank[1]
        return self.expect_gate * w if 0.0 < w < math.inf else 0.0

    def swap_limit(self, job: Job, lv: int, waited: float) -> int:
        """The size (GPUs) up to which running jobs are not yet victims of ``job``, queued at
        level ``lv`` for ``waited`` seconds (``swap_after``): ``swap_max_gpus`` for a one-GPU
        job, not starving and not a notebook lease, that has waited less than that; else 0.
        The pass and the queue's projection both ask here."""
        if job.gpus != 1 or lv < 0 or job.kind == "lease" or waited >= self.swap_after:
            return 0
        return self.swap_max_gpus

    def swap_wait_starts(self, job: Job, now: float) -> float | None:
        """When ``job``, queued, is (or will be) a one-GPU training, not starving, past its
        ``preempt_after`` but within ``swap_after``: one that spares small victims by choice
        and so holds no notebook lease back (head-of-line rule 5; the pass, and the queue's
        ``insight.explain``).  ``now`` if it is already; the end of its ``preempt_after`` if
        it will be; None if it has no such wait.  Its quota verdict aside: one within its
        guarantee has no such wait."""
        at = max(now, job.queued_since + self.preempt_after)
        if self._starving_since(job) <= at or self.swap_limit(job, 0, at - job.queued_since) == 0:
            return None
        return at

    def queued_rank(self, job: Job, attained: float, store: bool = True) -> tuple:
        """The rank of ``job`` queued with ``attained`` GPU-seconds and not starving:
        (level, expected remaining GPU-seconds or 0, -priority, submitted, id).  The pass's
        ranking and the queue's projection (a preempted job requeued, ``insight._preempt``)
        both take it from here."""
        if self.level_fn:
            return (self.level_fn(job, attained), 0.0, -job.priority, job.submitted_at, job.id)
        lv = self.job_level(job, attained, store)
        work = self._order_work(job, attained, store) if self.expect_order else 0.0
        return (lv, work, -job.priority, job.submitted_at, job.id)

    def _expect_from(self, snap: Snapshot) -> None:
        """Take the history of ``snap`` for :meth:`job_level` and :meth:`queued_rank`
        (``completed_remaining``, the completed runtimes alone, whatever censoring the queue's
        projection last refreshed; estimates without ``remaining``, as in tests, leave levels
        and order to LAS), and drop the kept expectations of jobs that have left (the memo
        would otherwise grow with every job ever run).  Every ``_ORDER_REFRESH`` seconds
        the within-level expectations are taken again for the whole queue (its ranking is
        rebuilt), so that they follow the history without reordering jobs alike."""
        if self.expect_scale <= 0 and not self.expect_order:
            return
        est = snap.estimates
        self._index["remaining"] = getattr(est, "completed_remaining", None) or getattr(est, "remaining", None)
        if self.expect_order:
            at = self._index.get("order_at")
            if at is None or not at <= snap.now < at + _ORDER_REFRESH:
                self._index["order"] = {}
                self._index["order_at"] = snap.now
                self._index.pop("rank", None)
        memo = self._index.get("expected")
        if memo is None:
            memo = self._index["expected"] = {}
        elif len(memo) > 4 * (len(snap.queue) + len(snap.active)) + 1024:
            live = {j.id for j in snap.queue.jobs()} | {a.job.id for a in snap.active}
            for k in [k for k in memo if k[0] not in live]:
                del memo[k]

    def _starving_since(self, job: Job) -> float:
        last_run = job.attained / job.gpus
        return job.queued_since + max(self.starve_after, self.starve_factor * last_run)

    def rank(self, job: Job, now: float) -> tuple:
        if now >= self._starving_since(job):
            return (-1, job.queued_since, -job.priority, job.submitted_at, job.id)
        return self.queued_rank(job, job.attained, False)

    def _entry(self, j: Job, now: float, store: bool = True) -> tuple:
        """(rank, starving since, job): :meth:`rank` and :meth:`_starving_since` in one,
        inlined: a rebuild ranks the whole queue (through the two methods, a first pass
        over 6,000 queued took 19.6 ms instead of 16-17 ms in benchmarks/insight_bench.py)."""
        att = j.attained
        qs = j.submitted_at if j.enqueued_at is None else j.enqueued_at
        last = self.starve_factor * (att / j.gpus)
        since = qs + (self.starve_after if self.starve_after >= last else last)
        if now >= since:
            return ((-1, qs, -j.priority, j.submitted_at, j.id), since, j)
        if self.level_fn is None and not self.expect_order and (self.expect_scale <= 0 or j.gpus < self.expect_min_gpus):
            return ((bisect_right(self.thresholds, att), 0.0, -j.priority, j.submitted_at, j.id), since, j)
        return (self.queued_rank(j, att, store), since, j)

    def _ranked(self, view: QueueView, now: float, keep: bool = True) -> list[tuple]:
        """The queued jobs as (rank, starving since, job), in rank order.

        Ranking every queued job at every pass was a fifth of the service's
        scheduling CPU on a long queue (docs/benchmarks.md).  A queued job's
        rank changes only when it starts starving, so the sorted list is kept
        between passes: the view's change log (``QueueView.changes_since``)
        says which jobs came and went, and a heap of starvation times says
        which jobs are promoted now.  Rebuilt from the whole queue when the
        view is another one, its log has moved on, or the clock went back.
        Queue insight reads it too (``insight._project_las``); with ``keep``
        False, the ranking of a view other than the kept one (a what-if
        queue), or of an earlier time, is made without replacing it.  Read-only for the caller
        (valid until the next call)."""
        ix = self._index.get("rank")
        if not keep and ix is not None and (ix.view is not view or now < ix.now):
            return sorted(self._entry(j, now, False) for j in view.jobs())
        changes = None
        if ix is not None and ix.view is view and now >= ix.now:
            changes = view.changes_since(ix.seen)
        if changes is None:
            if not keep:
                return sorted(self._entry(j, now, False) for j in view.jobs())
            ix = self._index["rank"] = _RankIndex(view, [self._entry(j, now, True) for j in view.jobs()], now)
            return ix.entries
        entries, by_id, promote = ix.entries, ix.by_id, ix.promote
        if keep and ix.provisional:
            # Jobs the queue's projection ranked between passes, with the history
            # of then and keeping no expectation: ranked again as this pass ranks
            # the jobs queued since the last one (their starvation limits are the same).
            for jid in ix.provisional:
                e = by_id.get(jid)
                if e is not None:
                    del entries[bisect_left(entries, e)]
                    e = by_id[jid] = self._entry(e[2], now, True)
                    insort(entries, e)
            ix.provisional.clear()
        for added, job in changes:
            if added:
                e = self._entry(job, now, keep)
                insort(entries, e)
                by_id[job.id] = e
                if e[0][0] >= 0:
                    heapq.heappush(promote, (e[1], job.id))
                if not keep:
                    ix.provisional.add(job.id)
            else:
                e = by_id.pop(job.id)
                del entries[bisect_left(entries, e)]
        while promote and promote[0][0] <= now:
            since, jid = heapq.heappop(promote)
            e = by_id.get(jid)
            if e is None or e[0][0] < 0 or e[1] != since:
                continue  # left the queue, or came back with another limit
            del entries[bisect_left(entries, e)]
            e = by_id[jid] = self._entry(e[2], now, keep)
            insort(entries, e)
        if len(promote) > 2 * len(by_id) + 64:  # limits of jobs that have left
            ix.promote = [(e[1], jid) for jid, e in by_id.items() if e[0][0] >= 0]
            heapq.heapify(ix.promote)
        ix.seen = view.changes
        ix.now = now
        return entries

    @staticmethod
    def _without_preemptible(snap: Snapshot) -> FreeMap:
        """The GPUs free once every preemptible job is gone (GPUs held by
        notebook leases and other non-preemptible jobs may never come back).
        Built at most once per pass, for a starving job that could not start."""
        fm = FreeMap(snap.nodes)
        for a in snap.active:
            if a.stopping or a.job.preemptible:
                fm.give(a.placement)
        return fm

    @staticmethod
    def _drain(state: PassState, job: Job, movable_ok: Callable[[ActiveJob], bool],
               max_moves: int, window: int = 32) -> tuple[dict[str, int], list[ActiveJob] | None]:
        """:func:`drain_plan` for this pass: its running jobs by node, less those it already
        stops, and the nodes where GPUs are being freed."""
        state._index()
        return drain_plan(state.free, job, state._by_node or {}, movable_ok, max_moves, window,
                          state.pending, state.victimized)

    def schedule(self, snap: Snapshot) -> Decisions:
        now = snap.now
        self._expect_from(snap)
        state = PassState(snap, self.topology_keys)
        thresholds = self.thresholds
        level_fn = self.level_fn  # None: by thresholds (inlined below, the service's case)
        # Workspaces at their cap (a hard quota, or quota + borrowing limit)
        # stay there for the whole pass: their jobs are only given their
        # reason, not walked (they can be most of a long queue).
        full: dict[str, tuple] = {}
        if state.any_quota:
            for ws, lim in snap.limits.items():
                used = state.in_use.get(ws, 0)
                cap = quota_cap(lim)
                if cap is not None and used >= cap:
                    full[ws] = (_blocked_reason, blocked_args(lim, used, True))
        raw = state.waiting._raw
        # (rank, starving since, job) in rank order, kept from the last pass
        # (ranks are unique; see _RankIndex).
        queued = self._ranked(snap.queue, now)
        if not queued:
            return decisions(state)
        best_queued = queued[0][0][0]
        inf = float("inf")
        # The highest (lowest-priority) level among preemptible running jobs past their protection
        # from preemptions by choice (min_rerun for a restarted job under the budget's first
        # step), and past min_run (from the preemptions owed).
        lowest = -2
        lowest_owed = -2
        wake = inf
        nthr = len(thresholds)
        # How long a job keeps its GPUs once (re)started: ``min_run``; after a restart,
        # ``min_rerun`` once the preemption budget's first step is reached.
        min_run, rerun = self.protections(snap.preemption_counts)
        expect, expect_min = self.expecting, self.expect_min_gpus
        pending = 0  # GPUs of jobs being stopped
        credit = budget_credit(self.preemption_budget, snap.preemption_counts)  # (budget.py)
        # The one loop over every running job: keep it lean (levels of
        # possible victims are recomputed on demand, below).
        for a in snap.active:
            job = a.job
            if a.stopping:
                pending += job.gpus
                continue
            if not job.preemptible:
                continue
            started = a.started_at
            ran = now - started
            att = job.attained + job.gpus * (ran if ran > 0 else 0.0)
            if level_fn:
                lv = level_fn(job, att)
            elif expect and job.gpus >= expect_min:
                lv = self.job_level(job, att)
                if lv >= best_queued:
                    # Its expectation is taken again when its run time doubles.
                    total = att / job.gpus
                    t = now + (self.next_expectation(total) - total)
                    if t < wake:
                        wake = t
            else:
                lv = bisect_right(thresholds, att)
            mr = rerun if job.restarts else min_run
            if ran >= min_run and lv > lowest_owed:
                lowest_owed = lv
            if ran >= mr:
                if lv > lowest:
                    lowest = lv
            elif lv > best_queued:
                g = started + (min_run if ran < min_run else mr)  # becomes a possible victim then
                if g < wake:
                    wake = g
            if lv < nthr and lv >= best_queued and level_fn is None:
                t = now + (thresholds[lv] - att) / job.gpus
                if t < wake:
                    wake = t
        level_cache: dict[str, int] = {}
        work_cache: dict[str, float] = {}

        def attained_now(a: ActiveJob) -> float:
            ran = now - a.started_at
            return a.job.attained + a.job.gpus * (ran if ran > 0 else 0.0)

        def work_of(a: ActiveJob) -> float:
            w = work_cache.get(a.job.id)
            if w is None:
                w = work_cache[a.job.id] = self.expected_work(a.job, attained_now(a))
            return w

        def level_of(a: ActiveJob) -> int:
            lv = level_cache.get(a.job.id)
            if lv is None:
                job = a.job
                att = attained_now(a)
                lv = level_cache[job.id] = (level_fn(job, att) if level_fn else self.job_level(job, att) if expect
                                            else bisect_right(thresholds, att))
            return lv

        fm = state.free
        any_quota = state.any_quota
        # Guarantees first (core.guaranteed_sweep: the only place GPUs are
        # reclaimed), then service order.
        handled = guaranteed_sweep(state, snap.queue.cursor()) if any_quota else ()
        # (level, workspace under quotas, GPUs per node of an N x G job over several nodes) ->
        # (gate, GPUs) of the victim searches that failed this pass (_failed_before); forgotten
        # when a workspace takes more GPUs above its guarantee (more of its jobs become victims
        # for the others, PassState.shielded)
        failed: dict[tuple[int, str | None, int | None], list[tuple[float, int]]] = {}
        flips = 0
        victim_order = lambda a: (-level_of(a), -a.started_at, a.job.id)  # noqa: E731
        waiting = state.waiting
        hold = ""  # a starving job that cannot start yet holds back the rest
        in_use = state.in_use
        blocked_reasons: dict[tuple[str, int, bool], tuple] = {}
        reachable: FreeMap | None = None
        drain = self.drain
        patience = self.preempt_after
        migrate_after = max(patience, self.migrate_after)
        # True while no GPUs are being freed anywhere (no stopping job, no
        # claim of this pass): then a job with none free can only wait.
        settled = pending <= 0 and all(v <= 0 for v in state.pending.values())
        settled_verdicts: dict[tuple, str] = {}
        level_reason: dict[int, ShortageAt] = {}  # the shortcut's reason per level (lv >= 0)
        tail: _SettledTail | None = None
        for rank, _, job in queued:
            if full:
                entry = full.get(job.workspace)
                if entry is not None:
                    raw[job.id] = entry
                    continue
            if job.id in handled:
                continue
            lv = rank[0]
            if hold:
                state.wait(job.id, _held_reason, job, fm.max_size, hold)
                continue
            if fm.total_free == 0 and lv >= lowest_owed and not any_quota and pending <= 0:
                break
            if any_quota:
                if settled and fm.total_free == 0:
                    # Nothing can start or be claimed from here on, so usage
                    # stays as it is: one verdict per workspace, size and kind.
                    vk = (job.workspace, job.gpus, job.preemptible)
                    verdict = settled_verdicts.get(vk)
                    if verdict is None:
                        verdict = settled_verdicts[vk] = state.quota_check(job)
                else:
                    verdict = state.quota_check(job)
                if verdict == BLOCKED:
                    raw[job.id] = _blocked_shared(blocked_reasons, snap, in_use, job)
                    continue
            else:
                verdict = NO_QUOTA
            if settled and fm.total_free == 0 and lv >= lowest_owed and lv >= 0 and job.kind != "lease":
                # Nothing is free and nothing being freed, and no running job
                # is of a higher level past min_run: this job can neither
                # start nor preempt (nor can any after it: levels only grow
                # along the ranking), and the general path below would only
                # record why it waits.  (Quotas keep the walk going: the
                # blocked jobs need their reason.)  One shared reason per
                # level (ShortageAt), no call or object per job.  The rest
                # of the queue is this job's case, its reasons recorded when
                # they are read (_SettledTail, notebook leases among them),
                # not here at every pass.
                tail = _SettledTail(queued[bisect_left(queued, (rank,)):], full, handled, state,
                                    settled_verdicts, blocked_reasons, level_reason)
                waiting.defer(tail.record)
                wake = tail.wake(now, patience, wake, snap.queue, self._index["rank"].by_id)
                break
            if state.blocked_ahead and job.kind == "lease" and open_ended(job):
                # Head-of-line rule 5 (core.py): a notebook lease may not
                # push back a job ranked ahead of it that waits for GPUs.
                p, decided = state.lease_room(job, verdict)
                if decided:
                    if p is not None:
                        state.admit(job, p, verdict == BORROW)
                    continue
            p = fm.find(job)
            if p is not None:
                state.admit(job, p, verdict == BORROW)
                continue
            waited = now - job.queued_since
            by_choice = False  # waiting out swap_after: holds no lease back (below)
            spent = False  # it would stop a job, but the preemption budget is spent
            stepped = False  # it would stop a job, but the budget's first step keeps them all
            owed = budget_owed(job, lv, verdict)  # promises: not held to the budget
            # (nor to its first step: a restarted job keeps its GPUs min_run from them)
            prot = min_run if owed else rerun
            if drain and job.gpus > 1 and job.preemptible and fm.total_free >= job.gpus:
                # Enough GPUs are free in all, but not together on the nodes
                # the job needs: what a pooled cluster would give it at once.
                where, moves = self._drain(state, job, lambda a, ws=job.workspace: (
                    a.job.preemptible and now - a.started_at >= (prot if a.job.restarts else min_run)
                    and a.job.gpus < job.gpus and not (any_quota and state.shielded(a.job, ws))), self.max_moves)
                if where and moves and waited >= migrate_after and (owed or len(moves) <= credit):
                    # A few jobs are in the way: move them (they restart
                    # at once on the GPUs free elsewhere).  Moves owed to a
                    # promise are not held to the budget, as its other
                    # preemptions are not (budget.owed).
                    credit, pending = _claim(state, job, where, moves, not owed, credit,
                                             f"moved to make room for {job.id} (enough GPUs free, but spread)")
                    settled = False
                    continue
                if where:
                    # Keep those nodes for it (nothing ranked after it
                    # starts there) so that they drain as their jobs end.
                    if moves and job.queued_since + migrate_after < wake:
                        wake = job.queued_since + migrate_after
                    state.wait(job.id, _draining_reason, job, fm.max_size, fm.total_free, sorted(where))
                    fm.take({n: tuple(fm.free[fm.index[n]]) for n in where})
                    state.note_blocked(job, verdict)
                    continue
            if state.guarantee_flips != flips:
                failed.clear()
                flips = state.guarantee_flips
            if waited < patience and lv >= 0 and verdict != WITHIN:
                # Jobs end often: a job waits ``preempt_after`` for GPUs to
                # free up before it stops another for them.
                if job.queued_since + patience < wake:
                    wake = job.queued_since + patience
            elif (lv < lowest or verdict == WITHIN or pending > 0) and not owed and credit < 1:
                spent = True  # it would look for victims, but the preemption budget is spent
            elif lv < (lowest_owed if owed else lowest) or verdict == WITHIN or pending > 0:
                # A job within its quota that the guaranteed sweep did not
                # reach (behind a blocked job of its workspace) preempts by
                # service level only, like any other: reclaiming here would
                # hand the freed GPUs to whoever comes first next pass.
                ws = job.workspace
                floor = self.gate_for(rank)
                small = self.swap_limit(job, lv, waited) if verdict != WITHIN else 0
                per = job.gpus_per_node
                # More GPUs are harder to find only in the same shape: 16 GPUs at 4 per node
                # may be found where 8 on one node were not.
                # (and in the protection its restarted victims have: owed or not)
                fk = (lv, ws if any_quota else None, per if per is not None and per < job.gpus else None, prot)

                def eligible(a: ActiveJob, lv=lv, floor=floor, small=small, prot=prot) -> bool:
                    j = a.job
                    if not j.preemptible or j.gpus <= small:
                        return False
                    if now - a.started_at < (prot if j.restarts else min_run) or level_of(a) <= lv:
                        return False
                    return floor <= 0.0 or work_of(a) > floor

                # A search like one that failed (fewer victims open to it, or as many) fails too:
                # it is not made, and the job goes on as after a failed search.
                searched = verdict == WITHIN or not _failed_before(failed.get(fk), floor, job.gpus)
                # Eligibility depends on the level, the gate and the swap limit alone (shared
                # between searches); under quotas, another workspace's jobs are victims only as
                # far as it keeps its guarantee (guard, checked at each search).
                found = state.find_victims(job, eligible, victim_order, (lv, floor, small, prot),
                                           ws if any_quota else None) if searched else None
                if found is not None and not owed and len(found[1]) > credit:
                    found, spent = None, True  # the budget is spent: it waits for GPUs to free up
                if found is not None:
                    credit, pending = _claim(state, job, *found, not owed, credit,
                                             f"preempted for {job.id} (least attained service: level {lv})")
                    settled = False
                    continue
                if small:
                    # Small jobs become its victims then (a failed search with fewer
                    # victims than the others at its level is not kept for them).
                    t = job.queued_since + self.swap_after
                    if t < wake:
                        wake = t
                    # Nor does it hold back a notebook lease ranked after it (rule 5):
                    # it waits by choice, not for want of victims; a lease may stop one
                    # (someone waits at the screen), and GPUs that free up still come to
                    # this job first, in rank order.
                    by_choice = True
                elif verdict != WITHIN and searched:
                    # (Under quotas the victims depend on the workspace: another's within their
                    # guarantee are not, its own are.)
                    failed[fk] = _note_failed(failed.get(fk), floor, job.gpus)
            elif not owed and lv < lowest_owed:
                # Running jobs of a higher level are past min_run, but every one of them was
                # restarted after a preemption and is within min_rerun: the budget's first step.
                stepped = credit >= 1
                spent = not stepped
            state.wait_shortage(job, f"; service level {lv if lv > 0 else 0}"
                                + (_SPENT if spent else "; " + first_step_reason(rerun, min_run) if stepped else ""))
            if not by_choice:
                state.note_blocked(job, verdict)
            if lv < 0:
                # Starving, and no victim is eligible yet (jobs started less
                # than min_run ago are protected): if smaller jobs kept taking
                # every GPU that frees up, a gang job would never run.
                if reachable is None:
                    reachable = self._without_preemptible(snap)
                if reachable.find(job) is not None:
                    hold = job.id
        wake = self._next_starving(queued, now, wake, raw, tail)
        return decisions(state, None if wake == inf else wake)

    def _next_starving(self, queued: list[tuple], now: float, wake: float, waiting,
                       tail: "_SettledTail | None" = None) -> float:
        """``wake``, or earlier: when the first job this pass left waiting starts
        starving.  Read from the kept ranking's heap of starvation times in
        ascending order (a best-first walk of the heap: it stops at the first
        entry of a waiting job, most often the first), not from the whole queue
        at every pass.  An entry of a job that has left the queue, or came back
        with another time, is skipped.  With a ``level_fn`` (which may rank a
        job that does not starve below zero) the whole queue is read.
        ``waiting``: the jobs whose reason the pass recorded; a job of a
        settled ``tail`` waits too unless the guaranteed sweep handled it (its
        reason is recorded when read)."""
        def waits(jid: str, e: tuple) -> bool:
            return jid in waiting or (tail is not None and e >= tail.first and jid not in tail.handled)

        ix = self._index.get("rank")
        if self.level_fn is not None or ix is None or ix.entries is not queued:
            for e in queued:
                since = e[1]
                if since > now and since < wake and waits(e[2].id, e):
                    wake = since
            return wake
        heap, by_id = ix.promote, ix.by_id
        n = len(heap)
        todo = [(heap[0][0], 0)] if n else []
        while todo:
            since, i = heapq.heappop(todo)
            if since >= wake:
                break
            jid = heap[i][1]
            e = by_id.get(jid)
            if e is not None and e[1] == since and since > now and waits(jid, e):
                return since
            for c in (2 * i + 1, 2 * i + 2):
                if c < n:
                    heapq.heappush(todo, (heap[c][0], c))
        return wake


def _claim(state: PassState, job: Job, nodes, victims: list, spend: bool, credit: float,
           why: str) -> tuple[float, int]:
    """``job`` claims ``nodes``, stopping ``victims`` (told ``why``), and waits for them to stop.
    Returns the budget's credit left (less the victims where ``spend``: not owed to a promise)
    and the GPUs now being freed in all (``PassState.pending_total``)."""
    state.claim(job, nodes, victims, why)
    state.wait(job.id, _preempting_reason, job, state.free.max_size, len(victims))
    return (credit - len(victims) if spend else credit), state.pending_total()


def _failed_before(failed: list[tuple[float, int]] | None, floor: float, gpus: int) -> bool:
    """Whether a victim search of this pass with the same key (level, workspace under quotas,
    and GPUs per node for an N x G job over several nodes) already failed with a gate no
    higher than ``floor`` and for no more than ``gpus`` GPUs: a higher gate leaves fewer
    victims eligible, more GPUs in the same shape need more of them (on one node, or on
    whole nodes, or more nodes of N x G), and victims only get fewer as the pass claims
    them, so this one would fail too."""
    return failed is not None and any(f <= floor and g <= gpus for f, g in failed)


def _note_failed(failed: list[tuple[float, int]] | None, floor: float, gpus: int) -> list[tuple[float, int]]:
    """``failed`` with a failed search (``floor``, ``gpus``) added, less the ones it makes
    redundant for :func:`_failed_before` (a higher gate and more GPUs): at most one entry
    per job size, however long the queue."""
    kept = [(f, g) for f, g in failed or () if f < floor or g < gpus]
    kept.append((floor, gpus))
    return kept


def _blocked_shared(cache: dict, snap: Snapshot, in_use: dict, job: Job) -> tuple:
    """The (lazy) reason of ``job``, blocked by its workspace's quota: hard quotas can
    leave thousands of jobs blocked, so one reason is shared per workspace, GPUs in use
    and kind (``cache``, the pass's, keyed by (workspace, GPUs in use, preemptible))."""
    ws = job.workspace
    key = (ws, in_use.get(ws, 0), job.preemptible)
    entry = cache.get(key)
    if entry is None:
        entry = cache[key] = (_blocked_reason, blocked_args(snap.limits_for(ws), key[1], job.preemptible))
    return entry


def _shortage_at(snap: Snapshot, fm: FreeMap, lv: int) -> ShortageAt:
    """The reason shared by the jobs of level ``lv`` that wait for GPUs in a settled tail."""
    return ShortageAt(fm.max_size, fm.total_free, f"; service level {lv}", snap.queue.get)


class _SettledTail:
    """The rest of a ``las`` pass's queue from the first job of its settled
    tail on (``entries``, in rank order).  Nothing there can start, claim or
    preempt (a notebook lease no more than a training: nothing is free, and
    it never preempts a job of a higher level than its own), so the walk
    stops; what it would have recorded job by job is recorded on first read
    of the pass's reasons (:meth:`record`: a workspace at its cap, a blocked
    quota, the reason of a lease behind a job it may not push back, or the
    shared shortage reason of the job's level; the guaranteed sweep's jobs
    have theirs), and :meth:`wake` gives the one thing the pass itself needs
    from it.  The pass's state is read, and changed only as the walk would
    have gone on changing it: :meth:`record` notes the tail's waiting jobs
    for the leases after them (``note_blocked``), after the pass."""

    __slots__ = ("entries", "first", "full", "handled", "state", "verdicts", "blocked", "levels")

    def __init__(self, entries: list[tuple], full: dict, handled, state: PassState,
                 verdicts: dict, blocked: dict, levels: dict) -> None:
        self.entries, self.first, self.full, self.handled = entries, entries[0], full, handled
        self.state, self.verdicts, self.blocked, self.levels = state, verdicts, blocked, levels

    def _verdict(self, job: Job) -> str:
        vk = (job.workspace, job.gpus, job.preemptible)
        verdict = self.verdicts.get(vk)
        if verdict is None:
            verdict = self.verdicts[vk] = self.state.quota_check(job)
        return verdict

    def wake(self, now: float, patience: float, wake: float, view: QueueView, ranked: dict[str, tuple]) -> float:
        """``wake``, or earlier: when a job of the tail that has not waited
        ``preempt_after`` yet, and may borrow (neither blocked nor within its
        guarantee), will have: the walk's wake-up for it.  Read from the view's
        jobs by the time they were queued, earliest first, up to the first such
        job of the tail (``ranked``: the kept ranking's entries by id), most
        often among the first few: not a walk of the whole tail."""
        full, handled, first = self.full, self.handled, self.first
        for qs, jid in view.queued_after(now - patience):
            if qs + patience >= wake:
                break
            e = ranked.get(jid)
            if e is None or e < first or jid in handled:
                continue  # ranked before the tail (the walk saw it), or the guaranteed sweep's
            job = e[2]
            if full and job.workspace in full:
                continue
            verdict = self._verdict(job)
            if verdict != BLOCKED and verdict != WITHIN:
                if job.kind == "lease" and open_ended(job) and self.state.lease_protects(job, verdict):
                    continue  # it waits behind a job ahead (record), not for preempt_after
                return qs + patience
        return wake

    def record(self, raw: dict) -> None:
        """The tail's reasons, as the walk would have recorded them (its checks in
        its order: a workspace at its cap, the guaranteed sweep's, a blocked
        quota, then the shortage of the job's level)."""
        state = self.state
        snap, fm, in_use = state.snap, state.free, state.in_use
        full, handled, blocked, levels = self.full, self.handled, self.blocked, self.levels
        leases = bool(snap.queue.leases)
        for rank, _, job in self.entries:
            if full:
                entry = full.get(job.workspace)
                if entry is not None:
                    raw[job.id] = entry
                    continue
            if job.id in handled:
                continue
            verdict = self._verdict(job)
            if verdict == BLOCKED:
                raw[job.id] = _blocked_shared(blocked, snap, in_use, job)
                continue
            if leases:
                # Head-of-line rule 5 as the walk applies it: a lease behind a
                # job it may not push back waits with that reason (nothing is
                # free, so lease_room decides that), and every job left
                # waiting here is one a later lease may not push back.
                if state.blocked_ahead and job.kind == "lease" and open_ended(job):
                    if state.lease_room(job, verdict)[1]:
                        continue
                state.note_blocked(job, verdict)
            lv = rank[0]
            fmt = levels.get(lv)
            if fmt is None:
                fmt = levels[lv] = _shortage_at(snap, fm, lv)
            raw[job.id] = fmt


class _RankIndex:
    """:meth:`LasPolicy._ranked`'s state: the sorted entries, each job's
    entry, a heap of (starving since, job id) of the jobs not yet starving,
    and the view's change count and the time it was last brought up to, and the
    jobs the queue's projection ranked since the last pass (``provisional``)."""

    __slots__ = ("view", "entries", "by_id", "promote", "seen", "now", "provisional")

    def __init__(self, view: QueueView, entries: list[tuple], now: float) -> None:
        entries.sort()
        self.view = view
        self.entries = entries
        self.by_id = {e[2].id: e for e in entries}
        self.promote = [(e[1], e[2].id) for e in entries if e[0][0] >= 0]
        heapq.heapify(self.promote)
        self.seen = view.changes
        self.now = now
        self.provisional: set[str] = set()  # ranked by a projection, not yet by a pass


_SPENT = "; the preemption budget is spent (FLIGHTBASE_PREEMPTION_BUDGET): waits for GPUs to free up"


def _held_reason(job: Job, max_size: int, starving: str) -> str:
    return f"{describe_need(job, max_size)}; held back while starving {starving} waits for GPUs"


def _draining_reason(job: Job, max_size: int, total_free: int, nodes: list[str]) -> str:
    return (f"{_shortage_reason(job, max_size, total_free)}, spread over nodes; keeping "
            f"{', '.join(nodes[:3])}{' ...' if len(nodes) > 3 else ''} for it as jobs end there")


def _preempting_reason(job: Job, max_size: int, victims: int) -> str:
    return f"{describe_need(job, max_size)}; waiting for {victims or 'stopping'} job(s) to stop"


def drain_plan(fm: FreeMap, job: Job, by_node: Mapping[str, Sequence[V]], movable_ok: Callable[[V], bool],
               max_moves: int, window: int = 32, pending: Mapping[str, int] | None = None,
               skip: Container[str] = ()) -> tuple[dict[str, int], list[V] | None]:
    """The nodes ``job`` should wait for (name -> GPUs it would use
    there), and the running jobs to move off them, or None when more than
    ``max_moves`` jobs, or one that ``movable_ok`` refuses, are in the way
    (or GPUs there are already being freed: ``pending``).  Among the ``window``
    emptiest nodes that can hold it (one node, or as many whole nodes or
    N x G nodes as it needs), those with the fewest jobs to move, then
    the most free GPUs.  Nodes where non-preemptible jobs (notebook
    leases) hold GPUs the job would need are skipped: they may never
    drain.  Only as many jobs as make room are moved (the biggest share
    of the node first, then the least service).  ``by_node``: the running jobs on each
    node (the pass's ``ActiveJob``, the queue projection's holders: ``job``, ``placement``,
    ``started_at``), less those in ``skip``.  The one rule of the pass (``LasPolicy._drain``)
    and of the queue's projection."""
    need = job.gpus
    per = job.gpus_per_node
    multi = (per is not None and per < need) or (per is None and need > fm.max_size)
    count = (need // per if per is not None else -(-need // fm.max_size)) if multi else 1
    total, names = fm.total, fm.names
    pending = pending or {}
    # (moves or a big number, fewer free GPUs last, node, GPUs it gives, moves)
    cands: list[tuple[int, int, int, int, list[V] | None]] = []
    for c in range(fm.max_size, 0, -1):
        for i in fm.buckets[c]:
            cap = total[i]
            want = (per if per is not None else cap) if multi else need
            if cap < want:
                continue
            name = names[i]
            here = [a for a in by_node.get(name, ()) if a.job.id not in skip]
            if cap - sum(len(a.placement[name]) for a in here if not a.job.preemptible) < want:
                continue
            moves: list[V] | None = []
            have = c
            if pending.get(name, 0) > 0:
                moves = None  # GPUs already being freed there (claimed)
            elif have < want:
                ok = {a.job.id for a in here if movable_ok(a)}
                if len(ok) < len(here) and have + sum(len(a.placement[name]) for a in here if a.job.id in ok) < want:
                    moves = None  # (the walk below would reach one it may not move: no need to sort)
                else:
                    # Fewest moves: the biggest share of the node first,
                    # then the least service, then the newest.
                    for a in sorted(here, key=lambda a: (-len(a.placement[name]), a.job.attained,
                                                         -a.started_at, a.job.id)):
                        if have >= want:
                            break
                        if a.job.id not in ok:
                            moves = None
                            break
                        have += len(a.placement[name])
                        moves.append(a)
            cands.append((len(moves) if moves is not None else 1 << 20, -c, i, want, moves))
            if len(cands) >= window:
                break
        if len(cands) >= window:
            break
    if len(cands) < count:
        return {}, None
    cands.sort(key=lambda t: t[:3])
    out: dict[str, int] = {}
    movable: list[V] | None = []
    seen: set[str] = set()
    left = need
    for nmoves, _, i, want, moves in cands[:count]:
        if multi and per is None:
            want = min(want, left)
        out[names[i]] = want
        left -= want
        if moves is None or movable is None or nmoves > max_moves:
            movable = None
            continue
        for a in moves:
            if a.job.id not in seen:
                seen.add(a.job.id)
                movable.append(a)
    return out, movable

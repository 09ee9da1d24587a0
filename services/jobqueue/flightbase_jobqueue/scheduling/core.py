"""One scheduling pass: the working state, quotas, reclaim, head-of-line rules.

Map of this package:

- ``types.py``: the snapshot in, the decisions out (frozen dataclasses).
- ``queueview.py``: queue order (submission order, priorities within a
  workspace), maintained incrementally by stores.
- ``placement.py``: gang placement (best fit, whole nodes, topology) and
  :func:`check_admissible` for submission.
- ``core.py`` (here): :class:`PassState` (free GPUs, per-workspace use,
  quota verdicts, victim search for reclaim and preemption, EASY
  reservations) and :func:`admission_loop`, shared by the policies.
- ``policies/``: one file per policy (fifo, backfill, fairshare, las, sjf),
  registered in ``policies/__init__.py``; :func:`make_policy` builds one by
  name and fails loudly on an unknown name.
- ``insight.py``: queue positions, estimated start times and reasons.
- ``estimates.py``: history-based runtime estimates; ``usage.py``: decayed
  GPU-seconds for fair share.

Head-of-line rules (one pass walks the queue in its policy's order):

1. A job that can never fit is rejected at submission
   (:func:`~.placement.check_admissible`); it never blocks the queue.
2. A job held back by its workspace's quota (no borrowing allowed, a
   non-preemptible job that would go above the quota, or a job that would
   take the workspace past its borrowing limit: :func:`quota_verdict`, the
   one place of that rule) blocks only the later jobs of its own workspace.
3. A GPU shortage blocks every job behind it in the same policy order
   (``fifo``, ``sjf``), except that:
   - a job within its workspace's guaranteed quota may still start, and may
     reclaim GPUs lent to workspaces running above their quota (by
     preempting borrowed, preemptible jobs, newest first).  Reclaim happens
     only in the first, guaranteed sweep (:func:`guaranteed_sweep`), which
     also runs first at the next pass, so the claimer gets the freed GPUs
     before any borrower (no reclaim/borrow ping-pong);
   - under ``backfill`` and ``fairshare`` the first blocked job gets a
     reservation (the earliest time its GPUs free up, from declared or
     estimated runtimes) and later jobs start only if they do not delay it
     (EASY backfilling);
   - under ``las`` a blocked job does not block smaller ones behind it
     (starvation is prevented by promotion instead) and it may preempt jobs
     of a lower service level.
4. Jobs already being stopped (preemption requested) count as GPUs about to
   free; the first job that needs them claims them, so a pass never preempts
   twice for the same need.
5. Open-ended work (a notebook lease: non-preemptible, no declared end; see
   :func:`open_ended`) never pushes back a job ahead of it that waits for
   GPUs.  Every job the walk leaves waiting for GPUs is noted
   (:meth:`PassState.note_blocked`); a lease reached after such jobs starts
   only on GPUs that none of their reservations needs (each reservation
   computed with leases that never end), and never preempts for its GPU
   (:meth:`PassState.lease_room`).  A lease within its workspace's
   guarantee is held back only by its own workspace's jobs and by other
   jobs within their guarantee: the guarantee is a promise between
   workspaces, queue order one within a workspace.  A lease with nothing
   blocked ahead of it starts at once, as any job.  :func:`lease_protects`
   is the rule's one definition, which the queue's insight asks too.
   docs/scheduling.md explains the choice.
"""

from __future__ import annotations

import heapq
import time
from typing import Callable, Container, Iterable, Iterator, Mapping, Protocol, Sequence, TypeVar

from .placement import DEFAULT_TOPOLOGY_KEYS, FreeMap, copy_freemap, take_available
from .types import ActiveJob, Admit, Decisions, Job, Placement, Preempt, Snapshot, WorkspaceLimits

# Quota verdicts
NO_QUOTA = "no-quota"  # the workspace has no guarantee: runs on any idle GPU
WITHIN = "within"      # fits in the guaranteed quota: may reclaim lent GPUs
BORROW = "borrow"      # above the quota on idle capacity: may be reclaimed
BLOCKED = "blocked"    # held back by the quota

#: Rule 5 protects from a lease the first this many jobs left waiting ahead of it, of the
#: first LEASE_NOTE_DEPTH noted (PassState.lease_protects).
LEASE_GUARD_DEPTH = 16
LEASE_NOTE_DEPTH = 4 * LEASE_GUARD_DEPTH

INF = float("inf")


def open_ended(job: Job) -> bool:
    """True for work that, once started, holds its GPUs for an unknown time
    and cannot be preempted: a notebook lease (it ends when its person stops
    the server or the idle culler does).  Such work may not push back older
    queued work (head-of-line rule 5)."""
    return job.kind == "lease" and not job.preemptible and job.max_runtime is None


def lease_protects(lease: Job, verdict: str, waiting_ahead: Iterable[tuple[Job, str]]) -> list[Job]:
    """Head-of-line rule 5, the one place of it: of the jobs waiting ahead
    of ``lease`` (``(job, its quota verdict)`` in the order they go), those
    that the lease may not delay, so that it may start only where none of
    them needs its GPU.  None for work that is not open-ended (it competes
    as any job); all of them for a lease outside its workspace's guarantee;
    for a lease within it (``verdict`` WITHIN), those of its own workspace
    and those within their own guarantee.  Only older work: a job submitted
    after the lease (under ``las`` one ranked ahead of it) is not protected.
    The pass asks it with the jobs it left waiting for GPUs
    (:meth:`PassState.lease_room`), the queue's
    insight with the trainings queued ahead of the lease
    (``insight.explain``)."""
    if not open_ended(lease):
        return []
    older = lease.submitted_at
    if verdict != WITHIN:
        return [j for j, _ in waiting_ahead if j.submitted_at <= older]
    ws = lease.workspace
    return [j for j, v in waiting_ahead if j.submitted_at <= older and (j.workspace == ws or v == WITHIN)]


def _shortage_reason_suffix(job: Job, max_size: int, total_free: int, suffix: str) -> str:
    return _shortage_reason(job, max_size, total_free) + suffix


class ShortageAt:
    """The reason of every job a pass leaves waiting for GPUs at the same free
    GPUs and service level: :func:`_shortage_reason_suffix`, the job looked up
    in the pass's queue (``jobs``) when the reason is read.  One is shared by
    all those jobs, so recording one more is a dict entry that allocates
    nothing: the settled tail of a las pass records thousands at each pass, and
    an object kept per job there was most of what the pass made the cycle
    collector walk (docs/benchmarks.md, "Scale of the live service")."""

    __slots__ = ("max_size", "total_free", "suffix", "jobs")

    def __init__(self, max_size: int, total_free: int, suffix: str, jobs: Callable[[str], Job | None]):
        self.max_size, self.total_free, self.suffix, self.jobs = max_size, total_free, suffix, jobs

    def of(self, job_id: str) -> str:
        job = self.jobs(job_id)
        if job is None:  # it left the queue before its reason was read
            return f"waited for GPUs; {self.total_free} GPUs free{self.suffix}"
        return _shortage_reason_suffix(job, self.max_size, self.total_free, self.suffix)


def describe_need(job: Job, max_size: int) -> str:
    g = job.gpus
    if job.gpus_per_node is not None and job.gpus_per_node < g:
        return f"needs {g // job.gpus_per_node} nodes x {job.gpus_per_node} GPUs"
    if g <= max_size or job.gpus_per_node is not None:
        return f"needs {g} GPU{'s' if g != 1 else ''} on one node"
    return f"needs {g} GPUs on whole nodes"


def quota_cap(lim: WorkspaceLimits | None, preemptible: bool = True) -> int | None:
    """The most GPUs a workspace may hold in all for a job (None: no cap):
    no quota, no cap; its quota when it may not borrow (borrowing off, or a
    non-preemptible job); else its quota plus its borrowing limit (Kueue's
    ``nominalQuota + borrowingLimit``), or no cap without a limit."""
    if lim is None or lim.quota is None:
        return None
    if not lim.allow_borrowing or not preemptible:
        return lim.quota
    return None if lim.borrowing_limit is None else lim.quota + lim.borrowing_limit


def quota_verdict(lim: WorkspaceLimits | None, in_use: int, job) -> str:
    """The workspace quota rule, in one place: NO_QUOTA, WITHIN, BORROW or
    BLOCKED for ``job`` (anything with ``gpus`` and ``preemptible``) when its
    workspace holds ``in_use`` GPUs.  Every pass (:meth:`PassState.quota_check`),
    the policies' shortcuts, queue insight, the metrics' pending reason and
    the admission check at submission (``in_use`` 0) ask it."""
    if lim is None or lim.quota is None:
        return NO_QUOTA
    total = in_use + job.gpus
    if total <= lim.quota:
        return WITHIN
    cap = quota_cap(lim, job.preemptible)
    return BLOCKED if cap is not None and total > cap else BORROW


def blocked_args(lim: WorkspaceLimits, used: int, preemptible: bool) -> tuple:
    """The arguments of :func:`_blocked_reason` for a job that :func:`quota_verdict` holds back."""
    limit = lim.borrowing_limit if lim.allow_borrowing and preemptible else None
    return (used, lim.quota, lim.allow_borrowing, limit)


def _blocked_reason(used: int, quota: int, allow_borrowing: bool, borrowing_limit: int | None = None) -> str:
    if not allow_borrowing:
        return f"workspace quota {used}/{quota} in use (borrowing is off)"
    if borrowing_limit is not None:
        return (f"workspace quota {used}/{quota} in use and its borrowing limit reached "
                f"(at most {borrowing_limit} GPUs above the quota)")
    return f"workspace quota {used}/{quota} in use (a non-preemptible job does not borrow)"


def _shortage_reason(job: Job, max_size: int, total_free: int) -> str:
    return f"{describe_need(job, max_size)}; {total_free} GPUs free"


class Reasons(Mapping[str, str]):
    """The waiting reasons of one pass, formatted when read.

    A pass may leave thousands of jobs queued, and most reasons are never
    read (the coordinator does not; the API and insight read a few), so the
    pass records a function and its arguments (values of that moment), or a
    shared :class:`ShortageAt`, and the text is built on first access.  The
    reasons of a settled tail (``las``: the rest of a long queue, where nothing
    can start or be claimed) are not even recorded one by one during the pass:
    :meth:`defer` keeps a function that records them when the mapping is first
    read past what the pass recorded.  Reads like a plain ``dict``."""

    __slots__ = ("_raw", "_rest")

    def __init__(self) -> None:
        self._raw: dict[str, object] = {}
        self._rest: Callable[[dict[str, object]], None] | None = None

    def __setitem__(self, job_id: str, reason: str) -> None:
        self._raw[job_id] = reason

    def later(self, job_id: str, fn: Callable[..., str], args: tuple) -> None:
        self._raw[job_id] = (fn, args)

    def defer(self, rest: Callable[[dict[str, object]], None]) -> None:
        """``rest(raw)`` records the remaining jobs' reasons in ``raw`` when they are first needed."""
        self._rest = rest

    def _all(self) -> dict[str, object]:
        rest = self._rest
        if rest is not None:
            self._rest = None
            rest(self._raw)
        return self._raw

    def __getitem__(self, job_id: str) -> str:
        try:
            v = self._raw[job_id]
        except KeyError:
            if self._rest is None:
                raise
            v = self._all()[job_id]
        if v.__class__ is not str:
            if v.__class__ is ShortageAt:
                v = self._raw[job_id] = v.of(job_id)  # type: ignore[union-attr]
            else:
                fn, args = v  # type: ignore[misc]
                v = self._raw[job_id] = fn(*args)
        return v  # type: ignore[return-value]

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._raw or (self._rest is not None and job_id in self._all())

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

    def __repr__(self) -> str:
        return f"Reasons({dict(self.items())!r})"


class PassState:
    """Working state of one pass.  Mutated only inside the pass."""

    def __init__(self, snap: Snapshot, topology_keys: Sequence[str] = DEFAULT_TOPOLOGY_KEYS):
        self.snap = snap
        self.now = snap.now
        if snap.free_map is not None:
            self.free = copy_freemap(snap.free_map, topology_keys)
        else:
            self.free = FreeMap(snap.nodes, topology_keys)
        if snap.in_use is not None:
            self.in_use: dict[str, int] = dict(snap.in_use)
        else:
            self.in_use = {}
            for a in snap.active:
                ws = a.job.workspace
                self.in_use[ws] = self.in_use.get(ws, 0) + a.job.gpus
        self.any_quota = any(l.quota is not None for l in snap.limits.values())
        self.admits: list[Admit] = []
        self.started: list[tuple[Job, Placement]] = []
        self.preempts: list[Preempt] = []
        self.waiting = Reasons()
        self._by_node: dict[str, list[ActiveJob]] | None = None
        self._hot: dict[str, None] = {}
        self.pending: dict[str, int] = {}
        self.eff_use: dict[str, int] = {}
        # How many times a workspace took more GPUs above its guarantee in this pass: more of
        # its running jobs became victims for other workspaces' jobs (a failed victim search
        # may succeed now).
        self.guarantee_flips = 0
        self.victimized: set[str] = set()
        self._cands: dict[tuple[str, object], list[ActiveJob]] = {}
        # A victim search weighs the first feasible node against this many
        # more, so that it stays O(window) on a large cluster.
        self.victim_window = VICTIM_WINDOW
        # Jobs this pass left waiting for GPUs, in walk order, with their
        # quota verdict (rule 5: open-ended leases may not push them back).
        # Only the first ``lease_guard_depth`` older than a lease are protected
        # from it, of the first ``lease_note_depth`` noted (a lease protects only
        # work submitted before it), so a lease's check stays O(depth x running
        # jobs) on a long queue.
        self.blocked_ahead: list[tuple[Job, str]] = []
        self.lease_guard_depth = LEASE_GUARD_DEPTH
        self.lease_note_depth = LEASE_NOTE_DEPTH

    # -- quotas ----------------------------------------------------------------
    def guarantee(self, ws: str) -> int:
        q = self.snap.limits_for(ws).quota
        return 0 if q is None else q

    def quota_check(self, job: Job) -> str:
        """The workspace's quota verdict for ``job`` (NO_QUOTA, WITHIN, BORROW
        or BLOCKED; :meth:`wait_blocked` records the reason of a BLOCKED job)."""
        return quota_verdict(self.snap.limits.get(job.workspace), self.in_use.get(job.workspace, 0), job)

    def wait_blocked(self, job: Job) -> None:
        lim = self.snap.limits_for(job.workspace)
        self.wait(job.id, _blocked_reason, *blocked_args(lim, self.in_use.get(job.workspace, 0), job.preemptible))

    # -- admitting -------------------------------------------------------------
    def admit(self, job: Job, placement: Placement, borrowed: bool = False) -> None:
        self.free.take(placement)
        self.admits.append(Admit(job.id, placement, borrowed))
        self.started.append((job, placement))
        ws = job.workspace
        self.in_use[ws] = self.in_use.get(ws, 0) + job.gpus
        if self._by_node is not None:
            self._hold_more(ws, job.gpus)

    def shortage(self, job: Job) -> str:
        return _shortage_reason(job, self.free.max_size, self.free.total_free)

    def wait(self, job_id: str, fn: Callable[..., str], *args) -> None:
        """Record why ``job_id`` stays queued: ``fn(*args)``, formatted when read."""
        self.waiting.later(job_id, fn, args)

    def wait_shortage(self, job: Job, suffix: str = "") -> None:
        # Reasons.later without the call: this runs for most queued jobs at every pass.
        self.waiting._raw[job.id] = (_shortage_reason_suffix, (job, self.free.max_size, self.free.total_free, suffix))

    # -- open-ended leases (head-of-line rule 5) ----------------------------------
    def note_blocked(self, job: Job, verdict: str = NO_QUOTA) -> None:
        """Record that the walk left ``job`` waiting for GPUs (not for its
        quota): open-ended leases reached later may not push it back."""
        if len(self.blocked_ahead) < self.lease_note_depth:
            self.blocked_ahead.append((job, verdict))

    def lease_protects(self, lease: Job, verdict: str) -> list[Job]:
        """The waiting jobs ahead that ``lease`` may not push back
        (:func:`lease_protects` over the jobs this pass left waiting, the
        first ``lease_guard_depth`` of them)."""
        return lease_protects(lease, verdict, self.blocked_ahead)[:self.lease_guard_depth]

    def lease_room(self, lease: Job, verdict: str) -> tuple[Placement | None, bool]:
        """Where the open-ended ``lease`` may start now without pushing back
        a job waiting ahead of it: (placement or None, decided).  ``decided``
        False means nothing ahead is protected and the caller goes on as for
        any job (it may start, reserve or preempt as its policy says).
        Otherwise the lease gets a placement outside every protected job's
        reservation, or waits with its reason recorded; it never preempts
        for its GPU while older work waits."""
        protect = self.lease_protects(lease, verdict)
        if not protect:
            return None, False
        fm = self.free
        if fm.find(lease) is None:
            self.wait(lease.id, _behind_reason, protect[0].id, lease, fm.max_size, fm.total_free)
            return None, True
        p, first = self.beside_reservations(lease, protect)
        if p is None:
            j, shadow, label = first
            self.wait(lease.id, _lease_guard_reason, lease, fm.max_size, fm.total_free, j.label,
                      shadow, label)
        return p, True

    def beside_reservations(self, lease: Job, protect: Sequence[Job],
                            ) -> tuple[Placement | None, tuple[Job, float, str] | None]:
        """Where ``lease`` fits among the free GPUs now outside every reservation
        of ``protect`` (computed with leases never ending), and the earliest of those
        reservations ``(job, shadow time, the job whose end makes room)``; where
        none of them can ever fit (no reservation), anywhere free.  The pass
        (:meth:`lease_room`) and the queue's insight (``insight.explain``: a lease
        that fits beside them now is not shown held behind them) ask here."""
        fm = self.free
        excl = copy_freemap(fm)
        first: tuple[Job, float, str] | None = None
        for j in protect:
            r = self.reservation(j, open_ended_never_end=True)
            if r is None:
                continue  # can never fit: nothing to push back
            shadow, where, label = r
            take_available(excl, where)
            if first is None or shadow < first[1]:
                first = (j, shadow, label)
            if excl.total_free == 0:
                break
        p = excl.find(lease)
        if p is None and first is None:
            p = fm.find(lease)
        return p, first

    # -- victims (reclaim and preemption) ----------------------------------------
    def _index(self) -> None:
        if self._by_node is not None:
            return
        by_node: dict[str, list[ActiveJob]] = {}
        for a in self.snap.active:
            if a.stopping:
                for n, g in a.placement.items():
                    self.pending[n] = self.pending.get(n, 0) + len(g)
                continue
            ws = a.job.workspace
            self.eff_use[ws] = self.eff_use.get(ws, 0) + a.job.gpus
            for n in a.placement:
                by_node.setdefault(n, []).append(a)
        # Jobs this pass admitted before its first search hold GPUs too (admit counts the
        # later ones): a workspace they took over its guarantee has jobs open to reclaim and
        # to other workspaces' jobs (shielded).
        for job, _ in self.started:
            self.eff_use[job.workspace] = self.eff_use.get(job.workspace, 0) + job.gpus
        self._by_node = by_node
        # Nodes where something could free up, in node order; exhausted ones
        # leave it (claim), so repeated searches skip them.
        self._hot: dict[str, None] = {
            n: None for n in self.free.names if n in by_node or self.pending.get(n, 0) > 0}

    def pending_total(self) -> int:
        self._index()
        return sum(self.pending.values())

    def _hold_more(self, ws: str, gpus: int) -> None:
        """``ws`` holds ``gpus`` more GPUs (``eff_use``), counting it in ``guarantee_flips``
        when that leaves it above its guarantee, where it has one: more of its jobs are open
        to other workspaces' (:meth:`shielded`; without a guarantee, all of them are anyway)."""
        u = self.eff_use[ws] = self.eff_use.get(ws, 0) + gpus
        q = self.snap.limits_for(ws).quota
        if q is not None and u > q:
            self.guarantee_flips += 1

    def over_guarantee(self, ws: str, lost: int = 0) -> bool:
        """True when the workspace runs above its guarantee (borrowed GPUs), without the
        ``lost`` GPUs a victim search already takes from it."""
        return self.eff_use.get(ws, 0) - lost > self.guarantee(ws)

    def shielded(self, victim: Job, ws: str, lost: int = 0) -> bool:
        """Whether ``victim``, running, is safe from being stopped or moved for a job of
        workspace ``ws`` by service level (``las``): it is another workspace's, which has a
        guarantee and would hold less than it without ``victim``.  Only GPUs borrowed beyond
        the guarantee are open: a workspace over its guarantee by one GPU does not lose a
        4-GPU job (its guaranteed sweep would then take GPUs back at once, ping-pong).  Call
        after :meth:`_index`; ``lost``: GPUs its workspace already loses in the same search.
        Reclaim (:func:`guaranteed_sweep`) is the promise itself: it takes from any
        workspace above its guarantee."""
        vws = victim.workspace
        if vws == ws:
            return False
        q = self.snap.limits_for(vws).quota
        return q is not None and self.eff_use.get(vws, 0) - lost - victim.gpus < q

    def _keeps_guarantee(self, victim: Job, guard: str, lost: dict[str, int]) -> bool:
        """Whether ``victim`` may be taken in a search for a job of workspace ``guard`` that
        already takes ``lost`` GPUs from each workspace (not :meth:`shielded`); if so, its
        GPUs are added to ``lost``."""
        w = victim.workspace
        if self.shielded(victim, guard, lost.get(w, 0)):
            return False
        lost[w] = lost.get(w, 0) + victim.gpus
        return True

    def _still_borrowing(self, victim: Job, lost: dict[str, int]) -> bool:
        """Whether ``victim`` may be reclaimed in a search that already takes ``lost`` GPUs from
        each workspace: its workspace still holds more than its guarantee without them (Kueue's
        rule for reclaiming within a cohort: a candidate only while its ClusterQueue is
        borrowing); if so, its GPUs are added to ``lost``.  Taken past that, the victim would be
        within its own guarantee once queued again, and would reclaim the claimer's GPUs back
        (the claimer's workspace borrowing by then): ping-pong, which the queue's projection
        made at one instant until its cap of events (docs/scheduling.md, "Reclaim takes only
        what is borrowed, too")."""
        w = victim.workspace
        if not self.over_guarantee(w, lost.get(w, 0)):
            return False
        lost[w] = lost.get(w, 0) + victim.gpus
        return True

    def find_victims(self, job: Job, eligible: Callable[[ActiveJob], bool],
                     order: Callable[[ActiveJob], tuple], cache_key: object = None,
                     guard: str | None = None, reclaim: bool = False
                     ) -> tuple[dict[str, int], list[ActiveJob]] | None:
        """Nodes (name -> GPUs the job would use there) and the jobs to stop so
        that ``job`` fits once they are gone; None when impossible.  Prefers
        GPUs already being freed, then the fewest GPUs preempted among the
        first feasible node and the ``victim_window`` nodes after it.

        ``cache_key``: the caller's promise that ``eligible`` and ``order``
        give the same answers for every search of this pass made with the same
        key (LAS: the claimer's level, gate and swap limit), so each node's sorted
        candidates are computed once per key, not once per search.

        ``guard``: the claimer's workspace, where guarantees are kept (``las`` under quotas):
        the victims taken from another workspace with a guarantee leave it at least that
        (:meth:`shielded`, counting what the search already takes from it), however many
        of its jobs ``eligible`` lets through one by one.

        ``reclaim``: a reclaim for a job within its guarantee (:func:`guaranteed_sweep`): each
        victim's workspace is still above its guarantee when the victim is taken, counting
        what the search already takes from it (:meth:`_still_borrowing`)."""
        self._index()
        keep: Callable[[Job, dict[str, int]], bool] | None = (
            (lambda v, lost: self._keeps_guarantee(v, guard, lost)) if guard is not None
            else self._still_borrowing if reclaim else None)
        victimized = self.victimized
        cache = self._cands
        by_node = self._by_node or {}
        pending = self.pending

        def cands_on(name: str) -> Iterable[ActiveJob]:
            if cache_key is None:
                cands = [a for a in by_node.get(name, ()) if a.job.id not in victimized and eligible(a)]
                cands.sort(key=order)
                return cands
            ck = (name, cache_key)
            cands = cache.get(ck)
            if cands is None:
                cands = cache[ck] = sorted([a for a in by_node.get(name, ()) if eligible(a)], key=order)
            return cands

        return pick_victims(self.free, job, self._hot, cands_on, keep, self.victim_window, pending, victimized)

    def claim(self, job: Job, nodes: dict[str, int], victims: list[ActiveJob], reason: str) -> None:
        """Preempt ``victims`` for ``job`` and hold the GPUs it will get: the
        free ones leave the working map, the ones being freed are claimed."""
        fm = self.free
        ws = job.workspace
        # The claimer will hold these GPUs: later quota verdicts of this pass
        # must count them (or a workspace would reclaim beyond its quota).
        self.in_use[ws] = self.in_use.get(ws, 0) + job.gpus
        self._hold_more(ws, job.gpus)
        freed: dict[str, int] = {}
        for a in victims:
            self.victimized.add(a.job.id)
            ws = a.job.workspace
            self.eff_use[ws] = self.eff_use.get(ws, 0) - a.job.gpus
            self.preempts.append(Preempt(a.job.id, reason, for_job=job.id))
            for n, g in a.placement.items():
                freed[n] = freed.get(n, 0) + len(g)
        for n, g in freed.items():
            self.pending[n] = self.pending.get(n, 0) + g
            if n in fm.index and n not in self._hot:
                self._hot[n] = None
        for name, want in nodes.items():
            i = fm.index[name]
            take = min(len(fm.free[i]), want)
            if take:
                fm.take({name: tuple(fm.free[i][:take])})
            rest = want - take
            self.pending[name] = self.pending.get(name, 0) - rest
            if self.pending[name] <= 0 and all(
                    a.job.id in self.victimized for a in (self._by_node or {}).get(name, ())):
                self._hot.pop(name, None)

    # -- EASY reservation ----------------------------------------------------------
    def ends(self, open_ended_never_end: bool = False) -> list[tuple[float, int, Job, Placement]]:
        """(estimated end, tie, job, placement) of every job holding GPUs.
        ``open_ended_never_end``: open-ended leases end at infinity (after
        everything else, in start order) instead of at an estimate."""
        now = self.now
        est = self.snap.estimates.estimate
        out = []
        k = 0
        for a in self.snap.active:
            k += 1
            job = a.job
            if a.stopping:
                out.append((now, k, job, a.placement))
                continue
            if open_ended_never_end and job.kind == "lease" and open_ended(job):
                out.append((INF, k, job, a.placement))
                continue
            out.append((estimated_end(est(job), job, job.attained, a.started_at, now), k, job, a.placement))
        for job, p in self.started:
            k += 1
            if open_ended_never_end and job.kind == "lease" and open_ended(job):
                out.append((INF, k, job, p))
                continue
            # (A job started again after a preemption has its earlier runs' work done.)
            out.append((estimated_end(est(job), job, job.attained, now, now), k, job, p))
        return out

    def reservation(self, head: Job, open_ended_never_end: bool = False,
                    ) -> tuple[float, Placement, str] | None:
        """When and where ``head`` could start if nothing else started:
        (shadow time, its placement then, the job whose end makes room)
        (:func:`reservation_at`, with every job's estimated end, :meth:`ends`)."""
        return reservation_at(self.free, self.ends(open_ended_never_end), head)


def estimated_end(estimate: float, job: Job, attained: float, started_at: float, now: float) -> float:
    """When a pass expects ``job``, running since ``started_at`` with ``attained`` GPU-seconds
    from its earlier runs, to end: after its ``estimate`` (declared or from the history), less
    what it has run; one that has overrun it, after as long again as it has run in all (its
    runs before a preemption too; at least a minute)."""
    ran = attained / job.gpus + now - started_at
    remaining = estimate - ran
    if remaining <= 0:
        # Overran its estimate: expect it to run about as long again as it has run in all
        # (its earlier runs too: a long job restarted a minute ago is not about to end).
        remaining = ran if ran > 60.0 else 60.0
    return now + remaining


def reservation_at(fm: FreeMap, ends: list, head: Job) -> tuple[float, Placement, str] | None:
    """When and where ``head`` could start on ``fm`` (not modified) if nothing else started,
    the jobs of ``ends`` (``(end, tie, job, placement)``, any order; the list is reordered)
    giving their GPUs back at their ends: (shadow time, its placement then, the job whose end
    makes room).  The pass's EASY reservation (:meth:`PassState.reservation`), and the queue's
    projection of it (``insight._project_fifo``).

    Jobs end in estimated order and give their GPUs back until ``head``
    fits.  Only per-node free counts are kept while replaying the ends;
    a placement is computed (the same one ``FreeMap.find`` would return)
    only once the counts say it can exist."""
    heapq.heapify(ends)
    need = head.gpus
    per = head.gpus_per_node
    single = not (per is not None and per < need) and (per is not None or need <= fm.max_size)
    if single and fm.find(head) is None:
        return _reservation_one_node(fm, ends, head)
    index, total = fm.index, fm.total
    counts = [len(f) for f in fm.free]
    # What a multi-node head needs before find() is worth calling: GPUs on
    # fully free nodes (whole-node jobs), or nodes with ``per`` free GPUs.
    full = sum(t for t, c in zip(total, counts) if c == t)
    ok = sum(1 for c in counts if per is not None and c >= per)
    work = copy_freemap(fm)
    tf = fm.total_free
    given: dict[int, list[int]] = {}  # GPUs given back, not yet in ``work``
    while ends:
        end, _, job, p = heapq.heappop(ends)
        for name, gpus in p.items():
            i = index.get(name)
            if i is None:
                continue
            given.setdefault(i, []).extend(gpus)
            c0 = counts[i]
            c1 = counts[i] = c0 + len(gpus)
            tf += len(gpus)
            if c1 == total[i]:
                full += c1
            if per is not None and c0 < per <= c1:
                ok += 1
        if tf < need:
            continue
        if not single:
            if per is not None and per < need:
                if ok < need // per:
                    continue
            elif full < need:
                continue
        names = work.names
        for i, gpus in given.items():
            work.set_free(names[i], [*work.free[i], *gpus])
        given.clear()
        where = work.find(head)
        if where is not None:
            return end, where, job.label
    return None


def _reservation_one_node(fm: FreeMap, ends: list, head: Job) -> tuple[float, Placement, str] | None:
    # No node holds ``head`` now, so the first time one does, it is one
    # of the nodes the last ending job gave GPUs to; among those, best
    # fit (fewest free, then first listed), as FreeMap.find would choose.
    need = head.gpus
    index = fm.index
    counts = [len(f) for f in fm.free]
    given: dict[int, list[int]] = {}
    tf = fm.total_free
    while ends:
        end, _, job, p = heapq.heappop(ends)
        best: tuple[int, int] | None = None
        for name, gpus in p.items():
            i = index.get(name)
            if i is None:
                continue
            given.setdefault(i, []).extend(gpus)
            c = counts[i] = counts[i] + len(gpus)
            tf += len(gpus)
            if c >= need and (best is None or (c, i) < best):
                best = (c, i)
        if best is not None and tf >= need:
            i = best[1]
            gpus = sorted([*fm.free[i], *given[i]])[:need]
            return end, {fm.names[i]: tuple(gpus)}, job.label
    return None


# Nodes a victim search looks at after the first where the job could fit, for a cheaper one.
VICTIM_WINDOW = 32

V = TypeVar("V", bound="_Running")


class _Running(Protocol):
    """What a victim search needs of a running job: the pass's :class:`ActiveJob`, the queue
    projection's holder (``insight._Holder``)."""

    job: Job
    placement: Mapping[str, Sequence[int]]


def pick_victims(fm: FreeMap, job: Job, nodes: Iterable[str], cands_on: Callable[[str], Iterable[V]],
                 keep: Callable[[Job, dict[str, int]], bool] | None, window: int,
                 pending: Mapping[str, int] | None = None, skip: Container[str] = ()
                 ) -> tuple[dict[str, int], list[V]] | None:
    """The one rule of a victim search, for the pass (:meth:`PassState.find_victims`) and the
    queue's projection (``insight._reclaim``): nodes (name -> GPUs ``job`` would use there) and
    the running jobs to stop so that it fits once they are gone; None when impossible.

    Node by node in ``nodes``' order, each node's candidates (``cands_on``: in the order they
    are taken) are taken until the node has room, counting its free GPUs and those already
    being freed there (``pending``), and passing over the jobs in ``skip`` (already stopped by
    this pass); ``keep(victim job, lost)`` (where given) may pass over a
    candidate, and counts what the search takes from each workspace in ``lost`` (fresh for each
    node).  A job on one node takes the node that costs the fewest GPUs stopped, among the
    first feasible one and the ``window`` after it (the first with no waste ends the search); a
    gang over several nodes takes the cheapest nodes, with their victims kept together."""
    need = job.gpus
    per = job.gpus_per_node
    multi = (per is not None and per < need) or (per is None and need > fm.max_size)
    best: tuple | None = None
    node_plans: list[tuple[int, int, str, int, list[V]]] = []
    seen_nodes = 0  # nodes looked at since the first feasible one
    index, total, free = fm.index, fm.total, fm.free
    pending = pending or {}
    for name in nodes:
        if best is not None:
            seen_nodes += 1
            if seen_nodes > window:
                break
        i = index.get(name)
        if i is None:
            continue
        cap = total[i]
        want = (per if per is not None else cap) if multi else need
        if cap < want:
            continue
        have = len(free[i]) + pending.get(name, 0)
        short = want - have  # the least this node could cost
        victims: list[V] = []
        cost = 0
        if have < want:
            lost: dict[str, int] = {}
            for a in cands_on(name):
                if have >= want:
                    break
                if a.job.id in skip:
                    continue
                if keep is not None and not keep(a.job, lost):
                    continue
                victims.append(a)
                have += len(a.placement[name])
                cost += a.job.gpus
            if have < want:
                continue
        if not multi:
            if best is None or cost < best[0]:
                best = (cost, i, name, want, victims)
                if cost <= short or cost == 0:
                    break  # nothing wasted here: no better node to find
        else:
            node_plans.append((cost, i, name, want, victims))
    if not multi:
        if best is None:
            return None
        _, _, name, want, victims = best
        return {name: want}, victims
    node_plans.sort(key=lambda t: (t[0], t[1]))
    chosen: dict[str, int] = {}
    victims_all: list[V] = []
    seen: set[str] = set()
    got = 0
    target = need // per if per is not None else need
    lost_all: dict[str, int] = {}
    for cost, i, name, want, victims in node_plans:
        if got >= target:
            break
        if keep is not None:
            # Each node's victims were chosen alone: together they keep guarantees too.
            trial = dict(lost_all)
            if not all(keep(a.job, trial) for a in victims if a.job.id not in seen):
                continue
            lost_all = trial
        use = want if per is not None else min(want, need - got)
        chosen[name] = use
        for a in victims:
            if a.job.id not in seen:
                seen.add(a.job.id)
                victims_all.append(a)
        got += 1 if per is not None else use
    if got < target:
        return None
    return chosen, victims_all


class Order(Protocol):
    """A policy's queue order for :func:`admission_loop`."""

    def __iter__(self) -> Iterator[Job]: ...
    def __next__(self) -> Job: ...
    def block(self, workspace: str) -> None: ...


def reclaim_order(a: ActiveJob) -> tuple:
    # Newest first (least work lost), then lowest priority.
    return (a.job.priority, -a.started_at, a.job.id)


def guaranteed_sweep(state: PassState, order: Order) -> set[str]:
    """First sweep when quotas exist: admit (or reclaim for) the jobs that
    fit in their workspace's guarantee, in queue order per workspace, before
    any job may borrow.  Otherwise a borrowing job earlier in the queue would
    take back the very GPUs just reclaimed for a guaranteed one.

    This sweep is the only place where GPUs are reclaimed, and a reclaim
    counts the claimer's GPUs as in use for the rest of the pass, so a
    workspace never reclaims more than its guarantee leaves room for.  On the
    next pass the sweep runs first again, so the claimer (still first among
    its workspace's guaranteed jobs) gets the freed GPUs before any borrower:
    reclaim and borrowing cannot undo each other (no preemption ping-pong).
    Nor, in the common case, can two reclaims: a reclaim takes a workspace's
    jobs only while that workspace is still above its guarantee, counting the
    jobs the search already takes from it (Kueue's rule,
    ``find_victims(reclaim=True)``), so the job it stops last is not within
    its workspace's guarantee when queued again (one stopped before it, and
    smaller, may be; it then takes back only what others borrow).
    A job that would borrow does not hold back a smaller job of its own
    workspace that fits in the guarantee; a job the quota blocks does."""
    handled: set[str] = set()
    fm = state.free
    in_use = state.in_use
    passed: set[str] = set()  # workspaces with an earlier job left to the main walk
    for job in order:
        verdict = state.quota_check(job)
        if verdict != WITHIN:
            ws = job.workspace
            if verdict != BORROW or in_use.get(ws, 0) >= state.guarantee(ws):
                order.block(ws)  # nothing later in this workspace fits its guarantee
            else:
                passed.add(ws)
            continue
        if job.kind == "lease" and open_ended(job) and (job.workspace in passed or state.blocked_ahead):
            # Rule 5: an earlier job of its workspace (left to the main
            # walk) or a guaranteed job waiting for GPUs may not be pushed
            # back; the main walk decides, with the lease guard.
            passed.add(job.workspace)
            continue
        handled.add(job.id)
        p = fm.find(job)
        if p is not None:
            state.admit(job, p)
            continue
        found = state.find_victims(
            job, lambda a: a.job.preemptible and a.job.workspace != job.workspace
            and state.over_guarantee(a.job.workspace), reclaim_order, reclaim=True)
        if found is not None:
            nodes, victims = found
            state.claim(job, nodes, victims,
                        f"reclaimed for {job.id}: workspace {job.workspace} is under its quota")
            state.wait(job.id, _reclaim_reason, job, fm.max_size, len(victims))
            continue
        state.wait(job.id, _shortage_reason, job, fm.max_size, fm.total_free)
        state.note_blocked(job, WITHIN)
        order.block(job.workspace)
    return handled


def _reclaim_reason(job: Job, max_size: int, victims: int) -> str:
    return (f"{describe_need(job, max_size)}; within quota, waiting "
            f"for {victims or 'stopping'} borrowed job(s) to stop")


def admission_loop(state: PassState, make_order: Callable[[], Order], hol: str, *,
                   backfill_depth: int = 1000, strict: Callable[[Job], bool] | None = None) -> None:
    """Walk the policy's order admitting jobs, following the head-of-line
    rules in the module docstring.  ``hol``: "block" (fifo, sjf), "reserve"
    (EASY).  ``make_order`` gives a fresh order for each sweep.

    ``strict(head)`` true (fair share's aged jobs): the reserved head has
    waited too long to bet on runtime estimates, so later jobs may use only
    GPUs its reservation does not need.  Otherwise jobs predicted to end
    before the shadow time may borrow them, and when such predictions keep
    failing (history estimates of heavy-tailed runtimes) the shadow time
    slides forward pass after pass and a big head waits for ever."""
    handled = guaranteed_sweep(state, make_order()) if state.any_quota else set()
    order = make_order()
    snap = state.snap
    now = state.now
    fm = state.free
    blocked = False          # a GPU shortage stopped the normal walk
    shadow: float | None = None
    excl: FreeMap | None = None
    head_label = ""
    head_id = ""
    examined = 0
    any_quota = state.any_quota
    verdict = NO_QUOTA
    # Within a pass the free maps only shrink, so a one-node job that did
    # not fit makes every one-node job at least as large fail too.
    max_size = fm.max_size
    fail_fm = fail_excl = 1 << 30
    head_strict = False
    for job in order:
        if job.id in handled:
            continue
        if any_quota:
            verdict = state.quota_check(job)
            if verdict == BLOCKED:
                state.wait_blocked(job)
                order.block(job.workspace)
                continue
        if blocked and verdict != WITHIN:
            if not state.any_quota:
                break
            state.wait(job.id, _behind_reason, head_id, job, fm.max_size, fm.total_free)
            order.block(job.workspace)
            continue
        if state.blocked_ahead and job.kind == "lease" and open_ended(job):
            p, decided = state.lease_room(job, verdict)
            if decided:
                if p is not None:
                    state.admit(job, p, verdict == BORROW)
                    if excl is not None:
                        take_available(excl, p)
                continue
        if excl is not None and verdict != WITHIN:
            # Backfill candidate: must not delay the reserved head job.
            examined += 1
            if examined > backfill_depth or fm.total_free == 0 or (head_strict and excl.total_free == 0):
                blocked = True
                if not state.any_quota:
                    break
                order.block(job.workspace)
                continue
            est_end = now + snap.estimates.estimate(job) - job.attained / job.gpus
            g = job.gpus
            per = job.gpus_per_node
            one_node = (g <= max_size) if per is None else per >= g
            if est_end <= shadow and not head_strict:
                p, fail_fm = _find_unless_known_to_fail(fm, job, one_node, fail_fm)
            else:
                p, fail_excl = _find_unless_known_to_fail(excl, job, one_node, fail_excl)
            if p is not None:
                state.admit(job, p, verdict == BORROW)
                take_available(excl, p)
            else:
                state.wait(job.id, _backfill_reason, job, fm.max_size, fm.total_free, head_id,
                           shadow, head_label)
                state.note_blocked(job, verdict)
            continue
        p = fm.find(job)
        if p is not None:
            state.admit(job, p, verdict == BORROW)
            if excl is not None:
                take_available(excl, p)
            continue
        if excl is not None or blocked:
            state.wait_shortage(job)
            state.note_blocked(job, verdict)
            continue
        head_id = job.id
        state.note_blocked(job, verdict)
        if hol == "reserve" and fm.total_free > 0:
            r = state.reservation(job)
            if r is not None:
                shadow, where, head_label = r
                head_strict = strict is not None and strict(job)
                excl = copy_freemap(fm)
                take_available(excl, where)
                state.wait(job.id, _reserved_reason, job, fm.max_size, fm.total_free, shadow,
                           head_label)
                continue
        state.wait_shortage(job)
        blocked = True
        if not state.any_quota:
            break


def _find_unless_known_to_fail(free: FreeMap, job: Job, one_node: bool,
                               fails_from: int) -> tuple[Placement | None, int]:
    """``free.find(job)`` and the new ``fails_from``: the size from which one-node jobs are known
    not to fit on ``free`` this pass (the free maps only shrink within a pass), so that such a job
    is not searched for again."""
    if one_node and job.gpus >= fails_from:
        return None, fails_from
    p = free.find(job)
    return p, (job.gpus if p is None and one_node else fails_from)


def _behind_reason(head_id: str, job: Job, max_size: int, total_free: int) -> str:
    return f"behind {head_id} ({_shortage_reason(job, max_size, total_free)})"


def _lease_guard_reason(job: Job, max_size: int, total_free: int, ahead: str, shadow: float,
                        ending: str) -> str:
    when = (f"reserved for {clock(shadow)} when {ending} ends" if shadow != INF
            else f"which can start only when {ending} ends")
    return (f"{_shortage_reason(job, max_size, total_free)}; a notebook has no known end, so it "
            f"may not delay {ahead}, ahead of it in the queue ({when})")


def _backfill_reason(job: Job, max_size: int, total_free: int, head_id: str, shadow: float,
                     head_label: str) -> str:
    return (f"{_shortage_reason(job, max_size, total_free)}; may not delay {head_id}, "
            f"reserved for {clock(shadow)} when {head_label} ends")


def _reserved_reason(job: Job, max_size: int, total_free: int, shadow: float, head_label: str) -> str:
    return (f"{_shortage_reason(job, max_size, total_free)}; reserved, estimated start "
            f"{clock(shadow)} when {head_label} ends")


def clock(t: float | None) -> str:
    """A time for people: UTC wall-clock for Unix times, "day N HH:MM" for
    the simulator's small virtual times.  (gmtime is pure: no clock read.)"""
    if t is None:
        return "unknown"
    if t >= 1e8:
        return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t))
    t = int(t)
    days, rem = divmod(t, 86400)
    hh, rem = divmod(rem, 3600)
    mm = rem // 60
    return f"{hh:02d}:{mm:02d}" if days == 0 else f"day {days} {hh:02d}:{mm:02d}"


def idle_pass(snap: Snapshot) -> bool:
    """True when a non-preemptive pass cannot change anything: no GPU is
    free and no quota gives any job a right to reclaim.  Policies return no
    decisions then, which keeps a busy cluster's passes O(nodes)."""
    if snap.free_map is not None:
        if snap.free_map.total_free:
            return False
    else:
        for n in snap.nodes:
            if n.free and n.schedulable:
                return False
    return not any(l.quota is not None for l in snap.limits.values())


def decisions(state: PassState, wake_at: float | None = None) -> Decisions:
    return Decisions(tuple(state.admits), tuple(state.preempts), state.waiting, wake_at)

"""The queue's start-time projection, computed once per change and shared by requests.

``GET /queue``, ``GET /jobs`` and ``GET /jobs/{id}`` each need the whole queue's
projection (:func:`.scheduling.insight.explain`: positions, reasons, estimated starts),
which costs ~160 ms of CPU over 10,000 queued jobs.  :class:`SharedInsight` keeps the
last one, keyed on a version of two parts that the runtime counts.

The first part counts the changes that move jobs already queued (cancels, priorities,
holds, requeues, limits that changed): after one, the next request always recomputes, so
that whoever made the change sees it. The second counts the flow: the scheduler's passes,
and submissions, which join the queue's end. A cheap projection is recomputed after flow,
and when it is ``max_age`` seconds old (estimates move with the clock even when nothing
changed). On a long queue, under load, passes come every few hundred ms and submissions
dozens a second while a projection costs ~160 ms or more, so recomputing after each would
let readers spend most of a core on projections. A projection that cost at least
``EXPENSIVE_SECONDS`` is therefore reused, after flow or for age, until it is
``COST_FACTOR`` times its own cost old (and at least ``max_age``): recomputation for flow
and age then spends at most about 1 / ``COST_FACTOR`` of a core, 4% (a projection of 200 ms,
over 10,000 queued on a loaded machine, is kept up to 5 s, the interval of Kueue's own
snapshot below). With a factor of 10 the projections were nearly a fifth of the jobqueue's
CPU over Kueue's 15,000 workloads (docs/benchmarks.md, "Scale of the live service"). A job
that a pass started meanwhile is still in a reused projection, so readers show only the jobs
that are still waiting. A reader that asks for a job the reused projection does not have
(``get(require=...)``: a job just submitted) gets a new one while projections are cheap; an
expensive one is shared within its bound all the same, and such a job shows no place in the
queue until the next projection (at most ``COST_FACTOR`` times its cost later). Otherwise a
reader polling jobs just submitted recomputed the whole queue at each read: over Kueue's
15,000 workloads its ``GET /jobs/{id}`` did, two thirds of all the projections' CPU
(docs/benchmarks.md, "Scale of the live service"). Kueue's own pending-workloads status is
likewise a snapshot refreshed every few seconds (``queueVisibility.updateIntervalSeconds``,
5 s by default in its configuration API).

The computation runs on the loop thread with no await inside, so requests arriving
together share one computation: the first computes, the others find it cached.  The
result is the whole queue; each request filters it (workspace, permission) after.
Callers must not mutate the dict returned.
"""

from __future__ import annotations

import time
from typing import Callable, Generic, Hashable, Iterable, TypeVar

T = TypeVar("T")
MAX_AGE_SECONDS = 2.0
EXPENSIVE_SECONDS = 0.02
COST_FACTOR = 25.0


class SharedInsight(Generic[T]):
    """``version()`` returns ``(changes, flow)``: see the module's docstring."""

    def __init__(self, compute: Callable[[], T], version: Callable[[], tuple[Hashable, Hashable]], *,
                 max_age: float = MAX_AGE_SECONDS, clock: Callable[[], float] = time.monotonic,
                 cpu_clock: Callable[[], float] = time.thread_time):
        self._compute, self._version, self._clock, self._cpu_clock = compute, version, clock, cpu_clock
        self.max_age = max_age
        # (version, computed at, value, CPU seconds it cost)
        self._cached: tuple[tuple[Hashable, Hashable], float, T, float] | None = None
        self.computed = 0  # how many projections were made (tests, metrics)

    def _fresh_enough(self, key: tuple[Hashable, Hashable], now: float) -> bool:
        cached = self._cached
        if cached is None:
            return False
        (changes, flow), at, _, cost = cached
        age = now - at
        # how long an expensive projection is kept: never recomputed more often than once in
        # COST_FACTOR times what it costs, for flow or for age
        bound = COST_FACTOR * cost if cost >= EXPENSIVE_SECONDS else 0.0
        if key[0] != changes:
            return False
        if key[1] == flow:
            return age < max(self.max_age, bound)
        return age < bound

    def get(self, require: Iterable[Hashable] = ()) -> T:
        """The projection; ``require``: keys a reused cheap one must hold (else it is computed
        again; an expensive one is reused within its bound without them: module docstring)."""
        key, now = self._version(), self._clock()
        if self._fresh_enough(key, now):
            value = self._cached[2]
            if self._cached[3] >= EXPENSIVE_SECONDS or all(k in value for k in require):
                return value
        began = self._cpu_clock()
        value = self._compute()
        self.computed += 1
        # keyed on the version read before computing: a change made meanwhile moves it, and
        # the next caller recomputes
        self._cached = (key, now, value, self._cpu_clock() - began)
        return value

    def invalidate(self) -> None:
        self._cached = None

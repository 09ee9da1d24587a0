"""The queue's start-time projection, computed once per change and shared by requests.

``GET /queue``, ``GET /jobs`` and ``GET /jobs/{id}`` each need the whole queue's
projection (:func:`.scheduling.insight.explain`: positions, reasons, estimated starts),
which costs ~160 ms of CPU over 10,000 queued jobs.  :class:`SharedInsight` keeps the
last one, keyed on a version the runtime bumps on every change of the queue's state
(a submission, cancel, priority change, requeue, hold, limits change) and every
scheduler pass, and recomputes it when that version moved or the copy is older than
``max_age`` seconds (estimates move with the clock even when nothing changed).

The computation runs on the loop thread with no await inside, so requests arriving
together share one computation: the first computes, the others find it cached.  The
result is the whole queue; each request filters it (workspace, permission) after.
Callers must not mutate the dict returned.
"""

from __future__ import annotations

import time
from typing import Callable, Generic, Hashable, TypeVar

T = TypeVar("T")
MAX_AGE_SECONDS = 2.0


class SharedInsight(Generic[T]):
    def __init__(self, compute: Callable[[], T], version: Callable[[], Hashable], *,
                 max_age: float = MAX_AGE_SECONDS, clock: Callable[[], float] = time.monotonic):
        self._compute, self._version, self._clock = compute, version, clock
        self.max_age = max_age
        self._cached: tuple[Hashable, float, T] | None = None
        self.computed = 0  # how many projections were made (tests, metrics)

    def get(self) -> T:
        key, now = self._version(), self._clock()
        cached = self._cached
        if cached is not None and cached[0] == key and now - cached[1] < self.max_age:
            return cached[2]
        value = self._compute()
        self.computed += 1
        # keyed on the version read before computing: a change made meanwhile moves it, and
        # the next caller recomputes
        self._cached = (key, now, value)
        return value

    def invalidate(self) -> None:
        self._cached = None

"""Runtime estimates for reservations when a job declares no ``max_runtime``.

A job's estimate is its declared ``max_runtime`` when it has one; otherwise
the running median of the last ``window`` completed runtimes of jobs of the
same workspace and size class (GPU count rounded up to a power of two),
falling back to the size class across workspaces, then to all jobs, then to
``default``.  The coordinator feeds it each completed job's run time
(``observe``); the core only reads it (``estimate``), so a pass stays pure.
Never the true duration of the job being estimated.
"""

from __future__ import annotations

from bisect import insort
from collections import deque

from .types import Job


def size_class(gpus: int) -> int:
    return 1 << max(0, gpus - 1).bit_length()


class _Window:
    __slots__ = ("recent", "ordered", "median")

    def __init__(self) -> None:
        self.recent: deque[float] = deque()
        self.ordered: list[float] = []
        self.median = 0.0

    def add(self, value: float, window: int) -> None:
        self.recent.append(value)
        insort(self.ordered, value)
        if len(self.recent) > window:
            old = self.recent.popleft()
            self.ordered.remove(old)
        self.median = self.ordered[len(self.ordered) // 2]


class HistoryEstimates:
    def __init__(self, default: float = 3600.0, window: int = 101, min_samples: int = 3):
        self.default = default
        self.window = window
        self.min_samples = min_samples
        self._by_key: dict[tuple, _Window] = {}
        self._memo: dict[tuple[str, int], float] = {}

    def observe(self, job: Job, runtime: float) -> None:
        """Record the total run time (seconds, all runs together) of a job
        that completed successfully."""
        self._memo.clear()
        c = size_class(job.gpus)
        for key in ((job.workspace, c), ("", c), ("", 0)):
            w = self._by_key.get(key)
            if w is None:
                w = self._by_key[key] = _Window()
            w.add(runtime, self.window)

    def estimate(self, job: Job) -> float:
        if job.max_runtime is not None:
            return job.max_runtime
        memo_key = (job.workspace, job.gpus)
        v = self._memo.get(memo_key)
        if v is not None:
            return v
        v = self.default
        c = size_class(job.gpus)
        for key in ((job.workspace, c), ("", c), ("", 0)):
            w = self._by_key.get(key)
            if w is not None and len(w.recent) >= self.min_samples:
                v = w.median
                break
        self._memo[memo_key] = v
        return v

"""The simulated execution backend and its virtual clock.

Jobs "run" for their true duration (known only here, never to the
scheduler), resume from a checkpoint after a preemption (progress kept), and
pay ``restart_cost`` seconds of GPU time at each resume (reloading the
checkpoint, warming up).  A stop request lets the job run ``grace_seconds``
more (its time to checkpoint), then reports :class:`Stopped`.  The backend
also records the ground truth the replay reports (first start, finish, busy
GPU-seconds).
"""

from __future__ import annotations

import heapq
from typing import Mapping

from ..ports import BackendEvent, Exited, Started, Stopped
from ..scheduling.types import Job, Placement


class VirtualClock:
    def __init__(self, now: float = 0.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


class SimBackend:
    def __init__(self, durations: Mapping[str, float], clock: VirtualClock, restart_cost: float = 0.0):
        self.durations = durations
        self.clock = clock
        self.restart_cost = restart_cost
        self._heap: list[tuple[float, int, str, str, int]] = []
        self._seq = 0
        self._immediate: list[BackendEvent] = []
        self._run: dict[str, tuple[int, float, float, int]] = {}  # id -> (run no, start, overhead, gpus)
        self._runs = 0
        self.done: dict[str, float] = {}          # progress (seconds of useful work)
        self.first_start: dict[str, float] = {}
        self.finished: dict[str, float] = {}
        self.busy_gpu_seconds = 0.0
        self.busy_by_job: dict[str, float] = {}

    def _push(self, t: float, kind: str, job_id: str, run: int) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t, self._seq, kind, job_id, run))

    def start(self, job: Job, placement: Placement) -> None:
        if job.id in self._run:
            return
        now = self.clock.now
        self._runs += 1
        overhead = self.restart_cost if job.id in self.done else 0.0
        left = self.durations[job.id] - self.done.get(job.id, 0.0)
        self._run[job.id] = (self._runs, now, overhead, job.gpus)
        self.first_start.setdefault(job.id, now)
        self._immediate.append(Started(job.id, now))
        self._push(now + overhead + max(0.0, left), "exit", job.id, self._runs)

    def _close(self, job_id: str, at: float) -> None:
        run, start, overhead, gpus = self._run.pop(job_id)
        self.busy_gpu_seconds += gpus * (at - start)
        self.busy_by_job[job_id] = self.busy_by_job.get(job_id, 0.0) + gpus * (at - start)
        self.done[job_id] = self.done.get(job_id, 0.0) + max(0.0, at - start - overhead)

    def stop(self, job_id: str, grace_seconds: float, reason: str) -> None:
        r = self._run.get(job_id)
        if r is None:
            return
        self._push(self.clock.now + grace_seconds, "stop", job_id, r[0])

    def next_event_time(self) -> float | None:
        while self._heap:
            t, _, kind, job_id, run = self._heap[0]
            r = self._run.get(job_id)
            if r is not None and r[0] == run:
                return t
            heapq.heappop(self._heap)  # stale: that run already ended
        return None

    def poll_events(self) -> list[BackendEvent]:
        out: list[BackendEvent] = self._immediate
        self._immediate = []
        now = self.clock.now
        heap = self._heap
        while heap and heap[0][0] <= now:
            t, _, kind, job_id, run = heapq.heappop(heap)
            r = self._run.get(job_id)
            if r is None or r[0] != run:
                continue
            self._close(job_id, t)
            if kind == "exit":
                self.finished[job_id] = t
                out.append(Exited(job_id, t, 0))
            else:
                out.append(Stopped(job_id, t))
        return out

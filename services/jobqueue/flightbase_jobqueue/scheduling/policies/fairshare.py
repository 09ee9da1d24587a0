"""``fairshare``: weighted fair share across workspaces, with guaranteed quotas.

Order: the next job comes from the workspace that deserves it most: first
the workspaces below their guaranteed quota, then the one with the least
``(decayed GPU-seconds + GPUs held now x horizon) / weight``.  Within a
workspace, queue order (priorities first).  Usage decays with a half-life
(:mod:`..usage`), so a team that ran a lot last week is not punished
forever.  A workspace may run above its quota on idle GPUs (borrowing, when
allowed); when a workspace under its quota needs GPUs, borrowed preemptible
jobs are preempted to give them back (reclaim).  The first job blocked by a
GPU shortage gets an EASY reservation; later jobs backfill around it.
Jobs queued longer than ``starve_after`` go first, oldest first (aging),
and the reservation of such a job is strict: nothing predicted to end
before its start time may use its GPUs (runtime predictions that keep
failing would otherwise postpone it pass after pass), so a big job of a
busy workspace cannot wait forever.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Iterator, Mapping

from ..core import PassState, idle_pass, admission_loop, decisions
from ..types import Decisions, Job, Snapshot, WorkspaceLimits
from .base import Policy


def share_parts(lim: WorkspaceLimits, usage: float) -> tuple[int | None, float, float]:
    """A workspace's part of the order key that a pass does not change: (quota, decayed usage,
    weight), from its limits and its usage.  The pass's, and the queue's projection's
    (``insight._Shares``)."""
    return (lim.quota, usage, max(lim.weight, 1e-9))


class FairShareOrder:
    def __init__(self, state: PassState, horizon: float, starve_after: float,
                 static: Mapping[str, tuple[int | None, float, float]] | None = None):
        """``static``: each workspace's (quota, usage, weight), where the caller keeps them
        (the queue's projection, at each of its moments); else read from the snapshot."""
        self.state = state
        self.horizon = horizon
        view = state.snap.queue
        # Aging: jobs queued longer than starve_after go first, oldest first,
        # so the first of them that is blocked holds the EASY reservation and
        # no job waits forever behind lighter workspaces.
        cutoff = state.now - starve_after
        self._aged: list[Job] = []
        for job in view:
            if job.submitted_at > cutoff:
                break
            if job.queued_since <= cutoff:
                self._aged.append(job)
        self._aged_pos = 0
        self._served: set[str] = {j.id for j in self._aged}
        self._jobs = {ws: view.in_workspace(ws) for ws in view.workspaces()}
        # What the order key needs that does not change during the pass.
        if static is None:
            snap = state.snap
            static = {}
            for ws in self._jobs:
                static[ws] = share_parts(snap.limits_for(ws), snap.usage.get(ws, 0.0))
        self._static = static
        self._pos = dict.fromkeys(self._jobs, 0)
        self._blocked: set[str] = set()
        self._heap = [(self._key(ws), ws) for ws in self._jobs]
        heapq.heapify(self._heap)
        self._pending: str | None = None

    def _key(self, ws: str) -> tuple:
        quota, usage, weight = self._static[ws]
        held = self.state.in_use.get(ws, 0)
        under = 0 if quota is not None and held < quota else 1
        share = (usage + held * self.horizon) / weight
        return (under, share, ws)

    def block(self, workspace: str) -> None:
        self._blocked.add(workspace)

    def __iter__(self) -> Iterator[Job]:
        return self

    def __next__(self) -> Job:
        while self._aged_pos < len(self._aged):
            job = self._aged[self._aged_pos]
            self._aged_pos += 1
            if job.workspace not in self._blocked:
                return job
        ws = self._pending
        if ws is not None:
            self._pending = None
            if ws not in self._blocked:
                self._pos[ws] += 1
                if self._pos[ws] < len(self._jobs[ws]):
                    heapq.heappush(self._heap, (self._key(ws), ws))
        while self._heap:
            _, ws = heapq.heappop(self._heap)
            if ws in self._blocked:
                continue
            jobs, pos = self._jobs[ws], self._pos[ws]
            while pos < len(jobs) and jobs[pos].id in self._served:
                pos += 1
            self._pos[ws] = pos
            if pos >= len(jobs):
                continue
            self._pending = ws
            return jobs[pos]
        raise StopIteration


@dataclass(frozen=True)
class FairSharePolicy(Policy):
    horizon: float = 3600.0
    starve_after: float = 24 * 3600.0
    depth: int = 1000
    # False: an aged job's reservation may still be backfilled on estimates
    # (better average JCT under overload, but no bound on waits; see
    # docs/benchmarks.md, "Scheduler").
    strict_aging: bool = True
    name = "fairshare"

    def schedule(self, snap: Snapshot) -> Decisions:
        if idle_pass(snap):
            return Decisions()
        state = PassState(snap, self.topology_keys)
        cutoff = snap.now - self.starve_after
        strict = (lambda head: head.queued_since <= cutoff) if self.strict_aging else None
        admission_loop(state, lambda: FairShareOrder(state, self.horizon, self.starve_after), "reserve",
                       backfill_depth=self.depth, strict=strict)
        return decisions(state)

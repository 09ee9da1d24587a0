"""``sjf``: shortest (declared or estimated) job first, non-preemptive, with
EASY backfilling behind the first blocked job.

With the simulator's ``sjf-oracle`` the true durations are declared as each
job's ``max_runtime``: a reference point no real scheduler can reach, since
it knows the future.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from ..core import PassState, idle_pass, admission_loop, decisions
from ..types import Decisions, Job, Snapshot
from .base import Policy


class ListOrder:
    """A precomputed order with per-workspace blocking."""

    def __init__(self, jobs: list[Job]):
        self._it = iter(jobs)
        self._blocked: set[str] = set()

    def block(self, workspace: str) -> None:
        self._blocked.add(workspace)

    def __iter__(self) -> Iterator[Job]:
        return self

    def __next__(self) -> Job:
        for job in self._it:
            if job.workspace not in self._blocked:
                return job
        raise StopIteration


def sjf_key(est, job: Job) -> tuple:
    """A queued job's place in ``sjf``'s order (``est``: the estimates' ``estimate``): the
    shortest expected remaining run first, then first come first served.  The pass's and the
    queue's projection's (``insight._project_fifo``)."""
    return (est(job) - job.attained / job.gpus, job.submitted_at, job.id)


@dataclass(frozen=True)
class SjfPolicy(Policy):
    depth: int = 1000
    name = "sjf"

    def schedule(self, snap: Snapshot) -> Decisions:
        if idle_pass(snap):
            return Decisions()
        est = snap.estimates.estimate
        jobs = sorted(snap.queue.jobs(), key=lambda j: sjf_key(est, j))
        state = PassState(snap, self.topology_keys)
        admission_loop(state, lambda: ListOrder(jobs), "reserve", backfill_depth=self.depth)
        return decisions(state)

"""``backfill``: FIFO with EASY backfilling.

The first job blocked by a GPU shortage gets a reservation: the earliest
time enough GPUs free up for it, computed from each running job's declared
``max_runtime`` or, failing that, a history-based estimate
(:mod:`..estimates`), never its true duration.  Later jobs start only if they
end (by the same estimates) before that time or use GPUs the reservation
does not need.  ``depth`` bounds how many jobs behind the head one pass looks
at (Slurm's ``bf_max_job_test``), so a pass stays cheap on a long queue.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core import PassState, idle_pass, admission_loop, decisions
from ..types import Decisions, Snapshot
from .base import Policy


@dataclass(frozen=True)
class BackfillPolicy(Policy):
    depth: int = 1000
    name = "backfill"

    def schedule(self, snap: Snapshot) -> Decisions:
        if idle_pass(snap):
            return Decisions()
        state = PassState(snap, self.topology_keys)
        admission_loop(state, snap.queue.cursor, "reserve", backfill_depth=self.depth)
        return decisions(state)

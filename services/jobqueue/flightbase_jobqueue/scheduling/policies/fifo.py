"""``fifo``: strict queue order; a GPU shortage blocks everything behind it
(except jobs within their workspace's guarantee, which may reclaim)."""

from __future__ import annotations

from dataclasses import dataclass

from ..core import PassState, idle_pass, admission_loop, decisions
from ..types import Decisions, Snapshot
from .base import Policy


@dataclass(frozen=True)
class FifoPolicy(Policy):
    name = "fifo"

    def schedule(self, snap: Snapshot) -> Decisions:
        if idle_pass(snap):
            return Decisions()
        state = PassState(snap, self.topology_keys)
        admission_loop(state, snap.queue.cursor, "block")
        return decisions(state)

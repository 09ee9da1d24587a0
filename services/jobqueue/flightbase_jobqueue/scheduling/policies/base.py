"""What every policy shares: configuration of placement, and the entry point."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..placement import DEFAULT_TOPOLOGY_KEYS
from ..types import Decisions, Snapshot


@dataclass(frozen=True)
class Policy:
    """A scheduling policy: ``schedule(snapshot) -> decisions``, pure.

    ``preemptive``: the policy may preempt for reasons other than quota
    reclaim (the simulator and insight use it to describe the policy).
    """

    topology_keys: Sequence[str] = DEFAULT_TOPOLOGY_KEYS
    name = "policy"
    preemptive = False

    def schedule(self, snap: Snapshot) -> Decisions:  # pragma: no cover - abstract
        raise NotImplementedError

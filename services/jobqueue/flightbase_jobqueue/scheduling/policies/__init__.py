"""The scheduling policies, by configuration name.

``make_policy(name, **options)`` is the only way the composition root and
the simulator get a policy; an unknown name raises :class:`UnknownPolicy`
listing the known ones (a configuration error, never a silent fallback).

Default: ``las`` (see docs/benchmarks.md, "## Scheduler", for the figures
behind that choice).
"""

from __future__ import annotations

from .backfill import BackfillPolicy
from .base import Policy
from .fairshare import FairSharePolicy
from .fifo import FifoPolicy
from .las import LasPolicy
from .sjf import SjfPolicy

POLICIES: dict[str, type[Policy]] = {
    "fifo": FifoPolicy,
    "backfill": BackfillPolicy,
    "fairshare": FairSharePolicy,
    "las": LasPolicy,
    "sjf": SjfPolicy,
}

DEFAULT_POLICY = "las"


class UnknownPolicy(ValueError):
    def __init__(self, name: str):
        super().__init__(f"unknown scheduling policy {name!r}; known policies: {', '.join(sorted(POLICIES))}")
        self.name = name


def make_policy(name: str, **options) -> Policy:
    try:
        cls = POLICIES[name]
    except KeyError:
        raise UnknownPolicy(name) from None
    return cls(**options)


__all__ = ["POLICIES", "DEFAULT_POLICY", "Policy", "UnknownPolicy", "make_policy",
           "FifoPolicy", "BackfillPolicy", "FairSharePolicy", "LasPolicy", "SjfPolicy"]

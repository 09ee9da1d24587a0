"""The pure scheduling core: snapshot in, decisions out.  See ``core.py``
for a map of the package and the head-of-line rules."""

from .placement import DEFAULT_TOPOLOGY_KEYS, FreeMap, check_admissible
from .policies import DEFAULT_POLICY, POLICIES, Policy, UnknownPolicy, make_policy
from .queueview import QueueView
from .types import (ActiveJob, Admit, Decisions, DeclaredOrDefault, Job, Node, Placement, Preempt,
                    Snapshot, WorkspaceLimits, lease)

__all__ = [
    "ActiveJob", "Admit", "Decisions", "DeclaredOrDefault", "Job", "Node", "Placement", "Preempt",
    "Snapshot", "WorkspaceLimits", "lease", "QueueView", "FreeMap", "check_admissible",
    "DEFAULT_TOPOLOGY_KEYS", "DEFAULT_POLICY", "POLICIES", "Policy", "UnknownPolicy", "make_policy",
]

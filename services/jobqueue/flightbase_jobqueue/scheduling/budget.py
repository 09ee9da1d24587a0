"""The preemption budget (issue #17, part 3): at most so many preemptions per job.

Every preemption costs its job a checkpoint and a restart.  The coordinator keeps a
:class:`PreemptionLedger`: over the last ``window`` seconds (14 days, the length of the replays
the budget is measured on), the jobs that started for the first time and the jobs the scheduler
stopped for another (moves included).  It hands both counts to every pass
(``Snapshot.preemption_counts``), and :func:`credit` says how many more preemptions a pass may
make: the budget per job times the first starts, less the preemptions, rounded down.  ``las``
(its option ``preemption_budget``, the operator's ``FLIGHTBASE_PREEMPTION_BUDGET``; 0.24 by
default: docs/scheduling.md, "A preemption budget", says what it costs) spends it on the
preemptions it makes by choice (for a job of a lower service level, and the moves that gather
a gang's GPUs); those owed to a promise are not held to it but are counted: a job at its
starvation limit (with nothing preempted for it, every job behind it waits too), a job within
its workspace's guarantee, a notebook lease (someone at the screen).  When the credit is
spent, the other jobs wait for GPUs to free up instead, as they do while every running job is
within ``min_run``.  Before that, its first step: once the preemptions reach ``rerun_share``
(0.8) of the budget, a job restarted after a preemption is protected ``min_rerun`` (2 h)
instead of ``min_run`` from all but the owed preemptions (``LasPolicy.protections``), so that
long jobs take turns less often and the credit is left for new jobs.

A young cluster's allowance: the budget counts at least ``MIN_STARTS`` (100) first starts, so
that a cluster that has started few jobs in the last 14 days (a new one, a quiet team) still
has a few preemptions to make (0.24 x 100: 24) instead of none.

Why it bounds a whole replay, not only each window: in any ``window`` the preemptions by choice
are at most the budget times the first starts of that window; cover a replay with back-to-back
windows and sum (plus the allowance, once, in a window with fewer than ``MIN_STARTS``
first starts).  The owed ones are the only way past it.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Iterable

from .core import WITHIN
from .types import Job

#: Counted over the last 14 days.
WINDOW = 14 * 86400.0
#: The budget counts at least this many first starts (a young cluster's allowance).
MIN_STARTS = 100


class PreemptionLedger:
    def __init__(self, window: float = WINDOW) -> None:
        self.window = window
        self._starts: deque[float] = deque()
        self._preemptions: deque[float] = deque()

    def restore(self, starts: Iterable[float], preemptions: Iterable[float]) -> None:
        """The ledger as the store has it (start-up): first starts and preemptions, in any order."""
        self._starts = deque(sorted(starts))
        self._preemptions = deque(sorted(preemptions))

    def started(self, at: float) -> None:
        """A job started for the first time."""
        self._starts.append(at)

    def preempted(self, at: float) -> None:
        """The scheduler stopped a job for another."""
        self._preemptions.append(at)

    def counts(self, now: float) -> tuple[int, int]:
        """(first starts, preemptions) in the last ``window`` seconds."""
        since = now - self.window
        for q in (self._starts, self._preemptions):
            while q and q[0] < since:
                q.popleft()
        return len(self._starts), len(self._preemptions)


def first_start(job: Job) -> bool:
    """Whether starting ``job`` now adds to the budget: a training's job never started before
    (not a restart, not a notebook lease)."""
    return not job.restarts and job.kind != "lease"


def owed(job: Job, level: int, verdict: str | None = None) -> bool:
    """Whether a preemption for ``job`` (at service ``level``, -1 when starving; with its quota
    ``verdict`` where known) is owed to a promise and so not held to the budget: a starving job,
    a job within its workspace's guarantee, a notebook lease."""
    return level < 0 or verdict == WITHIN or job.kind == "lease"


def allowance(per_job: float, starts: int) -> float:
    """How many preemptions the last 14 days may hold with ``starts`` first starts in them:
    ``per_job`` for each, and never fewer than for ``MIN_STARTS``."""
    return per_job * max(starts, MIN_STARTS)


def credit(per_job: float | None, counts: tuple[int, int] | None) -> float:
    """How many more preemptions by choice a pass may make (``inf``: no budget, or no ledger)."""
    if per_job is None or counts is None:
        return math.inf
    starts, preemptions = counts
    return max(0, math.floor(allowance(per_job, starts) + 1e-9) - preemptions)


def first_step_reason(rerun: float, min_run: float) -> str:
    """What a job held to the budget is told while its first step keeps restarted jobs running
    (the pass's reason and the queue's)."""
    return ("the preemption budget is nearly spent (FLIGHTBASE_PREEMPTION_BUDGET): a job restarted after a "
            f"preemption keeps its GPUs {rerun / 3600:g} h, not {min_run / 3600:g} h")

"""Job states and the transitions allowed between them.

A job's state changes only through the transitions declared here; the store
persists each change before the coordinator acts on it (see DESIGN.md,
"Principles"). Modelled on Ray's job manager: a ``str`` Enum with
``is_terminal()``.
"""

from __future__ import annotations

from enum import Enum


class JobState(str, Enum):
    QUEUED = "queued"
    STARTING = "starting"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    # Preempted jobs go back to the queue: PREEMPTED is a resting state that
    # the coordinator moves on to QUEUED once the job's processes are gone.
    PREEMPTED = "preempted"

    def is_terminal(self) -> bool:
        return self in _TERMINAL

    def holds_gpus(self) -> bool:
        """True while the job's GPUs count as in use."""
        return self in (JobState.STARTING, JobState.RUNNING)


_TERMINAL = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})

TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.STARTING, JobState.CANCELLED, JobState.FAILED}),
    JobState.STARTING: frozenset(
        {JobState.RUNNING, JobState.FAILED, JobState.CANCELLED, JobState.PREEMPTED, JobState.SUCCEEDED}
    ),
    JobState.RUNNING: frozenset(
        {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.PREEMPTED}
    ),
    JobState.PREEMPTED: frozenset({JobState.QUEUED, JobState.CANCELLED, JobState.FAILED}),
    JobState.SUCCEEDED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.CANCELLED: frozenset(),
}


class InvalidTransition(ValueError):
    def __init__(self, old: JobState, new: JobState):
        super().__init__(f"a job cannot go from {old.value} to {new.value}")
        self.old = old
        self.new = new


def check_transition(old: JobState, new: JobState) -> None:
    if new not in TRANSITIONS[old]:
        raise InvalidTransition(old, new)

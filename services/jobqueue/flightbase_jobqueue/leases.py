"""Jupyter trainings' GPU leases: a job of kind ``lease`` that runs nothing.

A Jupyter training is a JupyterLab server with one GPU. The hub's spawner
asks for a lease (``POST /leases``); the lease is a one-GPU, non-preemptible
job in the same queue as every training, so quotas, fair share, queue
positions and estimated starts count notebooks and trainings alike. When the
scheduler admits it, the :class:`LeaseBroker` grants it at once (there is no
process to start: the spawner starts the server with the granted GPU), and
the lease holds its GPU until it is released:

- by the spawner when the server stops (``DELETE /leases/{id}``);
- by the reconciler when the hub no longer has the server (it crashed, or
  the hub lost a pending spawn) — :func:`orphaned`;
- by the idle culler, which stops the server first — :func:`idle_verdict`.

The broker sits between the coordinator and the execution backend (it
implements the same :class:`~flightbase_jobqueue.ports.Backend` port): lease
jobs stop here, other jobs go on to the backend.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from flightbase_jobqueue.ports import BackendEvent, Exited, Started, Stopped
from flightbase_jobqueue.scheduling.types import Job, Placement

KIND = "lease"
TRAINING_KIND = "jupyter"


class LeaseBroker:
    """The Backend port for the coordinator: grants leases, passes other jobs on."""

    def __init__(self, backend):
        self.backend = backend
        self.held: set[str] = set()
        self._events: list[BackendEvent] = []
        self.on_event: Callable[[], None] = lambda: None

    def _emit(self, event: BackendEvent) -> None:
        self._events.append(event)
        self.on_event()

    # -- the Backend port --------------------------------------------------------
    def start(self, job: Job, placement: Placement) -> None:
        if job.kind != KIND:
            return self.backend.start(job, placement)
        self.held.add(job.id)
        self._emit(Started(job.id, time.time()))

    def stop(self, job_id: str, grace_seconds: float, reason: str) -> None:
        if job_id in self.held:  # cancelled (or preempted, if it was made preemptible)
            self.held.discard(job_id)
            self._emit(Stopped(job_id, time.time()))
        else:
            self.backend.stop(job_id, grace_seconds, reason)

    def poll_events(self) -> list[BackendEvent]:
        mine, self._events = self._events, []
        return mine + self.backend.poll_events()

    # -- leases ------------------------------------------------------------------
    def release(self, job_id: str) -> bool:
        """The server is gone: the lease ends (as a job that succeeded)."""
        if job_id not in self.held:
            return False
        self.held.discard(job_id)
        self._emit(Exited(job_id, time.time(), 0))
        return True

    def adopt(self, job_id: str) -> None:
        """After a restart of the jobqueue: a granted lease is still held."""
        self.held.add(job_id)


def public_state(job_state: str) -> str:
    """A lease's state as users read it."""
    return {
        "queued": "queued",
        "preempted": "queued",
        "starting": "granted",
        "running": "granted",
        "succeeded": "released",
        "failed": "released",
        "cancelled": "cancelled",
    }.get(job_state, job_state)


# -- idle culling (pure) -----------------------------------------------------------

WARN_FRACTION = 0.8  # warn when 80% of the idle timeout has passed


@dataclass(frozen=True)
class Activity:
    """What the culler saw of one Jupyter training at one check.

    ``gpu_busy``: the lease's GPU showed utilisation (NVML), None where there
    is no GPU to read (CPU slots). ``kernels_busy``: a kernel is executing.
    ``last_activity``: the latest kernel or connection activity the server
    reports (epoch seconds), None if the server could not be asked.
    """

    gpu_busy: bool | None
    kernels_busy: bool
    last_activity: float | None


@dataclass(frozen=True)
class Verdict:
    action: str  # "keep", "warn" or "stop"
    last_active: float
    message: str = ""


def idle_verdict(now: float, granted_at: float, previous_active: float, seen: Activity,
                 timeout_seconds: float, warned: bool) -> Verdict:
    """Keep, warn about or stop one GPU notebook.

    A busy GPU or a busy kernel is activity now: a kernel training on the GPU
    is never culled for looking idle, even with no one at the keyboard.
    Otherwise the notebook is idle since the latest of: when its lease was
    granted, the last activity seen before, and what the server reports.
    """
    if seen.gpu_busy or seen.kernels_busy:
        return Verdict("keep", now)
    last = max(granted_at, previous_active, seen.last_activity or 0.0)
    idle = now - last
    if idle >= timeout_seconds:
        return Verdict("stop", last, f"stopped after {_minutes(idle)} idle (the workspace's idle timeout is "
                                      f"{_minutes(timeout_seconds)}); its GPU was released")
    if idle >= WARN_FRACTION * timeout_seconds:
        left = timeout_seconds - idle
        message = (f"idle for {_minutes(idle)}: the server will be stopped in {_minutes(left)} "
                   "unless it is used")
        return Verdict("keep" if warned else "warn", last, message)
    return Verdict("keep", last)


def _minutes(seconds: float) -> str:
    if seconds < 120:
        return f"{max(0, round(seconds))} s"
    return f"{round(seconds / 60)} min"


def orphaned(lease_server: str, hub_servers: dict[str, dict] | None) -> bool:
    """Whether a lease's server is gone from the hub (neither running nor pending).

    ``hub_servers``: the owner's ``servers`` from the hub's user model, or
    None when the owner no longer exists.
    """
    if hub_servers is None:
        return True
    server = hub_servers.get(lease_server)
    return server is None or not (server.get("ready") or server.get("pending") in ("spawn", "check"))

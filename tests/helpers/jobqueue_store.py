"""The jobqueue's SQL store on a real database, for tests that drive the coordinator without
processes: jobs added in their rows, what is on disk read back in a session of its own, and a
backend that records instead of running anything (a stand-in: these tests are about the order of
writes and starts, not about processes)."""

from __future__ import annotations

from sqlalchemy import select

from flightbase_jobqueue import models
from flightbase_jobqueue.scheduling.types import Node


def add_jobs(sessions, *job_ids, state="queued", per_job: dict[str, dict] | None = None, **fields):
    """Jobs of one training ``t1`` in the workspace ``vision``, submitted in this order; ``fields``
    go to every job's row, ``per_job[job_id]`` to that job's."""
    with sessions.begin() as s:
        if s.get(models.Training, "t1") is None:
            s.add(models.Training(id="t1", workspace="vision", name="t", created_by="ann", spec={}))
            s.flush()
        for i, job_id in enumerate(job_ids):
            own = {**fields, **(per_job or {}).get(job_id, {})}
            s.add(models.Job(id=job_id, training_id="t1", workspace="vision", name=job_id, state=state,
                             submitted_at=float(i), created_by="ann", **{"gpus": 1, "kind": "training", **own}))


def on_disk(sessions) -> dict[str, str]:
    with sessions() as s:
        return {job_id: state for job_id, state in s.execute(select(models.Job.id, models.Job.state))}


class RecordingBackend:
    """Starts nothing: records each start, with the job's state on disk at that moment when given
    the sessions; hands out the events a test puts in ``events``."""

    def __init__(self, sessions=None):
        self.sessions = sessions
        self.events = []
        self.started: list[tuple[str, str | None]] = []

    def start(self, job, placement):
        self.started.append((job.id, on_disk(self.sessions)[job.id] if self.sessions else None))

    def stop(self, job_id, grace_seconds, reason): ...

    def poll_events(self):
        out, self.events = self.events, []
        return out


class OneNode:
    """The node inventory: one node ``local`` with ``gpus`` GPUs."""

    def __init__(self, gpus: int):
        self.gpus = gpus

    def nodes(self):
        return [Node("local", self.gpus, tuple(range(self.gpus)))]

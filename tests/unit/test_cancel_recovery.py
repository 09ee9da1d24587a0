"""The coordinator owns the set of jobs being cancelled and recovers it from the store: a job whose
cancel was asked before the jobqueue restarted still ends CANCELLED, whatever its exit code
(the SQL store on a real SQLite database migrated by the service's own migrations)."""

from __future__ import annotations

from flightbase.service import db
from flightbase_jobqueue import models
from flightbase_jobqueue.app import MIGRATIONS
from flightbase_jobqueue.coordinator import Coordinator
from flightbase_jobqueue.ports import Exited
from flightbase_jobqueue.scheduling import make_policy
from flightbase_jobqueue.scheduling.types import Node
from flightbase_jobqueue.states import JobState
from flightbase_jobqueue.store import SqlStore


class Backend:
    def __init__(self):
        self.events = []

    def start(self, job, placement): ...

    def stop(self, job_id, grace_seconds, reason): ...

    def poll_events(self):
        out, self.events = self.events, []
        return out


class Inventory:
    def nodes(self):
        return [Node("local", 2, (0, 1))]


def running(sessions, job_id, *, cancel_requested):
    with sessions.begin() as s:
        if s.get(models.Training, "t1") is None:
            s.add(models.Training(id="t1", workspace="vision", name="t", created_by="ann", spec={}))
            s.flush()
        s.add(models.Job(id=job_id, training_id="t1", workspace="vision", name=job_id, gpus=1, kind="training",
                         state="running", submitted_at=0.0, started_at=1.0, created_by="ann",
                         placement={"local": [0 if job_id == "a" else 1]}, cancel_requested=cancel_requested))


def test_a_cancel_asked_before_a_restart_ends_the_job_cancelled(tmp_path):
    engine = db.make_engine(f"sqlite:///{tmp_path / 'jobs.db'}")
    try:
        db.upgrade(engine, MIGRATIONS)
        sessions = db.Sessions(engine)
        running(sessions, "a", cancel_requested=True)
        running(sessions, "b", cancel_requested=False)
        store = SqlStore(sessions)
        assert store.cancel_requested() == {"a"}
        backend = Backend()
        coord = Coordinator(store, backend, make_policy("fifo"), Inventory())  # a restart: made from the store
        backend.events = [Exited("a", 5.0, 0), Exited("b", 5.0, 0)]
        assert sorted(coord.step(5.0).finished) == [("a", JobState.CANCELLED), ("b", JobState.SUCCEEDED)]
        assert store.cancel_requested() == set()  # ended: no longer active
    finally:
        engine.dispose()

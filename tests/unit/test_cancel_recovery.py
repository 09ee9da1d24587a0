"""The coordinator owns the set of jobs being cancelled and recovers it from the store: a job whose
cancel was asked before the jobqueue restarted still ends CANCELLED, whatever its exit code
(the SQL store on a real SQLite database migrated by the service's own migrations)."""

from __future__ import annotations

from flightbase_server.service import db
from flightbase_jobqueue.app import MIGRATIONS
from flightbase_jobqueue.coordinator import Coordinator
from flightbase_jobqueue.ports import Exited
from flightbase_jobqueue.scheduling import make_policy
from flightbase_jobqueue.states import JobState
from flightbase_jobqueue.store import SqlStore
from tests.helpers.jobqueue_store import OneNode, RecordingBackend, add_jobs


def test_a_cancel_asked_before_a_restart_ends_the_job_cancelled(tmp_path):
    engine = db.make_engine(f"sqlite:///{tmp_path / 'jobs.db'}")
    try:
        db.upgrade(engine, MIGRATIONS)
        sessions = db.Sessions(engine)
        add_jobs(sessions, "a", "b", state="running", started_at=1.0,
                 per_job={"a": {"placement": {"local": [0]}, "cancel_requested": True},
                          "b": {"placement": {"local": [1]}, "cancel_requested": False}})
        store = SqlStore(sessions)
        assert store.cancel_requested() == {"a"}
        backend = RecordingBackend()
        coord = Coordinator(store, backend, make_policy("fifo"), OneNode(2))  # a restart: made from the store
        backend.events = [Exited("a", 5.0, 0), Exited("b", 5.0, 0)]
        assert sorted(coord.step(5.0).finished) == [("a", JobState.CANCELLED), ("b", JobState.SUCCEEDED)]
        assert store.cancel_requested() == set()  # ended: no longer active
    finally:
        engine.dispose()

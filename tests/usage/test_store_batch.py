"""A scheduler pass's state changes in one transaction (``SqlStore.batch``), on a real database
migrated by the service's own migrations, and under the real coordinator.

What batching must not weaken: a change is on disk before anything acts on it (the backend
starts a job only once its STARTING is committed), and a batch that fails before its commit
(injected here: the write transaction raises just before committing, as a full disk or a lost
database server would make it) writes nothing and leaves the store's memory view as it was, so
nothing acknowledged is lost and nothing half-done is kept; a store made again from the database
(a restart) sees exactly what was committed. The backend is a recording stand-in (no process
runs: these tests are about the order of writes and starts)."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from sqlalchemy import select

from flightbase_server.service import db
from flightbase_jobqueue import models
from flightbase_jobqueue.app import MIGRATIONS
from flightbase_jobqueue.coordinator import Coordinator
from flightbase_jobqueue.ports import Exited, Started
from flightbase_jobqueue.scheduling import make_policy
from flightbase_jobqueue.scheduling.usage import UsageLedger
from flightbase_jobqueue.states import JobState
from flightbase_jobqueue.store import SqlStore
from tests.helpers.databases import empty_database_url
from tests.helpers.jobqueue_store import OneNode, RecordingBackend, add_jobs, on_disk


class Injected(Exception):
    pass


class FailingCommits:
    """The real ``Sessions``, whose next ``fail`` write transactions raise just before their commit."""

    def __init__(self, sessions: db.Sessions):
        self.inner = sessions
        self.fail = 0
        self.commits = 0

    def __call__(self):
        return self.inner()

    @contextmanager
    def begin(self):
        with self._failing(self.inner.begin()) as session:
            yield session

    @contextmanager
    def begin_connection(self):
        with self._failing(self.inner.begin_connection()) as conn:
            yield conn

    @contextmanager
    def _failing(self, transaction):
        with transaction as handle:
            yield handle
            if self.fail:
                self.fail -= 1
                raise Injected("the commit failed")
            self.commits += 1


@pytest.fixture(params=["sqlite", "postgresql"])
def sessions(request, tmp_path):
    engine = db.make_engine(empty_database_url(request, tmp_path, request.param, "batch"))
    db.upgrade(engine, MIGRATIONS)
    yield FailingCommits(db.Sessions(engine))
    engine.dispose()


def intervals(sessions) -> list[tuple]:
    with sessions() as s:
        return [(r.job_id, r.ended_at, r.outcome) for r in
                s.scalars(select(models.UsageInterval).order_by(models.UsageInterval.id))]


def test_a_batch_is_on_disk_and_in_memory_only_once_it_commits(sessions):
    add_jobs(sessions, "a", "b", "c")
    store = SqlStore(sessions)
    with store.batch(["a", "b", "c"]):
        for i, job_id in enumerate("abc"):
            job = store.transition(job_id, JobState.STARTING, at=10.0, placement={"local": (i,)})
            assert job.id == job_id
        assert set(on_disk(sessions).values()) == {"queued"}  # nothing written yet
        assert store.state_of("a") is JobState.QUEUED and len(store.queued_jobs()) == 3
    assert sessions.commits == 2  # the jobs' insert, then the whole batch: one commit
    assert on_disk(sessions) == {"a": "starting", "b": "starting", "c": "starting"}
    assert [i[0] for i in intervals(sessions)] == ["a", "b", "c"]
    assert len(store.queued_jobs()) == 0 and {a.job.id for a in store.active_jobs()} == {"a", "b", "c"}
    assert {a.job.id: a.placement for a in SqlStore(sessions).active_jobs()} == {
        "a": {"local": (0,)}, "b": {"local": (1,)}, "c": {"local": (2,)}}  # a restart sees them


@pytest.mark.parametrize("failure", ["in the block", "at the commit"])
def test_a_batch_that_fails_before_its_commit_writes_nothing_and_keeps_what_was_committed(sessions, failure):
    add_jobs(sessions, "a", "b", "c")
    store = SqlStore(sessions)
    with store.batch(["a", "b"]):  # committed: the backend may have started these
        store.transition("a", JobState.STARTING, at=10.0, placement={"local": (0,)})
        store.transition("b", JobState.STARTING, at=10.0, placement={"local": (1,)})
    with pytest.raises(Injected):
        with store.batch(["a", "b", "c"]):
            store.transition("a", JobState.RUNNING, at=11.0)
            store.transition("b", JobState.SUCCEEDED, at=12.0, exit_code=0)
            store.transition("c", JobState.STARTING, at=12.0, placement={"local": (1,)})
            if failure == "in the block":
                raise Injected("the pass failed before its commit")
            sessions.fail = 1
    expected = {"a": "starting", "b": "starting", "c": "queued"}
    assert on_disk(sessions) == expected
    assert intervals(sessions) == [("a", None, None), ("b", None, None)]  # b's still open, none for c
    for view in (store, SqlStore(sessions)):  # the memory view as it was, and after a restart
        assert {j: view.state_of(j).value for j in "abc"} == expected
        assert {a.job.id for a in view.active_jobs()} == {"a", "b"} and [j.id for j in view.queued_jobs()] == ["c"]
    # and the store goes on: the same changes, again, are written
    with store.batch(["a", "b", "c"]):
        store.transition("a", JobState.RUNNING, at=13.0)
        store.transition("b", JobState.SUCCEEDED, at=13.0, exit_code=0)
        store.transition("c", JobState.STARTING, at=13.0, placement={"local": (1,)})
    assert on_disk(sessions) == {"a": "running", "b": "succeeded", "c": "starting"}
    assert intervals(sessions) == [("a", None, None), ("b", 13.0, "succeeded"), ("c", None, None)]


def test_a_run_started_and_ended_in_one_batch_has_its_interval_closed(sessions):
    add_jobs(sessions, "a")
    store = SqlStore(sessions)
    with store.batch(["a"]):
        store.transition("a", JobState.STARTING, at=1.0, placement={"local": (0,)})
        store.transition("a", JobState.RUNNING, at=2.0)
        store.transition("a", JobState.FAILED, at=3.0, exit_code=1)
    assert on_disk(sessions) == {"a": "failed"}
    assert intervals(sessions) == [("a", 3.0, "failed")]
    assert store.state_of("a") is None and not store.active_jobs()


def test_runs_of_several_jobs_in_one_batch_keep_each_jobs_interval_order(sessions):
    """The batch writes its usage intervals grouped (one statement per run of closes or opens),
    not in the order asked: each job's still come in its own order. ``a`` runs, is preempted and
    runs again; ``b`` starts and ends; ``c``, running from before, ends; ``d`` starts: every run
    ended has its interval closed with its outcome, and only the runs still on hold one open."""
    add_jobs(sessions, "a", "b", "c", "d")
    store = SqlStore(sessions)
    with store.batch(["c"]):
        store.transition("c", JobState.STARTING, at=0.5, placement={"local": (3,)})
    with store.batch(["a", "b", "c", "d"]):
        store.transition("a", JobState.STARTING, at=1.0, placement={"local": (0,)})
        store.transition("b", JobState.STARTING, at=1.0, placement={"local": (1,)})
        store.transition("a", JobState.RUNNING, at=2.0)
        store.transition("a", JobState.PREEMPTED, at=3.0)
        store.transition("c", JobState.SUCCEEDED, at=3.0, exit_code=0)
        store.transition("a", JobState.QUEUED, at=4.0)
        store.transition("b", JobState.FAILED, at=4.0, exit_code=1)
        store.transition("a", JobState.STARTING, at=5.0, placement={"local": (2,)})
        store.transition("d", JobState.STARTING, at=5.0, placement={"local": (4,)})
    assert on_disk(sessions) == {"a": "starting", "b": "failed", "c": "succeeded", "d": "starting"}
    assert sorted(intervals(sessions), key=lambda r: (r[0], r[1] is None, r[1] or 0)) == [
        ("a", 3.0, "preempted"), ("a", None, None), ("b", 4.0, "failed"), ("c", 3.0, "succeeded"),
        ("d", None, None)]
    with sessions() as s:  # each run's interval has its own start and placement
        runs = {(r.job_id, r.started_at): r.placement for r in s.scalars(select(models.UsageInterval))}
    assert runs == {("c", 0.5): {"local": [3]}, ("a", 1.0): {"local": [0]}, ("b", 1.0): {"local": [1]},
                    ("a", 5.0): {"local": [2]}, ("d", 5.0): {"local": [4]}}
    again = SqlStore(sessions)  # a restart sees what was committed
    assert {a.job.id: a.placement for a in again.active_jobs()} == {"a": {"local": (2,)}, "d": {"local": (4,)}}


def test_the_backend_starts_a_job_only_once_its_start_is_on_disk(sessions):
    add_jobs(sessions, "a", "b", "c")
    store = SqlStore(sessions)
    backend = RecordingBackend(sessions)
    coord = Coordinator(store, backend, make_policy("fifo"), OneNode(4))
    sessions.fail = 1  # the pass's batch of admissions fails to commit: nothing is started
    with pytest.raises(Injected):
        coord.step(5.0)
    assert backend.started == [] and set(on_disk(sessions).values()) == {"queued"}
    assert len(store.queued_jobs()) == 3 and coord._in_use.get("vision", 0) == 0
    result = coord.step(6.0)  # the next pass admits them
    assert sorted(result.admitted) == ["a", "b", "c"]
    assert sorted(backend.started) == [("a", "starting"), ("b", "starting"), ("c", "starting")]
    assert coord._in_use["vision"] == 3


def test_events_whose_batch_fails_are_saved_one_at_a_time(sessions):
    add_jobs(sessions, "a", "b", state="running", started_at=10.0)
    with sessions.begin() as s:  # their open usage intervals, as their start wrote them
        for i, job_id in enumerate("ab"):
            s.get(models.Job, job_id).placement = {"local": [i]}
            s.add(models.UsageInterval(job_id=job_id, training_id="t1", workspace="vision", user="ann",
                                       kind="training", gpus=1, started_at=10.0))
    store = SqlStore(sessions)
    backend = RecordingBackend(sessions)
    coord = Coordinator(store, backend, make_policy("fifo"), OneNode(4))
    assert coord._in_use["vision"] == 2
    backend.events = [Exited("a", 20.0, 0), Exited("b", 30.0, 1), Started("zzz", 30.0)]
    sessions.fail = 1  # the events' batch fails to commit; each event alone then commits
    result = coord.step(30.0)
    assert sorted(result.finished) == [("a", JobState.SUCCEEDED), ("b", JobState.FAILED)]
    assert on_disk(sessions) == {"a": "succeeded", "b": "failed"}
    assert intervals(sessions) == [("a", 20.0, "succeeded"), ("b", 30.0, "failed")]
    assert coord._in_use["vision"] == 0 and not store.active_jobs()
    once = UsageLedger()  # charged once, not once per try
    once.charge("vision", 10.0, 20.0)
    once.charge("vision", 20.0, 30.0)
    assert coord.usage.state() == once.state()

"""The runtime history behind the start estimates and ``las``'s expectations is learnt again when
the jobqueue starts: a restart (the hub restarts a service that died; an upgrade) does not turn
every estimate back into the default hour.  The SQL store on a real SQLite database and a real
PostgreSQL server's, migrated by the jobqueue's own migrations; the backend records instead of
running anything (these tests are about what the coordinator reads at start-up)."""

from __future__ import annotations

import pytest

from flightbase_server.service import db
from flightbase_jobqueue.app import MIGRATIONS
from flightbase_jobqueue.coordinator import HISTORY_AT_START, Coordinator
from flightbase_jobqueue.ports import Exited, Started
from flightbase_jobqueue.scheduling import make_policy
from flightbase_jobqueue.store import SqlStore
from tests.helpers.databases import empty_database_url
from tests.helpers.jobqueue_store import OneNode, RecordingBackend, add_jobs

from flightbase_jobqueue.scheduling.types import lease

from scheduling_factories import job


@pytest.fixture(params=["sqlite", "postgresql"])
def sessions(request, tmp_path):
    url = empty_database_url(request, tmp_path, request.param, "history")
    engine = db.make_engine(url)
    db.upgrade(engine, MIGRATIONS)
    yield db.Sessions(engine)
    engine.dispose()


def test_a_restarted_coordinator_knows_the_run_times_of_the_jobs_that_ended_before(sessions):
    # three jobs of vision run 100, 200 and 900 s through one coordinator (one GPU each)
    add_jobs(sessions, "a", "b", "c")
    backend = RecordingBackend()
    first = Coordinator(SqlStore(sessions), backend, make_policy("fifo"), OneNode(3))
    assert first.estimates.estimate(job("new", 1, ws="vision")) == 3600.0  # nothing learnt yet: the default
    first.step(0.0)
    backend.events = [Started("a", 0.0), Started("b", 0.0), Started("c", 0.0),
                      Exited("a", 100.0, 0), Exited("b", 200.0, 0), Exited("c", 900.0, 0)]
    first.step(900.0)
    learnt = first.estimates.estimate(job("new", 1, ws="vision"))
    assert learnt == 200.0
    # a restart: a coordinator made anew over the same database
    again = Coordinator(SqlStore(sessions), RecordingBackend(), make_policy("fifo"), OneNode(3))
    assert again.estimates.estimate(job("new", 1, ws="vision")) == learnt
    # what a job that has run 50 s still needs: the median of the runs longer than that (200 s), less 50
    assert again.estimates.remaining(job("new", 1, ws="vision"), 50.0) == 150.0


def test_only_successes_are_learnt_and_only_the_last_ones(sessions):
    add_jobs(sessions, "failed", "cancelled", state="failed", attained=50_000.0, finished_at=10.0)
    add_jobs(sessions, "ok", state="succeeded", attained=42.0, finished_at=20.0)
    runtimes = SqlStore(sessions).completed_runtimes(HISTORY_AT_START)
    assert [(j.id, r) for j, r in runtimes] == [("ok", 42.0)]
    # the last ones, oldest first: the newest ends the window of recent runtimes
    add_jobs(sessions, *[f"j{i}" for i in range(5)], state="succeeded",
             per_job={f"j{i}": {"attained": 10.0 * (i + 1), "finished_at": 100.0 + i} for i in range(5)})
    assert [j.id for j, _ in SqlStore(sessions).completed_runtimes(3)] == ["j2", "j3", "j4"]


def test_a_notebook_lease_is_learnt_again_as_a_lease(sessions):
    """Leases have a history of their own (how long people keep notebooks open); after a
    restart a lease's run time must not be learnt back as a one-GPU training's."""
    add_jobs(sessions, "nb1", "nb2", "nb3", state="succeeded", kind="lease", attained=8 * 3600.0, finished_at=10.0)
    add_jobs(sessions, "t1", "t2", "t3", state="succeeded", attained=600.0, finished_at=20.0)
    assert {(j.id, j.kind) for j, _ in SqlStore(sessions).completed_runtimes(10)} == {
        ("nb1", "lease"), ("nb2", "lease"), ("nb3", "lease"), ("t1", "training"), ("t2", "training"),
        ("t3", "training")}
    again = Coordinator(SqlStore(sessions), RecordingBackend(), make_policy("fifo"), OneNode(3))
    assert again.estimates.estimate(job("new", 1, ws="vision")) == 600.0
    assert again.estimates.estimate(lease("nb", "vision")) == 8 * 3600.0


def test_the_preemption_budgets_ledger_is_learnt_again(sessions):
    """The preemption budget (scheduling/budget.py) counts the last 14 days' first starts and
    preemptions; a restarted coordinator reads them back: a job's first stretch of GPU time (not
    a notebook lease's, not one older than 14 days), and the scheduler's preemptions (not an
    administrator's requeue)."""
    import time

    from flightbase_jobqueue import models

    now = time.time()
    old = now - 15 * 86400.0
    add_jobs(sessions, "x1", "x2", "nb", "x3")
    with sessions.begin() as s:
        for job_id, kind, at in (("x1", "training", now - 100.0), ("x1", "training", now - 50.0),
                                 ("x2", "training", now - 80.0), ("nb", "lease", now - 70.0),
                                 ("x3", "training", old), ("x3", "training", now - 60.0)):
            s.add(models.UsageInterval(job_id=job_id, training_id="t", workspace="vision", user="ana", kind=kind,
                                       gpus=1, started_at=at, ended_at=at + 1.0))
        for job_id, reason, at in (("x1", "preempted for x2 (least attained service: level 0)", now - 90.0),
                                   ("x2", "requeued by admin", now - 40.0),
                                   ("x3", "preempted for x1 (least attained service: level 0)", old)):
            s.add(models.Preemption(job_id=job_id, reason=reason, at=at))
    starts, stops = SqlStore(sessions).preemption_ledger(now - 14 * 86400.0)
    assert sorted(starts) == [now - 100.0, now - 80.0] and stops == [now - 90.0]
    again = Coordinator(SqlStore(sessions), RecordingBackend(), make_policy("las"), OneNode(3))
    assert again.ledger.counts(now) == (2, 1)

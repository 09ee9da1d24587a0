"""Usage intervals as the stores record them: the SQL store on a real SQLite database
(migrated by the service's own Alembic migrations), and the simulator's store under
the real coordinator."""

from __future__ import annotations

import random

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import select

from flightbase_server.service import db
from flightbase_jobqueue import models
from flightbase_jobqueue.accounting import aggregate
from flightbase_jobqueue.app import MIGRATIONS
from flightbase_jobqueue.scheduling import make_policy
from flightbase_jobqueue.scheduling.types import Job, Node
from flightbase_jobqueue.sim.replay import simulate
from flightbase_jobqueue.states import InvalidTransition, JobState
from flightbase_jobqueue.store import SqlStore
from tests.helpers.databases import empty_database_url

PLACEMENT = {"local": (0, 1)}


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    """A new, empty database: SQLite, and a real PostgreSQL server's."""
    url = empty_database_url(request, tmp_path, request.param, "usage")
    engine = db.make_engine(url)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine):
    db.upgrade(engine, MIGRATIONS)
    return db.Sessions(engine)


def add_job(sessions, job_id="j1", workspace="vision", user="ann", gpus=2, kind="training", **fields):
    with sessions.begin() as s:
        if s.get(models.Training, "t1") is None:
            s.add(models.Training(id="t1", workspace=workspace, name="t", created_by=user, spec={}))
            s.flush()
        s.add(models.Job(id=job_id, training_id="t1", workspace=workspace, name=job_id, gpus=gpus, kind=kind,
                         state=fields.pop("state", "queued"), submitted_at=fields.pop("submitted_at", 0.0),
                         created_by=user, **fields))


def intervals(sessions, job_id=None):
    with sessions() as s:
        stmt = select(models.UsageInterval).order_by(models.UsageInterval.id)
        if job_id:
            stmt = stmt.where(models.UsageInterval.job_id == job_id)
        return [(r.job_id, r.gpus, r.started_at, r.ended_at, r.outcome) for r in s.scalars(stmt)]


def test_a_run_opens_an_interval_and_its_end_closes_it(sessions):
    add_job(sessions)
    store = SqlStore(sessions)
    store.transition("j1", JobState.STARTING, at=100.0, placement=PLACEMENT)
    assert intervals(sessions) == [("j1", 2, 100.0, None, None)]
    store.transition("j1", JobState.RUNNING, at=101.0)
    assert intervals(sessions) == [("j1", 2, 100.0, None, None)]  # still the same run
    store.transition("j1", JobState.SUCCEEDED, at=160.0, exit_code=0)
    assert intervals(sessions) == [("j1", 2, 100.0, 160.0, "succeeded")]
    with sessions() as s:
        row = s.scalars(select(models.UsageInterval)).one()
        assert (row.training_id, row.workspace, row.user, row.kind, row.placement) == (
            "t1", "vision", "ann", "training", {"local": [0, 1]})


def test_a_preemption_closes_the_run_and_the_restart_opens_another(sessions):
    add_job(sessions)
    store = SqlStore(sessions)
    store.transition("j1", JobState.STARTING, at=100.0, placement=PLACEMENT)
    store.transition("j1", JobState.RUNNING, at=101.0)
    store.record_preemption("j1", "quota reclaimed", 190.0)
    assert intervals(sessions)[0][3] is None  # asked to stop: it holds its GPUs until it has
    store.transition("j1", JobState.PREEMPTED, at=200.0, attained=200.0, restarts=1)
    store.transition("j1", JobState.QUEUED, at=200.0)
    store.transition("j1", JobState.STARTING, at=500.0, placement={"local": (2, 3)})
    store.transition("j1", JobState.RUNNING, at=501.0)
    store.transition("j1", JobState.CANCELLED, at=600.0)
    assert intervals(sessions) == [("j1", 2, 100.0, 200.0, "preempted"), ("j1", 2, 500.0, 600.0, "cancelled")]
    assert sum(r.gpu_seconds for r in _aggregate(sessions, now=1000.0)) == 2 * (100 + 100)  # not the 300 s gap


@pytest.mark.parametrize("end", [JobState.FAILED, JobState.CANCELLED])
def test_a_job_that_never_ran_has_no_usage(sessions, end):
    add_job(sessions)
    SqlStore(sessions).transition("j1", end, at=5.0)
    assert intervals(sessions) == []


def test_a_refused_transition_records_nothing(sessions):
    add_job(sessions)
    store = SqlStore(sessions)
    with pytest.raises(InvalidTransition):
        store.transition("j1", JobState.RUNNING, at=1.0)
    store.transition("j1", JobState.STARTING, at=2.0, placement=PLACEMENT)
    store.transition("j1", JobState.STARTING, at=3.0, placement=PLACEMENT)  # a repeat: a no-op
    assert intervals(sessions) == [("j1", 2, 2.0, None, None)]


def test_usage_survives_a_restart_and_a_lost_job_is_closed_as_lost(sessions):
    add_job(sessions, "j1")
    add_job(sessions, "j2", user="bob", gpus=1)
    store = SqlStore(sessions)
    for job_id in ("j1", "j2"):
        store.transition(job_id, JobState.STARTING, at=100.0, placement=PLACEMENT)
        store.transition(job_id, JobState.RUNNING, at=101.0)
    # the jobqueue restarts: a new store over the same database
    again = SqlStore(sessions)
    assert {a.job.id for a in again.active_jobs()} == {"j1", "j2"}
    assert [i[3] for i in intervals(sessions)] == [None, None]  # both still open
    again.mark_lost("j2")  # what JobRuntime._recover says when its processes are gone
    again.transition("j2", JobState.FAILED, at=300.0, exit_code=255)
    again.transition("j1", JobState.SUCCEEDED, at=400.0, exit_code=0)
    assert intervals(sessions) == [("j1", 2, 100.0, 400.0, "succeeded"), ("j2", 1, 100.0, 300.0, "lost")]
    by_user = {r.key: r.gpu_seconds for r in _aggregate(sessions, now=1000.0, group_by=("user",))}
    assert by_user == {("ann",): 600.0, ("bob",): 200.0}


def test_usage_outlives_the_training(sessions):
    add_job(sessions)
    store = SqlStore(sessions)
    store.transition("j1", JobState.STARTING, at=10.0, placement=PLACEMENT)
    store.transition("j1", JobState.FAILED, at=20.0, exit_code=1)
    with sessions.begin() as s:
        s.delete(s.get(models.Training, "t1"))
    assert intervals(sessions) == [("j1", 2, 10.0, 20.0, "failed")]


def _aggregate(sessions, now, group_by=("workspace",)):
    from flightbase_jobqueue.api.usage import load_intervals

    with sessions() as s:
        found = load_intervals(s, 0.0, now, None)
    return aggregate(found, start=0.0, end=now, now=now, group_by=group_by)


def test_the_migration_backfills_the_jobs_it_finds(engine):
    """A database at 0003 with jobs in every state: 0004 gives the running ones an open interval and
    the ended ones their last run, except a run a preemption ended."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0003")
    # (the jobs, trainings and preemptions tables are the same at 0003 as now)
    jobs = [("running", 2, 100.0, None), ("succeeded", 1, 10.0, 50.0), ("queued", 1, None, None),
            ("cancelled", 1, None, 7.0), ("cancelled", 4, 20.0, 90.0), ("preempted", 1, 30.0, None)]
    with engine.begin() as conn:
        conn.execute(models.Training.__table__.insert(), [dict(
            id="t1", workspace="vision", name="t", description="", kind="advanced", created_by="ann", spec={},
            state="active")])
        conn.execute(models.Job.__table__.insert(), [dict(
            id=f"j{n}", training_id="t1", workspace="vision", name="x", seq=0, params={}, kind="training", gpus=gpus,
            priority=0, preemptible=True, state=state, held=False, submitted_at=0.0, started_at=started,
            finished_at=finished, attained=0.0, restarts=0, placement={"local": [0]}, stopping=False,
            cancel_requested=False, created_by="ann") for n, (state, gpus, started, finished) in enumerate(jobs)])
        # j4 was preempted in its last run (at 60), then cancelled while queued: its end is unknown;
        # j1's preemption was in an earlier run
        conn.execute(models.Preemption.__table__.insert(), [dict(job_id="j4", reason="quota", at=60.0),
                                                            dict(job_id="j1", reason="quota", at=5.0)])
    db.upgrade(engine, MIGRATIONS)
    sessions = db.Sessions(engine)
    assert intervals(sessions) == [("j1", 1, 10.0, 50.0, "succeeded"), ("j0", 2, 100.0, None, None)]
    with sessions() as s:
        assert s.scalars(select(models.UsageInterval.placement)).first() == {"local": [0]}


def test_the_simulators_store_records_the_same_intervals_under_the_real_coordinator():
    """A loaded cluster under LAS, with preemptions: each job's intervals add up to the service it
    attained, one interval per run, all closed at the end; per workspace too."""
    rng = random.Random(3)
    jobs, durations, t = [], {}, 0.0
    for i in range(120):
        t += rng.uniform(0, 60)
        jobs.append(Job(id=f"j{i}", workspace=rng.choice(["a", "b", "c"]), gpus=rng.choice([1, 1, 2, 4, 8]),
                        submitted_at=t))
        durations[f"j{i}"] = rng.lognormvariate(5, 1.2) + 1
    nodes = [Node(f"n{k}", 8, tuple(range(8))) for k in range(2)]
    sim = simulate(jobs, durations, nodes, make_policy("las", thresholds=(600.0, 6000.0), min_run=30.0), {},
                   restart_cost=5.0)
    store = sim.store
    assert len(store.preemptions) > 0, "the scenario should preempt"
    assert all(iv.ended_at is not None for iv in store.usage)
    per_job: dict[str, float] = {}
    for iv in store.usage:
        per_job[iv.job_id] = per_job.get(iv.job_id, 0.0) + iv.gpu_seconds(0.0)
    for job_id, job in store.jobs.items():
        assert per_job[job_id] == pytest.approx(job.attained, rel=1e-9), job_id
        assert sum(1 for iv in store.usage if iv.job_id == job_id) == job.restarts + 1
    end = max(iv.ended_at for iv in store.usage)
    by_ws = {r.key[0]: r.gpu_seconds for r in aggregate(store.usage, start=0.0, end=end, now=end)}
    for ws in "abc":
        assert by_ws[ws] == pytest.approx(sum(j.attained for j in store.jobs.values() if j.workspace == ws))

"""A submission's rows without ORM objects (api/trainings.new_row) are the rows the ORM would make.

POST /trainings builds its training and jobs as plain values (``new_row``) for the group commit
(``submissions.SubmissionWriter``, Core INSERTs) and the scheduler. These tests check, on a real
SQLite database migrated as the service migrates it, that they are what ``row_of(Model(...))``
gave, that they are stored and read back as such, and that the scheduler's store takes them.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from flightbase_server.service import db
from flightbase_jobqueue import models
from flightbase_jobqueue.api.trainings import new_row, row_of
from flightbase_jobqueue.app import MIGRATIONS
from flightbase_jobqueue.store import SqlStore
from flightbase_jobqueue.submissions import SubmissionWriter
from flightbase_jobqueue.training_spec import TrainingSpec

TRAINING = dict(id="t1", workspace="ws", name="n", description="", kind="advanced", created_by="ann",
                created_at=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc),
                spec=TrainingSpec(entrypoint="train.py", gpus=2), state="active")


def job(i: int) -> dict:
    return dict(id=f"j{i}", training_id="t1", workspace="ws", name=f"n #{i}", seq=i, params={"lr": 0.1 * i},
                kind="training", gpus=2, gpus_per_node=None, priority=0, preemptible=True, max_runtime=None,
                state="queued", held=i > 0, submitted_at=1000.0 + i * 1e-6, attained=0.0, restarts=0,
                stopping=False, cancel_requested=False, created_by="ann")


def test_new_rows_are_the_orm_rows():
    assert vars(new_row(models.Training, **TRAINING)) == row_of(models.Training(**TRAINING))
    assert vars(new_row(models.Job, **job(0))) == row_of(models.Job(**job(0)))


def test_an_unknown_column_is_refused():
    with pytest.raises(TypeError, match="no column"):
        new_row(models.Job, **job(0), colour="red")


def test_they_are_stored_and_the_scheduler_takes_them(tmp_path):
    engine = db.make_engine(f"sqlite:///{tmp_path}/jq.sqlite")
    db.upgrade(engine, MIGRATIONS)
    sessions = db.Sessions(engine)
    training = new_row(models.Training, **TRAINING)
    jobs = [new_row(models.Job, **job(i)) for i in range(2)]

    async def write():
        writer = SubmissionWriter(sessions)
        writer.start()
        try:
            await writer.write(vars(training), [{"training_id": "t1", "user": "ann"}], [vars(j) for j in jobs])
        finally:
            await writer.stop()

    asyncio.run(write())
    with sessions() as session:
        stored = session.get(models.Training, "t1")
        assert row_of(stored) == vars(training) and stored.owner_names == ["ann"]
        assert [row_of(session.get(models.Job, f"j{i}")) for i in range(2)] == [vars(j) for j in jobs]
    store = SqlStore(sessions)
    fresh = SqlStore(sessions)
    fresh._queue = type(store._queue)()  # the memory view as before the submission reached it
    fresh._state.clear()
    fresh.enqueue(jobs)  # what runtime.submitted does with the API's rows
    # the same scheduler jobs as the store reads from the database (the held one waits outside the queue)
    assert list(fresh.queued_jobs().jobs()) == list(store.queued_jobs().jobs())
    assert [j.id for j in store.queued_jobs().jobs()] == ["j0"]
    engine.dispose()

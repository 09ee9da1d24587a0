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
from flightbase_jobqueue import submissions
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


@pytest.mark.parametrize("burst", [1, submissions.INLINE_MAX + 1, 40])
def test_a_bad_submission_refuses_only_itself_in_a_batch_of_any_size(tmp_path, burst):
    """Small batches are committed on the event loop, larger ones in a thread (``INLINE_MAX``): either
    way every good submission of a burst is stored and answered, and one whose row the database refuses
    (its id is taken) gets the error, with nothing of it written."""
    engine = db.make_engine(f"sqlite:///{tmp_path}/jq.sqlite")
    db.upgrade(engine, MIGRATIONS)
    sessions = db.Sessions(engine)

    def submission(n: int, training_id: str):
        training = vars(new_row(models.Training, **dict(TRAINING, id=training_id, name=f"n{n}")))
        one = vars(new_row(models.Job, **dict(job(0), id=f"j{n}", training_id=training_id)))
        return training, [{"training_id": training_id, "user": "ann"}], [one]

    async def write():
        writer = SubmissionWriter(sessions)
        writer.start()
        try:
            await writer.write(*submission(0, "taken"))
            # the last of the burst reuses a stored training id: refused
            burst_of = [submission(n, f"t{n}") for n in range(1, burst)] + [submission(burst, "taken")]
            return await asyncio.gather(*(writer.write(*s) for s in burst_of), return_exceptions=True)
        finally:
            await writer.stop()

    answers = asyncio.run(write())
    assert answers[:-1] == [None] * (burst - 1)
    assert isinstance(answers[-1], Exception)
    with sessions() as session:
        assert session.get(models.Job, f"j{burst}") is None  # the refused one's job was not written
        assert [session.get(models.Job, f"j{n}") is not None for n in range(burst)] == [True] * burst
    engine.dispose()

"""Idempotency keys in the store: migration 0008 and the group-commit writer, on SQLite and PostgreSQL.

The route's behaviour (200 with the first training, 422 for another request) is tested through
the platform in tests/platform/test_idempotent_submit.py; here, what the database guarantees.
"""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from flightbase_server.service import db
from flightbase_jobqueue import models
from flightbase_jobqueue.app import MIGRATIONS
from flightbase_jobqueue.submissions import KeyTaken, SubmissionWriter
from tests.helpers.databases import engine_fixture, job_row, migrate_jobqueue as migrate, training_row


engine = engine_fixture("submission_keys_")


def training(tid: str, key: str | None, user: str = "ann", digest: str | None = "d1") -> dict:
    return training_row(tid, created_by=user, idempotency_key=key, request_digest=digest if key else None)


job = job_row


def test_the_migration_keeps_old_rows_and_the_index_refuses_a_second_use(engine):
    migrate(engine, "0007")
    old = sa.table("trainings", *(sa.column(c) for c in ("id", "workspace", "name", "kind", "created_by", "state")),
                   sa.column("spec", sa.JSON()))
    with engine.begin() as conn:
        conn.execute(old.insert(), [dict(id=f"old{i}", workspace="vision", name="o", kind="advanced", created_by="ann",
                                         state="active", spec={"entrypoint": "t.py"}) for i in range(2)])
    db.upgrade(engine, MIGRATIONS)
    table = models.Training.__table__
    with engine.begin() as conn:
        assert conn.execute(sa.select(table.c.idempotency_key).order_by(table.c.id)).scalars().all() == [None, None]
        conn.execute(table.insert(), [training("a", "k1")])
        conn.execute(table.insert(), [training("b", "k1", user="bo")])  # another person's key space
        conn.execute(table.insert(), [training("c", None), training("d", None)])  # no key: never compared
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(table.insert(), [training("e", "k1")])
    migrate(engine, "0007", down=True)
    columns = {c["name"] for c in sa.inspect(engine).get_columns("trainings")}
    assert "idempotency_key" not in columns and "request_digest" not in columns


def test_the_writer_commits_the_first_use_and_names_it_to_the_others(engine):
    """One batch: two requests with one key and one without. The first with the key and the one
    without are stored; the second gets KeyTaken with the holder and its digest, and nothing of it
    is stored (no job row)."""
    db.upgrade(engine, MIGRATIONS)
    sessions = db.Sessions(engine)

    async def run():
        writer = SubmissionWriter(sessions)
        writer.start()
        try:
            owners = lambda tid: [{"training_id": tid, "user": "ann"}]  # noqa: E731
            return await asyncio.gather(*(writer.write(training(tid, key, digest=digest), owners(tid), [job(tid)])
                                          for tid, key, digest in (("t1", "k", "d1"), ("t2", "k", "d2"),
                                                                   ("t3", None, None))),
                                        return_exceptions=True)
        finally:
            await writer.stop()

    first, second, third = asyncio.run(run())
    assert first is None and third is None
    assert isinstance(second, KeyTaken) and (second.training_id, second.digest) == ("t1", "d1")
    with sessions() as s:
        assert sorted(s.scalars(sa.select(models.Training.id))) == ["t1", "t3"]
        assert sorted(s.scalars(sa.select(models.Job.id))) == ["t1-job", "t3-job"]

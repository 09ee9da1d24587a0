"""``in_chunks``: the IN lists the services send, padded to a few lengths. Real SQLite, through
SQLAlchemy's engine as the services make it (``make_engine``)."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, MetaData, String, Table, event, insert, select

from flightbase_server.service.db import IN_LIST_SIZE, in_chunks, make_engine


@pytest.fixture
def db(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    meta = MetaData()
    jobs = Table("jobs", meta, Column("id", String, primary_key=True), Column("state", String))
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(jobs), [{"id": f"j{i}", "state": "queued"} for i in range(1200)])
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda conn, cursor, sql, *rest: statements.append(sql))
    yield engine, jobs, statements
    engine.dispose()


@pytest.mark.parametrize("n", [1, 2, 3, 7, 100, IN_LIST_SIZE, IN_LIST_SIZE + 1, 1100])
def test_the_padded_lists_find_exactly_the_rows_asked_for(db, n):
    engine, jobs, _ = db
    wanted = [f"j{i}" for i in range(0, 2 * n, 2)] if 2 * n <= 1200 else [f"j{i}" for i in range(n)]
    chunks = list(in_chunks(wanted))
    assert all(len(c) & (len(c) - 1) == 0 and len(c) <= IN_LIST_SIZE for c in chunks)  # powers of two
    assert [v for c in chunks for v in dict.fromkeys(c)] == wanted  # in order; only repeats added
    with engine.connect() as conn:
        found = [row.id for c in chunks for row in conn.execute(select(jobs.c.id).where(jobs.c.id.in_(c)))]
    assert sorted(found) == sorted(wanted)


def test_lists_of_every_length_are_sent_as_a_few_statements(db):
    engine, jobs, statements = db
    with engine.connect() as conn:
        for n in range(1, IN_LIST_SIZE + 1):
            for c in in_chunks([f"j{i}" for i in range(n)]):
                conn.execute(select(jobs.c.id).where(jobs.c.id.in_(c))).all()
    assert len(statements) == IN_LIST_SIZE
    assert len(set(statements)) == IN_LIST_SIZE.bit_length()  # 1, 2, 4, ... 512 markers


def test_no_values_no_query():
    assert list(in_chunks([])) == []


def test_a_smaller_size_is_never_exceeded_by_the_padding():
    chunks = list(in_chunks([f"j{i}" for i in range(1100)], size=500))
    assert [len(c) for c in chunks] == [500, 500, 128]
    assert [v for c in chunks for v in dict.fromkeys(c)] == [f"j{i}" for i in range(1100)]

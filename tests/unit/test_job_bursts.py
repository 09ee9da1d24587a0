"""Bursts in the store (#17, part 2): migration 0009 keeps old jobs, which the estimates group by
minute as before; a stored job's burst reaches the scheduler's view; a restarted runtime goes on
with the bursts still open. On SQLite and PostgreSQL; the route that names them is tested through
the platform (tests/platform/test_start_estimates.py)."""

from __future__ import annotations

import sqlalchemy as sa

from flightbase_server import gpus
from flightbase_server.service import db
from flightbase_server.settings import PlatformSettings
from flightbase_jobqueue import models
from flightbase_jobqueue.app import MIGRATIONS
from flightbase_jobqueue.scheduling.bursts import Bursts
from flightbase_jobqueue.scheduling.insight import _burst
from flightbase_jobqueue.store import to_core
from tests.helpers.databases import engine_fixture, job_row as job, migrate_jobqueue as migrate, training_row as training


engine = engine_fixture("job_bursts_")


def test_old_jobs_have_no_burst_and_fall_back_to_the_minute_they_were_submitted_in(engine):
    migrate(engine, "0008")
    with engine.begin() as conn:
        conn.execute(models.Training.__table__.insert(), [training("t")])
        conn.execute(models.Job.__table__.insert(), [job("t")])
    db.upgrade(engine, MIGRATIONS)
    with db.Sessions(engine)() as s:
        (row,) = s.scalars(sa.select(models.Job)).all()
        core = to_core(row)
    assert row.burst is None and core.burst == ""
    assert _burst(core) == "vision|1|t|0"
    migrate(engine, "0008", down=True)
    assert "burst" not in {c["name"] for c in sa.inspect(engine).get_columns("jobs")}


def test_a_restarted_runtime_reads_stored_bursts_and_goes_on_with_the_open_one(engine, tmp_path):
    from flightbase_jobqueue.runtime import JobRuntime

    db.upgrade(engine, MIGRATIONS)
    sessions = db.Sessions(engine)
    first = Bursts()
    rows = []
    for i in range(3):
        at = 1000.0 + 10 * i
        rows.append(job(f"t{i}", id=f"j{i}", submitted_at=at, burst=first.name("vision", 1, "training", at)))
    with engine.begin() as conn:
        conn.execute(models.Training.__table__.insert(), [training(f"t{i}") for i in range(3)])
        conn.execute(models.Job.__table__.insert(), rows)
    (tmp_path / "data").mkdir(mode=0o755)
    settings = PlatformSettings(data_dir=tmp_path / "data", gpus=tuple(gpus.cpu_slots(2)))
    runtime = JobRuntime(settings, sessions, code_root=tmp_path / "code")
    queued = {j.id: j.burst for j in runtime.store.queued_jobs().jobs()}
    assert queued == {"j0": rows[0]["burst"], "j1": rows[0]["burst"], "j2": rows[0]["burst"]}
    # the next alike job, submitted 30 s after the last stored one, joins their burst; another
    # workspace's does not; one submitted after a gap starts its own
    assert runtime.bursts.name("vision", 1, "training", 1050.0) == rows[0]["burst"]
    assert runtime.bursts.name("nlp", 1, "training", 1050.0) != rows[0]["burst"]
    assert runtime.bursts.name("vision", 1, "training", 1200.0) != rows[0]["burst"]

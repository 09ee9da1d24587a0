"""Empty databases for the store tests: SQLite in the test's folder, or one on the run's real
PostgreSQL server (the ``postgres`` fixture of tests/conftest.py)."""

from __future__ import annotations

import itertools
from pathlib import Path

_names = itertools.count()


def empty_database_url(request, tmp_path: Path, kind: str, prefix: str) -> str:
    """The URL of a new, empty database of ``kind`` ("sqlite" or "postgresql")."""
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'jobqueue.sqlite'}"
    return request.getfixturevalue("postgres").create_database(f"{prefix}{next(_names)}")


def migrate_jobqueue(engine, revision: str, down: bool = False) -> None:
    """Upgrade (or, ``down``, downgrade) the jobqueue's schema on ``engine`` to ``revision``."""
    from alembic import command
    from alembic.config import Config

    from flightbase_jobqueue.app import MIGRATIONS

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(cfg, revision)


def engine_fixture(prefix: str):
    """A fixture giving an empty database's engine, once on SQLite and once on PostgreSQL."""
    import pytest

    from flightbase_server.service import db

    @pytest.fixture(params=["sqlite", "postgresql"])
    def engine(request, tmp_path):
        engine = db.make_engine(empty_database_url(request, tmp_path, request.param, prefix))
        yield engine
        engine.dispose()
    return engine


def training_row(tid: str, **changes) -> dict:
    """A jobqueue ``trainings`` row (columns up to migration 0007) for a Core INSERT."""
    return dict(id=tid, workspace="vision", name=tid, description="", kind="advanced", created_by="ann",
                created_at=None, spec={"entrypoint": "t.py"}, state="active") | changes


def job_row(tid: str, **changes) -> dict:
    """A queued one-GPU ``jobs`` row of training ``tid`` (columns up to migration 0008)."""
    return dict(id=f"{tid}-job", training_id=tid, workspace="vision", name=tid, seq=0, params={}, kind="training",
                gpus=1, gpus_per_node=None, priority=0, preemptible=True, max_runtime=None, state="queued",
                held=False, submitted_at=0.0, attained=0.0, restarts=0, stopping=False, cancel_requested=False,
                created_by="ann") | changes

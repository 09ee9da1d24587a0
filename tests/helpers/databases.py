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

"""The services upgrade their schema in a child process (``db.upgrade_apart``), so that a
running service never holds Alembic, every SQL dialect and Mako in memory (#17 part 6, the
jobqueue's 150 MB target); on a real SQLite database, with the services' own migrations."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from flightbase_server.service import db
from flightbase_jobqueue.app import MIGRATIONS

ROOT = Path(__file__).resolve().parents[2]


def _head(url: str) -> str:
    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    finally:
        engine.dispose()


def test_the_child_brings_the_schema_to_the_same_head_as_an_upgrade_in_process(tmp_path):
    apart, here = f"sqlite:///{tmp_path / 'apart.db'}", f"sqlite:///{tmp_path / 'here.db'}"
    db.upgrade_apart(apart, MIGRATIONS)
    engine = db.make_engine(here)
    try:
        db.upgrade(engine, MIGRATIONS)
    finally:
        engine.dispose()
    assert _head(apart) == _head(here)
    engine = db.make_engine(apart)
    try:
        assert "jobs" in inspect(engine).get_table_names()
    finally:
        engine.dispose()
    db.upgrade_apart(apart, MIGRATIONS)  # idempotent
    assert _head(apart) == _head(here)


def test_a_service_process_that_upgraded_apart_never_imports_alembic(tmp_path):
    """In a fresh interpreter (this one has imported Alembic for other tests): the jobqueue's
    app module, then the upgrade, leave Alembic, Mako and the other dialects out.  (Pygments,
    which Alembic's Mako loads, is also loaded by httpx's command line module, so not tested.)"""
    code = (
        "import json, sys\n"
        "from flightbase_server.service import db\n"
        "from flightbase_jobqueue.app import MIGRATIONS\n"
        f"db.upgrade_apart({json.dumps('sqlite:///' + str(tmp_path / 'jobs.db'))}, MIGRATIONS)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
        "print(json.dumps([m for m in sys.modules if m.startswith('sqlalchemy.dialects.')]))\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "services" / "jobqueue")]))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    top, dialects = (json.loads(line) for line in done.stdout.splitlines()[-2:])
    assert {"alembic", "mako"}.isdisjoint(top)
    assert not [d for d in dialects if not d.startswith("sqlalchemy.dialects.sqlite")]
    assert _head(f"sqlite:///{tmp_path / 'jobs.db'}")


def test_a_failed_upgrade_raises_one_line_and_never_shows_the_password():
    """A PostgreSQL URL with a password, on a port where nothing listens."""
    with pytest.raises(db.MigrationError) as failed:
        db.upgrade_apart("postgresql://flight:s3cret-pw@127.0.0.1:1/jobs", MIGRATIONS, timeout=60)
    message = str(failed.value)
    assert "s3cret-pw" not in message
    assert str(MIGRATIONS) in message and "\n" not in message
    assert "OperationalError" in message


def test_the_password_never_appears_on_the_child_s_command_line(tmp_path, monkeypatch):
    """What ``ps`` would show: the arguments of every process the upgrade starts."""
    seen = []
    real = subprocess.run

    def run(args, **kwargs):
        seen.append(list(args))
        return real(args, **kwargs)

    monkeypatch.setattr(db.subprocess, "run", run)
    with pytest.raises(db.MigrationError):
        db.upgrade_apart("postgresql://flight:s3cret-pw@127.0.0.1:1/jobs", MIGRATIONS, timeout=60)
    assert seen and not any("s3cret-pw" in arg for args in seen for arg in args)

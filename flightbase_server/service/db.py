"""Databases of the services: SQLAlchemy engines and Alembic migrations.

SQLite by default (WAL mode, so readers never wait for the writer), PostgreSQL
by URL. Each service owns its schema and upgrades it to the latest migration
when it starts, in a child process (:func:`upgrade_apart`): Alembic, and with it every
SQL dialect SQLAlchemy has, Mako and Pygments, is 11-12 MB of modules a running service never
needs again (the jobqueue's memory target is 150 MB, #17 part 6).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

from sqlalchemy import DateTime, Engine, create_engine, event
from sqlalchemy.types import TypeDecorator


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def upgrade(engine: Engine, migrations_dir: Path) -> None:
    """Bring the schema to the newest migration (idempotent), in this process."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


#: A child's migrations that take longer than this are stopped (a locked database).
UPGRADE_TIMEOUT = 600.0


class MigrationError(RuntimeError):
    """The child process could not bring the schema to the newest migration."""


def upgrade_apart(url: str, migrations_dir: Path, timeout: float = UPGRADE_TIMEOUT) -> None:
    """:func:`upgrade`, in a child Python process, so that the service never imports Alembic.

    The URL (it may hold a password) goes to the child on its standard input, never on a
    command line that ``ps`` shows.  The child finds the modules this process found (its
    ``sys.path``).  Raises :class:`MigrationError` with the child's last line of error output
    (SQLAlchemy's messages show a URL's password as ``***``)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    try:
        done = subprocess.run([sys.executable, "-m", "flightbase_server.service.migrate"],
                              input=json.dumps({"url": url, "migrations": str(migrations_dir)}),
                              capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise MigrationError(f"migrations in {migrations_dir} took more than {timeout:.0f} s") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        why = lines[-1].strip() if lines else f"exit status {done.returncode}"
        raise MigrationError(f"migrations in {migrations_dir} failed: {why}")


def run_migrations(context, target_metadata) -> None:
    """Body of each service's migrations/env.py."""
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("migrations run through flightbase_server.service.db.upgrade()")
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


IN_LIST_SIZE = 512  # values in one ``IN (...)``: well under SQLite's bound on a statement's parameters


def in_chunks(values: Sequence, size: int = IN_LIST_SIZE) -> Iterator[list]:
    """``values`` in slices of ``size``, one ``IN (...)`` query each, every slice padded to a
    power of two by repeating its last value (which changes nothing an ``IN`` matches).

    A list of n values is sent as ``IN (?, ?, ...)`` with n markers, and the database driver
    keeps each distinct statement it prepared (Python's sqlite3: the last 128 of each
    connection). IN lists of every length from 1 to 500 filled those caches with large
    statements. Padded, there are at most ten lengths. (Hibernate pads its IN lists the
    same way, for the same reason: ``hibernate.query.in_clause_parameter_padding``.)"""
    for i in range(0, len(values), size):
        chunk = list(values[i:i + size])
        padded = min(size, 1 << (len(chunk) - 1).bit_length())  # never over ``size`` markers
        yield chunk + chunk[-1:] * (padded - len(chunk))


def utcnow() -> dt.datetime:
    """Now, as an aware UTC datetime (the default of every timestamp column)."""
    return dt.datetime.now(dt.timezone.utc)


class UtcDateTime(TypeDecorator):
    """A timestamp that is always timezone-aware UTC when read back.

    SQLite has no time zones and returns naive datetimes; PostgreSQL returns
    aware ones. Both come back as aware UTC here, so the API answers the same.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(dt.timezone.utc) if value is not None else None

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc)


class Sessions:
    """A ``sessionmaker`` whose write transactions take turns on SQLite.

    SQLite has one writer at a time; concurrent writers otherwise wait in its
    busy handler, which sleeps in growing steps (tens of milliseconds), and the
    tail latency of a burst of submissions explodes. Taking a process-wide lock
    around each ``begin()`` makes writers queue in order instead. PostgreSQL
    needs no such lock. ``sessions()`` (no transaction) is for reads.
    """

    def __init__(self, engine: Engine):
        from sqlalchemy.orm import sessionmaker

        self._maker = sessionmaker(engine, expire_on_commit=False)
        self._engine = engine
        self._lock = threading.Lock() if engine.dialect.name == "sqlite" else None

    def __call__(self):
        return self._maker()

    @contextmanager
    def begin(self):
        with self._turn(), self._maker.begin() as session:
            yield session

    @contextmanager
    def begin_connection(self):
        """A write transaction on a Core connection (no ORM session), taking its turn as ``begin`` does.
        For hot paths that execute Core statements only: a session's own bookkeeping costs more than a
        small insert."""
        with self._turn(), self._engine.begin() as conn:
            yield conn

    @contextmanager
    def _turn(self):
        """This process's turn to write (SQLite); PostgreSQL's writers need none."""
        if self._lock is None:
            yield
            return
        with self._lock:
            yield

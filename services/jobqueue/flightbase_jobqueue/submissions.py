"""Group commit of submissions: many trainings, one transaction.

Every accepted submission must be durable before its 201 is sent, and SQLite
commits one writer at a time. Committing each submission alone caps a burst at
a few hundred per second, most of it spent in per-transaction overhead; this
writer gathers the submissions that arrive while the previous batch commits
and writes them together (Core ``INSERT``s, one commit), then answers each.
A batch that fails is retried one submission at a time, so one bad row
refuses only its own submission.

A small batch (``INLINE_MAX`` submissions or fewer) is committed on the event
loop itself, as the scheduler's own writes are. Handing it to a worker thread
and back costs about 0.2 ms of CPU, more than such a commit takes, and at a
steady pace (Kueue's baseline: about 60 submissions a second) nearly every
batch is a single submission. A larger batch goes to a thread, so that the
loop goes on reading the next requests while the database works.

A submission that carries an idempotency key already stored (its client
retried after losing the first answer) fails on the unique index; the writer
then answers it with :class:`KeyTaken`, naming the training that holds the
key, and the route answers with that training instead of a second one.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError, StatementError
from starlette.concurrency import run_in_threadpool

from flightbase_server.service import tasks

from flightbase_server.service.db import Sessions
from flightbase_jobqueue import models

log = logging.getLogger("flightbase.jobqueue.submissions")

MAX_BATCH = 500
INLINE_MAX = 4

_INSERT_TRAINING = insert(models.Training.__table__)
_INSERT_OWNER = insert(models.TrainingOwner.__table__)
_INSERT_JOB = insert(models.Job.__table__)
_INSERT_SECRET = insert(models.TrainingSecret.__table__)


class KeyTaken(Exception):
    """The submission's idempotency key is held by training ``training_id`` (made from ``digest``)."""

    def __init__(self, training_id: str, digest: str | None):
        super().__init__(training_id)
        self.training_id = training_id
        self.digest = digest


@dataclass
class Submission:
    training: dict
    owners: list[dict]
    jobs: list[dict]
    secrets: list[dict] = field(default_factory=list, repr=False)  # TrainingSecret rows, in the same commit
    done: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class SubmissionWriter:
    def __init__(self, sessions: Sessions):
        self.sessions = sessions
        self._queue: asyncio.Queue[Submission] = asyncio.Queue()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="submission-writer")

    async def stop(self) -> None:
        await tasks.cancel(self._task)

    async def write(self, training: dict, owners: list[dict], jobs: list[dict], secrets: list[dict] | None = None) -> None:
        """Return once the rows are committed (raises what the database raised)."""
        item = Submission(training, owners, jobs, list(secrets or ()))
        await self._queue.put(item)
        await item.done

    def _commit(self, batch: list[Submission]) -> None:
        # a Core connection and statements made once: the ORM session's bookkeeping and building the
        # statements again cost more than the inserts themselves
        with self.sessions.begin_connection() as conn:
            conn.execute(_INSERT_TRAINING, [s.training for s in batch])
            conn.execute(_INSERT_OWNER, [o for s in batch for o in s.owners])
            conn.execute(_INSERT_JOB, [j for s in batch for j in s.jobs])
            secrets = [row for s in batch for row in s.secrets]
            if secrets:
                try:
                    conn.execute(_INSERT_SECRET, secrets)
                except StatementError as exc:  # its text holds the statement's parameters: the values
                    raise RuntimeError(f"storing secret values failed: {type(exc.orig).__name__}") from None

    def _holder(self, training: dict) -> KeyTaken | None:
        """Who holds ``training``'s idempotency key, when it has one and it is stored already."""
        if not training.get("idempotency_key"):
            return None
        t = models.Training.__table__
        with self.sessions.begin() as session:
            row = session.execute(select(t.c.id, t.c.request_digest).where(
                t.c.workspace == training["workspace"], t.c.created_by == training["created_by"],
                t.c.idempotency_key == training["idempotency_key"])).first()
        return KeyTaken(row.id, row.request_digest) if row else None

    async def _commit_batch(self, batch: list[Submission]) -> None:
        if len(batch) <= INLINE_MAX:
            self._commit(batch)
        else:
            await run_in_threadpool(self._commit, batch)

    async def _alone(self, item: Submission) -> None:
        """Commit one submission on its own; answer it."""
        try:
            await self._commit_batch([item])
            item.done.set_result(None)
        except Exception as exc:
            taken = await run_in_threadpool(self._holder, item.training) if isinstance(exc, IntegrityError) else None
            if taken is not None:
                item.done.set_exception(taken)
                return
            log.exception("a submission could not be stored")
            item.done.set_exception(_error())

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            if len(batch) == 1:
                await self._alone(batch[0])
                continue
            try:
                await self._commit_batch(batch)
                for item in batch:
                    item.done.set_result(None)
            except Exception:
                for item in batch:  # find the bad one: each on its own
                    await self._alone(item)


def _error() -> Exception:
    from flightbase_server.service.errors import ApiError

    return ApiError(500, "the submission could not be stored; nothing was created")

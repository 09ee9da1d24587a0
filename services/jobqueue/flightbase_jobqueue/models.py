"""The jobqueue's tables: trainings, their owners and secret values, jobs, code uploads.

Users and workspaces are the hub's; rows here refer to them by name.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text
from flightbase_server.service.db import UtcDateTime, utcnow
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, validates

from flightbase_jobqueue.training_spec import SpecColumn, TrainingSpec


class Base(DeclarativeBase):
    pass


class Training(Base):
    __tablename__ = "trainings"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    workspace: Mapped[str] = mapped_column(String(64), nullable=False)
    name: Mapped[str] = mapped_column(String(128), nullable=False)
    description: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str] = mapped_column(String(16), nullable=False, default="advanced")
    created_by: Mapped[str] = mapped_column(String(255), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    spec: Mapped[TrainingSpec] = mapped_column(SpecColumn, nullable=False, default=TrainingSpec)
    state: Mapped[str] = mapped_column(String(16), nullable=False, default="queued")
    # the client's Idempotency-Key header, unique per workspace and creator, and a digest of the request it
    # came with: a retried POST /trainings (its answer lost to a timeout or a restart) finds this training
    idempotency_key: Mapped[str | None] = mapped_column(String(255), nullable=True, default=None)
    request_digest: Mapped[str | None] = mapped_column(String(64), nullable=True, default=None)

    owners: Mapped[list["TrainingOwner"]] = relationship(
        back_populates="training", cascade="all, delete-orphan", lazy="selectin", order_by="TrainingOwner.user"
    )

    __table_args__ = (Index("ix_trainings_workspace_created", "workspace", "created_at"),
                      Index("uq_trainings_idempotency", "workspace", "created_by", "idempotency_key", unique=True))

    @property
    def owner_names(self) -> list[str]:
        return [o.user for o in self.owners]

    @validates("spec")
    def _spec(self, _key: str, value: TrainingSpec | dict) -> TrainingSpec:
        """A dict given for the spec becomes its :class:`TrainingSpec` at once, not when the row is read back."""
        return value if isinstance(value, TrainingSpec) else TrainingSpec.from_json(value)


class TrainingOwner(Base):
    __tablename__ = "training_owners"

    training_id: Mapped[str] = mapped_column(ForeignKey("trainings.id", ondelete="CASCADE"), primary_key=True)
    user: Mapped[str] = mapped_column(String(255), primary_key=True)

    training: Mapped[Training] = relationship(back_populates="owners")


class TrainingSecret(Base):
    """One secret environment value of a training (``TrainingCreate.secret_env``).

    Kept apart from ``Training.spec``, which every member reads: nothing maps
    this table into an API response, only the names (``secret_env_names``).
    The value is read back only to start the training's jobs
    (``JobRuntime.resolve``). It goes with its training.

    A name that is no environment variable name (one with a ``:``) is a
    secret the platform keeps for itself with the training (e.g. a lease's
    server token, ``culler.ACTIVITY_TOKEN``): never passed to a job, never named
    in a response (:meth:`is_env`).
    """

    __tablename__ = "training_secrets"

    training_id: Mapped[str] = mapped_column(ForeignKey("trainings.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[str] = mapped_column(Text, nullable=False)

    @staticmethod
    def is_env(name: str) -> bool:
        """Whether ``name`` is one of the training's ``secret_env`` (not one of the platform's own)."""
        return ":" not in name

    def __repr__(self) -> str:  # never the value, whatever prints a row
        return f"TrainingSecret(training_id={self.training_id!r}, name={self.name!r})"


class Job(Base):
    """One run of a training's code on GPUs (a sweep has one per parameter set).

    Times are float seconds since the epoch (the service's clock), as the
    scheduling core reads them.
    """

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    training_id: Mapped[str] = mapped_column(ForeignKey("trainings.id", ondelete="CASCADE"), nullable=False)
    workspace: Mapped[str] = mapped_column(String(64), nullable=False)
    name: Mapped[str] = mapped_column(String(160), nullable=False)
    seq: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    params: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)
    kind: Mapped[str] = mapped_column(String(16), nullable=False, default="training")
    gpus: Mapped[int] = mapped_column(Integer, nullable=False)
    gpus_per_node: Mapped[int | None] = mapped_column(Integer, nullable=True)
    priority: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    preemptible: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    max_runtime: Mapped[float | None] = mapped_column(Float, nullable=True)
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    held: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    submitted_at: Mapped[float] = mapped_column(Float, nullable=False)
    enqueued_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    attained: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    restarts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    placement: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    stopping: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_by: Mapped[str] = mapped_column(String(255), nullable=False)
    # the burst it was submitted in (scheduling/bursts.py); NULL for a lease and for jobs stored before 0009
    burst: Mapped[str | None] = mapped_column(String(200), nullable=True)

    __table_args__ = (
        Index("ix_jobs_state", "state"),
        Index("ix_jobs_training", "training_id", "seq"),
        Index("ix_jobs_workspace_state", "workspace", "state"),
    )


class Preemption(Base):
    __tablename__ = "preemptions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False, index=True)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    at: Mapped[float] = mapped_column(Float, nullable=False)


class CodeUpload(Base):
    """Training code uploaded before a training is created (a file or an archive)."""

    __tablename__ = "code_uploads"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    workspace: Mapped[str] = mapped_column(String(64), nullable=False)
    filename: Mapped[str] = mapped_column(String(255), nullable=False)
    size: Mapped[int] = mapped_column(Integer, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    created_by: Mapped[str] = mapped_column(String(255), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)


class UsageInterval(Base):
    """One stretch of time a job held its GPUs (usage accounting, :mod:`flightbase_jobqueue.accounting`).

    Opened by the store when the job enters STARTING with its placement, closed
    (``ended_at``, ``outcome``) when it leaves STARTING/RUNNING, in the same
    transaction as the state change. A preemption closes it and the restart
    opens another, so the time between runs is not counted. No foreign key:
    usage outlives the trainings and jobs it was recorded for. Times are float
    seconds since the epoch, as the jobs' are.
    """

    __tablename__ = "usage_intervals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(32), nullable=False)
    training_id: Mapped[str] = mapped_column(String(32), nullable=False)
    workspace: Mapped[str] = mapped_column(String(64), nullable=False)
    user: Mapped[str] = mapped_column(String(255), nullable=False)  # the job's created_by
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # training or lease
    gpus: Mapped[int] = mapped_column(Integer, nullable=False)
    placement: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    started_at: Mapped[float] = mapped_column(Float, nullable=False)
    ended_at: Mapped[float | None] = mapped_column(Float, nullable=True)  # None: still holds them
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)  # accounting.OUTCOMES

    __table_args__ = (
        Index("ix_usage_intervals_workspace_started", "workspace", "started_at"),
        Index("ix_usage_intervals_job", "job_id"),
    )


class FairshareUsage(Base):
    """A workspace's fair-share usage as the coordinator last saved it (:mod:`.scheduling.usage`).

    ``gpu_seconds`` is its decayed usage as of ``at`` (float seconds since the
    epoch, the time of its last charge); the value at a later time decays from
    there with the ledger's half-life. Saved in batches (at most every few
    seconds, and at a clean stop) and loaded at start-up; see docs/scheduling.md.
    """

    __tablename__ = "fairshare_usage"

    workspace: Mapped[str] = mapped_column(String(64), primary_key=True)
    gpu_seconds: Mapped[float] = mapped_column(Float, nullable=False)
    at: Mapped[float] = mapped_column(Float, nullable=False)

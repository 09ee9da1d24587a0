"""The jobqueue's tables: trainings and their owners.

Users and workspaces are the hub's; rows here refer to them by name.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from flightbase.service.db import UtcDateTime
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


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
    spec: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)
    state: Mapped[str] = mapped_column(String(16), nullable=False, default="queued")

    owners: Mapped[list["TrainingOwner"]] = relationship(
        back_populates="training", cascade="all, delete-orphan", lazy="selectin", order_by="TrainingOwner.user"
    )

    __table_args__ = (Index("ix_trainings_workspace_created", "workspace", "created_at"),)

    @property
    def owner_names(self) -> list[str]:
        return [o.user for o in self.owners]


class TrainingOwner(Base):
    __tablename__ = "training_owners"

    training_id: Mapped[str] = mapped_column(ForeignKey("trainings.id", ondelete="CASCADE"), primary_key=True)
    user: Mapped[str] = mapped_column(String(255), primary_key=True)

    training: Mapped[Training] = relationship(back_populates="owners")

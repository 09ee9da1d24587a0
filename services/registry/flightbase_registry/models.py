"""The registry's tables: datasets, their versions and uploads, and images of each workspace."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String, Text, UniqueConstraint
from flightbase_server.service.db import UtcDateTime, utcnow
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Dataset(Base):
    __tablename__ = "datasets"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    workspace: Mapped[str] = mapped_column(String(64), nullable=False)
    name: Mapped[str] = mapped_column(String(128), nullable=False)
    description: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(255), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    __table_args__ = (UniqueConstraint("workspace", "name", name="uq_dataset_name"),)


class Image(Base):
    __tablename__ = "images"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    workspace: Mapped[str] = mapped_column(String(64), nullable=False)
    name: Mapped[str] = mapped_column(String(128), nullable=False)
    reference: Mapped[str] = mapped_column(String(512), nullable=False)
    description: Mapped[str] = mapped_column(Text, default="")
    frameworks: Mapped[list] = mapped_column(JSON, default=list)
    # set for uploaded images (pushed to the platform's OCI registry)
    tag: Mapped[str | None] = mapped_column(String(128), nullable=True)
    digest: Mapped[str | None] = mapped_column(String(80), nullable=True)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_by: Mapped[str] = mapped_column(String(255), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    __table_args__ = (UniqueConstraint("workspace", "name", name="uq_image_name"),)


class DatasetVersion(Base):
    """One immutable version of a dataset: its files live at storage.version_dir()."""

    __tablename__ = "dataset_versions"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    dataset_id: Mapped[str] = mapped_column(String(32), ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False)
    workspace: Mapped[str] = mapped_column(String(64), nullable=False)
    number: Mapped[int] = mapped_column(Integer, nullable=False)
    size_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    file_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # [{"path", "size", "sha256"}] of every file, archives' members included
    manifest: Mapped[list] = mapped_column(JSON, default=list)
    message: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(255), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    __table_args__ = (UniqueConstraint("dataset_id", "number", name="uq_dataset_version_number"),)


class DatasetVersionUse(Base):
    """A job that uses a version (marked by the jobqueue); the version cannot be deleted meanwhile."""

    __tablename__ = "dataset_version_uses"
    version_id: Mapped[str] = mapped_column(String(32), ForeignKey("dataset_versions.id", ondelete="CASCADE"), primary_key=True)
    job_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    marked_by: Mapped[str] = mapped_column(String(255), nullable=False)
    marked_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)


class Upload(Base):
    """An upload in progress: files are staged under storage.upload_dir(id) until commit."""

    __tablename__ = "uploads"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    dataset_id: Mapped[str] = mapped_column(String(32), ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False)
    workspace: Mapped[str] = mapped_column(String(64), nullable=False)
    # [{"path", "size", "sha256" (may be null), "extract"}], as declared at creation
    files: Mapped[list] = mapped_column(JSON, default=list)
    total_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    message: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(255), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)

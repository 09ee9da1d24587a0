"""dataset versions, uploads, version uses; image upload metadata

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""
from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dataset_versions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("dataset_id", sa.String(32), sa.ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("workspace", sa.String(64), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("file_count", sa.Integer(), nullable=False),
        sa.Column("manifest", sa.JSON(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("dataset_id", "number", name="uq_dataset_version_number"),
    )
    op.create_index("ix_dataset_versions_workspace", "dataset_versions", ["workspace"])
    op.create_table(
        "dataset_version_uses",
        sa.Column("version_id", sa.String(32), sa.ForeignKey("dataset_versions.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("job_id", sa.String(128), primary_key=True),
        sa.Column("marked_by", sa.String(255), nullable=False),
        sa.Column("marked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "uploads",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("dataset_id", sa.String(32), sa.ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("workspace", sa.String(64), nullable=False),
        sa.Column("files", sa.JSON(), nullable=True),
        sa.Column("total_bytes", sa.BigInteger(), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_uploads_workspace", "uploads", ["workspace"])
    with op.batch_alter_table("images") as batch:
        batch.add_column(sa.Column("tag", sa.String(128), nullable=True))
        batch.add_column(sa.Column("digest", sa.String(80), nullable=True))
        batch.add_column(sa.Column("size_bytes", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("images") as batch:
        batch.drop_column("size_bytes")
        batch.drop_column("digest")
        batch.drop_column("tag")
    op.drop_table("uploads")
    op.drop_table("dataset_version_uses")
    op.drop_table("dataset_versions")

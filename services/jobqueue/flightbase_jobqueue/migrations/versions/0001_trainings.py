"""trainings and their owners

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""
from alembic import op
import sqlalchemy as sa

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "trainings",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("workspace", sa.String(64), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
    )
    op.create_index("ix_trainings_workspace_created", "trainings", ["workspace", "created_at"])
    op.create_table(
        "training_owners",
        sa.Column("training_id", sa.String(32), sa.ForeignKey("trainings.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("user", sa.String(255), primary_key=True),
    )


def downgrade() -> None:
    op.drop_table("training_owners")
    op.drop_index("ix_trainings_workspace_created", "trainings")
    op.drop_table("trainings")

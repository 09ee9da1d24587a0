"""fair-share usage: each workspace's decayed GPU-seconds, kept across restarts

Revision ID: 0006
Revises: 0005
Create Date: 2027-01-20

One row per workspace (flightbase_jobqueue.models.FairshareUsage): its usage
as of ``at``, the time of its last charge. Empty at first: the ledger starts
from nothing, as it did at every start before this revision.
"""
from alembic import op
import sqlalchemy as sa

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fairshare_usage",
        sa.Column("workspace", sa.String(64), primary_key=True),
        sa.Column("gpu_seconds", sa.Float(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("fairshare_usage")

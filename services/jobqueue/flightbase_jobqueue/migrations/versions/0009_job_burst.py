"""jobs: the burst each was submitted in

Revision ID: 0009
Revises: 0008
Create Date: 2027-02-10

The start estimates draw one runtime quantile for the jobs a workspace
submits together (scheduling/bursts.py). The burst is named when a job is
submitted and kept with it, so it does not change as the jobs before it end
and so a restart keeps it. Existing rows have none (NULL): the estimates
group those by the minute they were submitted in, as before.
"""
from alembic import op
import sqlalchemy as sa

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("burst", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("burst")

"""the audit log: one row per state-changing request (flightbase_server/service/audit.py)

Revision ID: 0003
Revises: 0002
Create Date: 2027-01-10
"""
from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # the same table as the jobqueue's 0005_audit: flightbase_server.service.audit.events
    op.create_table(
        "audit_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("service", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(255), nullable=True),
        sa.Column("actor_kind", sa.String(16), nullable=False),
        sa.Column("credential", sa.String(16), nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("route", sa.String(255), nullable=True),
        sa.Column("target", sa.JSON(), nullable=False),
        sa.Column("workspace", sa.String(64), nullable=True),
        sa.Column("status", sa.Integer(), nullable=False),
    )
    op.create_index("ix_audit_events_at", "audit_events", ["at"])
    op.create_index("ix_audit_events_workspace_at", "audit_events", ["workspace", "at"])
    op.create_index("ix_audit_events_actor_at", "audit_events", ["actor", "at"])


def downgrade() -> None:
    op.drop_table("audit_events")

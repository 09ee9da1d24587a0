"""usage intervals: the GPU time of each run of each job

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-21

Backfill from what the jobs table knows, which is each job's latest run only:
a job holding GPUs now gets an open interval from its start; an ended job gets
its last run, unless a preemption ended that run (then its end is not
recorded: the job was cancelled or failed while waiting in the queue).
Earlier runs of jobs restarted before this upgrade are not recovered.
"""
from alembic import op
import sqlalchemy as sa

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

HOLDING = ("starting", "running")
ENDED = ("succeeded", "failed", "cancelled")


def upgrade() -> None:
    intervals = op.create_table(
        "usage_intervals",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(32), nullable=False),
        sa.Column("training_id", sa.String(32), nullable=False),
        sa.Column("workspace", sa.String(64), nullable=False),
        sa.Column("user", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("gpus", sa.Integer(), nullable=False),
        sa.Column("placement", sa.JSON(), nullable=True),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("ended_at", sa.Float(), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=True),
    )
    op.create_index("ix_usage_intervals_workspace_started", "usage_intervals", ["workspace", "started_at"])
    op.create_index("ix_usage_intervals_job", "usage_intervals", ["job_id"])

    jobs = sa.table(
        "jobs", sa.column("id"), sa.column("training_id"), sa.column("workspace"), sa.column("created_by"),
        sa.column("kind"), sa.column("gpus"), sa.column("placement", sa.JSON()), sa.column("state"),
        sa.column("started_at"), sa.column("finished_at"),
    )
    preemptions = sa.table("preemptions", sa.column("job_id"), sa.column("at"))
    conn = op.get_bind()
    preempted_last_run = sa.exists().where(preemptions.c.job_id == jobs.c.id, preemptions.c.at >= jobs.c.started_at)
    rows = conn.execute(
        sa.select(jobs).where(jobs.c.started_at.is_not(None), jobs.c.state.in_(HOLDING + ENDED), ~preempted_last_run)
        .order_by(jobs.c.started_at, jobs.c.id)
    ).all()
    backfill = []
    for r in rows:
        ended = r.state in ENDED
        if ended and r.finished_at is None:
            continue
        backfill.append(dict(job_id=r.id, training_id=r.training_id, workspace=r.workspace, user=r.created_by,
                             kind=r.kind, gpus=r.gpus, placement=r.placement, started_at=r.started_at,
                             ended_at=r.finished_at if ended else None, outcome=r.state if ended else None))
    if backfill:
        op.bulk_insert(intervals, backfill)


def downgrade() -> None:
    op.drop_index("ix_usage_intervals_job", "usage_intervals")
    op.drop_index("ix_usage_intervals_workspace_started", "usage_intervals")
    op.drop_table("usage_intervals")

"""trainings: the client's idempotency key and a digest of its request

Revision ID: 0008
Revises: 0007
Create Date: 2027-02-03

``POST /trainings`` takes an ``Idempotency-Key`` header. The key is stored
with the training it created, unique per workspace and creator, with a
digest of the request, so that a retry whose first answer was lost (a
timeout, a restart of the jobqueue) gets that training back instead of a
second one. Existing rows have no key (NULL, which a unique index does not
compare on SQLite or PostgreSQL).
"""
from alembic import op
import sqlalchemy as sa

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("trainings") as batch:
        batch.add_column(sa.Column("idempotency_key", sa.String(255), nullable=True))
        batch.add_column(sa.Column("request_digest", sa.String(64), nullable=True))
    op.create_index("uq_trainings_idempotency", "trainings", ["workspace", "created_by", "idempotency_key"],
                    unique=True)


def downgrade() -> None:
    op.drop_index("uq_trainings_idempotency", table_name="trainings")
    with op.batch_alter_table("trainings") as batch:
        batch.drop_column("request_digest")
        batch.drop_column("idempotency_key")

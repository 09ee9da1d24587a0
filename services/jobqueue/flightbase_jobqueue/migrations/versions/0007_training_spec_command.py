"""trainings' spec: the first version's ``command`` becomes ``entrypoint`` and ``args``

Revision ID: 0007
Revises: 0006
Create Date: 2027-01-27

``Training.spec`` is read as a typed model (flightbase_jobqueue.training_spec).
Every form earlier versions wrote reads as it is, except the first version's
(revision 0001): it stored the request's ``command``, the entry point and its
arguments as one list, where every later version stores ``entrypoint`` and
``args``. Those rows are rewritten, the key order otherwise kept; a ``command``
that is no non-empty list of strings is left as it is (the model then names it
when the row is read). Downgrading leaves the rows as they are: ``entrypoint``
and ``args`` are what revisions 0002 to 0006 read.
"""
from alembic import op
import sqlalchemy as sa

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def reshaped(spec: object) -> dict | None:
    """The spec with ``command`` split into ``entrypoint`` and ``args`` (in its place), or None to leave it."""
    if not isinstance(spec, dict) or "command" not in spec or "entrypoint" in spec:
        return None
    command = spec["command"]
    if not isinstance(command, list) or not command or not all(isinstance(c, str) for c in command):
        return None
    out: dict = {}
    for key, value in spec.items():
        if key == "command":
            out["entrypoint"], out["args"] = command[0], command[1:]
        elif key != "args":
            out[key] = value
    return out


def upgrade() -> None:
    trainings = sa.table("trainings", sa.column("id", sa.String()), sa.column("spec", sa.JSON()))
    conn = op.get_bind()
    maybe = sa.cast(trainings.c.spec, sa.Text()).like('%"command"%')  # what reshaped() may change, not every row
    for training_id, spec in conn.execute(sa.select(trainings.c.id, trainings.c.spec).where(maybe)).all():
        new = reshaped(spec)
        if new is not None:
            conn.execute(trainings.update().where(trainings.c.id == training_id).values(spec=new))


def downgrade() -> None:
    pass

from alembic import context

from flightbase_server.service.db import run_migrations
from flightbase_jobqueue.models import Base

run_migrations(context, Base.metadata)

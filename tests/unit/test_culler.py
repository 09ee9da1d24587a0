"""The lease culler acts on leases only through what it is given (``culler.LeaseOwner``; #19, item 5).

A real jobqueue database (SQLite, the service's migrations) holds two granted
leases; the hub is a small HTTP server on loopback that answers each user's
model (in a real deployment it is another process). The owner is a recorder of
the three calls the culler may make: the scheduler is not needed to judge a
lease. The whole path with a real hub, spawner and scheduler is
tests/spawner/test_jupyter_training.py.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from flightbase_server.service import db
from flightbase_jobqueue import leases, models
from flightbase_jobqueue.app import MIGRATIONS
from flightbase_jobqueue.culler import GRACE_SECONDS, LeaseReconciler
from tests.helpers.loopback import JsonServer


class Owner:
    """Records what the culler asks (a ``LeaseOwner``)."""

    def __init__(self):
        self.calls: list[tuple] = []

    def note(self, job_id, reason):
        self.calls.append(("note", job_id, reason))

    def ending(self, job_id, reason):
        self.calls.append(("ending", job_id, reason))

    def release_lease(self, job_id, reason):
        self.calls.append(("release_lease", job_id, reason))


@pytest.fixture
def hub():
    """The hub's ``GET /users/{name}``: alice has her server ``gpu``, bob has none left."""
    users = {"alice": {"name": "alice", "servers": {"gpu": {"ready": False, "pending": "spawn", "url": "/user/alice/gpu/"}}},
             "bob": {"name": "bob", "servers": {}}}
    server = JsonServer(lambda path: users[path.rsplit("/", 1)[1]])
    yield f"{server.url}/hub/api"
    server.close()


def test_a_lease_whose_server_is_gone_is_released_through_the_owner(tmp_path, hub):
    engine = db.make_engine(f"sqlite:///{tmp_path / 'jobqueue.sqlite'}")
    db.upgrade(engine, MIGRATIONS)
    sessions = db.Sessions(engine)
    long_ago = time.time() - 10 * GRACE_SECONDS
    with sessions.begin() as session:
        for user in ("alice", "bob"):
            session.add(models.Training(id=f"t-{user}", workspace="ws", name="nb", kind=leases.TRAINING_KIND,
                                        created_by=user, spec={"server": "gpu"}, state="active"))
            session.flush()
            session.add(models.Job(id=f"j-{user}", training_id=f"t-{user}", workspace="ws", name="nb",
                                   kind=leases.KIND, gpus=1, state="running", submitted_at=long_ago,
                                   started_at=long_ago, placement={"local": [0]}, created_by=user))
    owner = Owner()

    async def timeout_of(workspace):
        return None  # no idle culling here: only the servers' presence is judged

    async def check():
        culler = LeaseReconciler(owner, sessions, hub, "http://127.0.0.1:1", "jobqueue-token",
                                 idle_timeout_of=timeout_of)
        try:
            await culler.check_once()
        finally:
            await culler.stop()

    asyncio.run(check())
    assert owner.calls == [("release_lease", "j-bob", "its server stopped")]
    engine.dispose()

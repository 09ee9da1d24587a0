"""The jobqueue's access levels on its own objects: a training, a job, a lease.

Each factory declares the route's level (``flightbase_server.service.access.needs``) and resolves the
object named by the path once, with the statuses the routes have always had: 404 for whoever may
not see its workspace (as if it did not exist), 403 for a member without the right.

- ``Level.MEMBER``: the permission in the object's workspace;
- ``Level.CONTROL``: a training's owners, or the workspace's managers (``trainings:manage``);
- ``Level.MANAGER``: a manager action in the object's workspace.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from flightbase_server.service.access import Level, needs
from flightbase_server.service.deps import CurrentIdentity, in_session
from flightbase_server.service.errors import not_found
from flightbase_jobqueue.models import Job, Training


def training(level: Level, permission: str):
    """The training of ``{training_id}`` (a ``TrainingOut``). CONTROL checks ``permission`` in its
    workspace first (404/403), then ownership."""
    async def resolve(request: Request, identity: CurrentIdentity, training_id: str):
        from flightbase_jobqueue.api.trainings import load_training, require_control

        found = await load_training(request, identity, training_id, permission)
        if level is Level.CONTROL:
            await require_control(request, identity, found)
        return found

    return needs(level, permission, resolve)


def job(level: Level, permission: str):
    """The job of ``{job_id}`` (a ``Job`` row). CONTROL: ``permission`` in its workspace, then its
    training's owners or managers."""
    async def resolve(request: Request, identity: CurrentIdentity, job_id: str) -> Job:
        from flightbase_jobqueue.api.jobs import load_job
        from flightbase_jobqueue.api.trainings import load_training, require_control

        found = await load_job(request, identity, job_id, permission)
        if level is Level.CONTROL:
            await require_control(request, identity, await load_training(request, identity, found.training_id,
                                                                         "trainings:read"))
        return found

    return needs(level, permission, resolve)


@dataclass
class LeaseFound:
    job: Job
    training: Training


def lease(level: Level):
    """The lease of ``{lease_id}`` with its training (``trainings:read``); CONTROL: then its
    training's owners or managers."""
    async def resolve(request: Request, identity: CurrentIdentity, lease_id: str) -> LeaseFound:
        from flightbase_jobqueue import leases as lease_kinds
        from flightbase_jobqueue.api.trainings import load_training, require_control

        def load(session):
            found = session.get(Job, lease_id)
            if found is None or found.kind != lease_kinds.KIND:
                return None
            return found, session.get(Training, found.training_id)

        found = await in_session(request, load)
        if found is None:
            raise not_found(f"lease {lease_id!r}")
        # 404 for those who may not see the workspace, 403 without trainings:read
        out = await load_training(request, identity, found[1].id, "trainings:read")
        if level is Level.CONTROL:
            await require_control(request, identity, out)
        return LeaseFound(*found)

    return needs(level, "trainings:read", resolve)


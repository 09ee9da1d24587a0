"""The jobqueue service's composition root: settings -> store, backend, scheduler -> routes."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from fastapi import FastAPI

from flightbase import __version__
from flightbase.service import db
from flightbase.service.app import create_app
from flightbase.service.hub import HubClient, make_hub_auth
from flightbase.settings import PlatformSettings
from flightbase_jobqueue.api import builtin, code, info, jobs, trainings, workspaces
from flightbase_jobqueue.datasets import DatasetClient
from flightbase_jobqueue.runtime import JobRuntime, limits_from
from flightbase_jobqueue.submissions import SubmissionWriter

log = logging.getLogger("flightbase.jobqueue")
MIGRATIONS = Path(__file__).parent / "migrations"
LIMITS_REFRESH_SECONDS = 5.0


async def refresh_limits(app: FastAPI) -> None:
    """Keep the scheduler's copy of every workspace's quota in step with the hub."""
    while True:
        try:
            found = await app.state.hub.workspaces()
            app.state.runtime.set_limits({n: limits_from(ws.settings) for n, ws in found.items() if ws.settings})
        except Exception:
            log.exception("could not refresh workspace limits from the hub")
        await asyncio.sleep(LIMITS_REFRESH_SECONDS)


def build(settings: PlatformSettings) -> FastAPI:
    engine = db.make_engine(settings.jobqueue_db())

    async def startup(app: FastAPI) -> None:
        db.upgrade(engine, MIGRATIONS)
        sessions = db.Sessions(engine)
        app.state.sessions = sessions
        app.state.hub = HubClient(cache_seconds=min(5, settings.auth_cache_seconds))
        app.state.datasets = DatasetClient(f"http://127.0.0.1:{settings.registry_port}")
        app.state.runtime = JobRuntime(settings, sessions, code_root=settings.data_dir / "code",
                                       datasets=app.state.datasets)
        await app.state.runtime.start()
        app.state.submissions = SubmissionWriter(sessions)
        app.state.submissions.start()
        app.state.code_uploads = {}
        app.state.limits_task = asyncio.create_task(refresh_limits(app))
        log.info("jobqueue ready: %d %s(s), policy %s", len(settings.gpus), info.gpu_kind(settings.gpus),
                 settings.scheduler_policy)

    async def shutdown(app: FastAPI) -> None:
        app.state.limits_task.cancel()
        await app.state.submissions.stop()
        await app.state.runtime.stop()
        await app.state.datasets.close()
        await app.state.hub.close()
        engine.dispose()

    app = create_app(
        name="jobqueue",
        version=__version__,
        description="Trainings, jobs, sweeps, the GPU scheduler, nodes and workspaces.",
        routers=[info.router, workspaces.router, code.router, trainings.router, jobs.router, builtin.router],
        startup=startup,
        shutdown=shutdown,
        health=lambda app: {"gpus": len(settings.gpus), "gpu_kind": info.gpu_kind(settings.gpus)},
        hub_auth=make_hub_auth(settings.auth_cache_seconds),
    )
    app.state.settings = settings
    return app

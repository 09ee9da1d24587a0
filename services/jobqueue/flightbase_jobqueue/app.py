"""The jobqueue service's composition root: settings -> store -> routes."""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI
from sqlalchemy.orm import sessionmaker

from flightbase import __version__
from flightbase.service import db
from flightbase.service.app import create_app
from flightbase.service.hub import HubClient, make_hub_auth
from flightbase.settings import PlatformSettings
from flightbase_jobqueue.api import info, trainings, workspaces

log = logging.getLogger("flightbase.jobqueue")
MIGRATIONS = Path(__file__).parent / "migrations"


def build(settings: PlatformSettings) -> FastAPI:
    engine = db.make_engine(settings.jobqueue_db())

    async def startup(app: FastAPI) -> None:
        db.upgrade(engine, MIGRATIONS)
        app.state.sessions = sessionmaker(engine, expire_on_commit=False)
        app.state.hub = HubClient(cache_seconds=min(5, settings.auth_cache_seconds))
        log.info("jobqueue ready: %d %s(s), policy %s", len(settings.gpus), info.gpu_kind(settings.gpus), settings.scheduler_policy)

    async def shutdown(app: FastAPI) -> None:
        await app.state.hub.close()
        engine.dispose()

    app = create_app(
        name="jobqueue",
        version=__version__,
        description="Trainings, jobs, sweeps, the GPU scheduler, nodes and workspaces.",
        routers=[info.router, workspaces.router, trainings.router],
        startup=startup,
        shutdown=shutdown,
        health=lambda app: {"gpus": len(settings.gpus), "gpu_kind": info.gpu_kind(settings.gpus)},
        hub_auth=make_hub_auth(settings.auth_cache_seconds),
    )
    app.state.settings = settings
    return app

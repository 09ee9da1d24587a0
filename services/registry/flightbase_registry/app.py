"""The registry service's composition root: settings -> store -> routes."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from sqlalchemy.orm import sessionmaker

from flightbase import __version__
from flightbase.service import db
from flightbase.service.app import create_app
from flightbase.service.hub import HubClient, make_hub_auth
from flightbase.settings import PlatformSettings
from flightbase_registry.api import catalog

MIGRATIONS = Path(__file__).parent / "migrations"


def build(settings: PlatformSettings) -> FastAPI:
    engine = db.make_engine(settings.registry_db())

    async def startup(app: FastAPI) -> None:
        db.upgrade(engine, MIGRATIONS)
        app.state.sessions = sessionmaker(engine, expire_on_commit=False)
        app.state.hub = HubClient(cache_seconds=min(5, settings.auth_cache_seconds))

    async def shutdown(app: FastAPI) -> None:
        await app.state.hub.close()
        engine.dispose()

    app = create_app(
        name="registry",
        version=__version__,
        description="Datasets and images of each workspace.",
        routers=[catalog.router],
        startup=startup,
        shutdown=shutdown,
        health=lambda app: {},
        hub_auth=make_hub_auth(settings.auth_cache_seconds),
    )
    app.state.settings = settings
    app.state.deployment = "embedded"
    return app

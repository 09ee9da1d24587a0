"""The registry service's composition root: settings -> store -> routes."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from flightbase import __version__
from flightbase_server.service import db
from flightbase_server.service.app import create_app
from flightbase_server.service.hub import HubClient, make_hub_auth
from flightbase_server.settings import HubServiceEnv, PlatformSettings
from flightbase_registry import prometheus, publish, storage, ui
from flightbase_registry.direct import WRITERS_CACHE_SECONDS, DataServer
from flightbase_registry.api import catalog, image_uploads, uploads, versions
from flightbase_registry.config import RegistrySettings
from flightbase_registry.oci import OciRegistry
from flightbase_registry.writer import UploadWriter

MIGRATIONS = Path(__file__).parent / "migrations"


async def scrape(app: FastAPI) -> list[prometheus.RegistryCollector]:
    """Datasets, images and storage per workspace for one Prometheus scrape (flightbase_registry.prometheus)."""

    def count():
        with app.state.sessions() as session:
            return prometheus.registry_counts(session)

    return [prometheus.RegistryCollector(await run_in_threadpool(count))]


def build(settings: PlatformSettings, registry_settings: RegistrySettings | None = None) -> FastAPI:
    engine = db.make_engine(settings.registry_db())
    reg = registry_settings or RegistrySettings.load(settings.data_dir)
    # Who is a member, kept as long as the data endpoint keeps a ticket's writers: a member
    # removed from a workspace loses its datasets and images within that (the jobqueue forgets
    # at once), through the hub's groups and through the owner's groups in a token lookup alike.
    membership_seconds = min(WRITERS_CACHE_SECONDS, settings.auth_cache_seconds)

    async def startup(app: FastAPI) -> None:
        db.upgrade_apart(settings.registry_db(), MIGRATIONS)
        app.state.sessions = db.Sessions(engine)
        app.state.hub = HubClient(cache_seconds=membership_seconds)
        root = storage.uploads_root(settings.data_dir)
        root.mkdir(parents=True, exist_ok=True)
        for leftover in root.glob("deleted-*"):  # deletions interrupted by a stop
            storage.remove_tree(leftover)
        storage.secure_datasets(settings.data_dir)
        if settings.registry_data_port:
            app.state.data_server = DataServer(app.state, settings.ip, settings.registry_data_port,
                                               hub_env=HubServiceEnv.from_env())
            app.state.data_server.start()
        if settings.backend == "docker" and app.state.oci is not None and reg.publish_builtin_images:
            publish.publish_in_background(app.state.oci, storage.image_staging(settings.data_dir))

    async def shutdown(app: FastAPI) -> None:
        if app.state.data_server is not None:
            app.state.data_server.stop()
        await app.state.hub.close()
        if app.state.oci is not None:
            app.state.oci.close()
        engine.dispose()

    def health(app: FastAPI) -> dict:
        return {"oci_registry": bool(reg.oci_registry_url)}

    app = create_app(
        name="registry",
        version=__version__,
        description="Datasets (chunked resumable uploads, immutable versions, quotas, mounts) and images "
        "(references and uploads pushed to an OCI registry) of each workspace.",
        routers=[catalog.router, uploads.router, versions.router, image_uploads.router],
        startup=startup,
        shutdown=shutdown,
        health=health,
        hub_auth=make_hub_auth(membership_seconds),
        metrics=scrape,
    )
    app.state.settings = settings
    app.state.registry_settings = reg
    app.state.deployment = settings.backend  # how images run: builtin.runs_as
    app.state.quota_lock = asyncio.Lock()
    app.state.data_server = None
    # the staging area's writer, shared by the upload routes and the data endpoint
    app.state.writer = UploadWriter(settings.data_dir, max_chunk_bytes=reg.max_chunk_bytes,
                                    direct_writes=bool(reg.direct_writes))
    app.state.oci = (OciRegistry(reg.oci_registry_url, credentials=reg.oci_credentials(settings))
                     if reg.oci_registry_url else None)
    ui.install(app)
    return app

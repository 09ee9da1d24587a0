"""The jobqueue service's composition root: settings -> store, backend, scheduler, job output -> routes."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from flightbase import __version__
from flightbase_server.service import db
from flightbase_server.service.app import create_app
from flightbase_server.service.hub import HubClient, make_hub_auth
from flightbase_server.settings import HubServiceEnv, PlatformSettings
from flightbase_jobqueue.api import builtin, code, dashboards, info, jobs, leases, trainings, usage, workspaces
from flightbase_jobqueue.culler import LeaseReconciler
from flightbase_jobqueue import models, pages, prometheus
from flightbase_jobqueue.datasets import DatasetClient
from flightbase_jobqueue.output import BackendOutput
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
            app.state.runtime.memory_gb_per_gpu = {n: ws.settings.memory_gb_per_gpu for n, ws in found.items()
                                                   if ws.settings}
        except Exception:
            log.exception("could not refresh workspace limits from the hub")
        await asyncio.sleep(LIMITS_REFRESH_SECONDS)


def make_reconciler(app: FastAPI, settings: PlatformSettings, sessions: db.Sessions,
                    hub_env: HubServiceEnv | None = None) -> LeaseReconciler:
    """The lease culler: the hub's API from the hub's environment, people's servers through the proxy.

    In a cluster the public URL is the one people use (an ingress, TLS); the jobqueue reaches the
    servers by the proxy's in-cluster Service instead (``settings.proxy_url``, set by the chart).
    """
    hub_env = (hub_env or HubServiceEnv.from_env()).require("api_url", "api_token")

    async def idle_timeout_of(workspace: str) -> float | None:
        ws = await app.state.hub.workspace(workspace)
        return ws.settings.idle_timeout_minutes * 60 if ws and ws.settings else None

    # NVML sees this machine's GPUs only: the embedded deployment's, whether its notebooks run as
    # processes or in containers (on a cluster the GPUs are on other nodes, and a busy kernel is
    # what keeps a notebook)
    reads_gpus = settings.backend in ("local", "docker") and app.state.runtime.gpu_kind == "gpu"
    reconciler = LeaseReconciler(app.state.runtime, sessions, hub_env.api_url, settings.proxy_base_url(),
                                 hub_env.api_token, idle_timeout_of=idle_timeout_of,
                                 interval=settings.lease_check_seconds, reads_gpus=reads_gpus)

    def lease_cancelled(job_id: str) -> None:
        with sessions() as session:
            job = session.get(models.Job, job_id)
            training = session.get(models.Training, job.training_id)
            owner, server = job.created_by, training.spec.server
        asyncio.get_running_loop().create_task(reconciler.stop_server(owner, server))

    app.state.runtime.on_lease_cancelled = lease_cancelled
    return reconciler


async def scrape(app: FastAPI) -> list[prometheus.JobqueueCollector]:
    """The scheduler's state for one Prometheus scrape (flightbase_jobqueue.prometheus)."""
    live = prometheus.live_state(app.state.runtime, time.time())  # on the loop, where it changes

    def count():
        with app.state.sessions() as session:
            return prometheus.stored_counts(session)

    return [prometheus.JobqueueCollector(live, await run_in_threadpool(count))]


def build(settings: PlatformSettings) -> FastAPI:
    engine = db.make_engine(settings.jobqueue_db())

    async def startup(app: FastAPI) -> None:
        db.upgrade_apart(settings.jobqueue_db(), MIGRATIONS)
        sessions = db.Sessions(engine)
        app.state.sessions = sessions
        app.state.hub = HubClient(cache_seconds=min(5, settings.auth_cache_seconds))
        hub_env = HubServiceEnv.from_env().require("api_url", "api_token")
        app.state.datasets = DatasetClient(settings.registry_api_url(), hub_env.api_token)
        app.state.runtime = JobRuntime(settings, sessions, code_root=settings.data_dir / "code",
                                       datasets=app.state.datasets)
        await app.state.runtime.start()
        # what jobs wrote (logs, metrics, NCCL records): the API's port on the backend and the store
        app.state.job_output = BackendOutput(app.state.runtime.backend, app.state.runtime.store)
        app.state.submissions = SubmissionWriter(sessions)
        app.state.submissions.start()
        app.state.code_uploads = {}  # code_id -> its workspace (api/trainings.code_problem)
        app.state.code_entrypoints = set()  # (code_id, entry point) found in the upload
        app.state.limits_task = asyncio.create_task(refresh_limits(app))
        app.state.lease_reconciler = make_reconciler(app, settings, sessions, hub_env)
        app.state.lease_reconciler.start()
        log.info("jobqueue ready: %d %s(s), policy %s", len(settings.gpus), info.gpu_kind(settings.gpus),
                 settings.scheduler_policy)

    async def shutdown(app: FastAPI) -> None:
        app.state.limits_task.cancel()
        await app.state.lease_reconciler.stop()
        await app.state.submissions.stop()
        await app.state.runtime.stop()
        await app.state.datasets.close()
        await app.state.hub.close()
        engine.dispose()

    app = create_app(
        name="jobqueue",
        version=__version__,
        description="Trainings, jobs, sweeps, the GPU scheduler, nodes and workspaces.",
        routers=[info.router, workspaces.router, code.router, trainings.router, jobs.router, builtin.router,
                 leases.router, usage.router, dashboards.router],
        startup=startup,
        shutdown=shutdown,
        health=lambda app: {"gpus": len(settings.gpus), "gpu_kind": info.gpu_kind(settings.gpus)},
        hub_auth=make_hub_auth(settings.auth_cache_seconds),
        metrics=scrape,
    )
    app.state.settings = settings
    app.state.max_code_bytes = code.MAX_CODE_BYTES  # the body limit of POST /code (flightbase_server.service.limits)
    pages.install(app)  # the dashboard and the administrators' page (flightbase_jobqueue/pages)
    return app

"""What the dashboards show: a workspace's figures (its members) and the installation's (administrators).

Both routes gather rows (the store, the scheduler's queue insight, the hub's
workspaces, NVML, the registry) and hand them to the pure
:mod:`flightbase_jobqueue.figures`. The pages (``flightbase_jobqueue/pages``)
call them with the browser's cookie; the usage chart reads ``GET /usage`` and
the audit table ``GET /audit`` directly.

The registry's part (datasets, images, storage; its audit log) is read here,
server-side, with the jobqueue's own token: the page runs under the
jobqueue's path, where the browser holds no registry cookie. Each section is
given only to a caller who holds its permission in the workspace
(``datasets:read``, ``images:read``), so the jobqueue's own rights never
widen what a person sees.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections import defaultdict
from typing import Annotated
from urllib.parse import quote

import httpx
from fastapi import APIRouter, Request
from sqlalchemy import select

from flightbase_server import authz, gpus
from flightbase_server.authz import Identity
from flightbase_server.service.access import InWorkspace, Level, admin, workspace as in_workspace
from flightbase_server.service.deps import in_session
from flightbase_jobqueue import figures, leases
from flightbase_jobqueue.backends.local import LOCAL_NODE
from flightbase_jobqueue.figures import AdminOverviewOut, AuditFeed, DashboardOut
from flightbase_jobqueue.models import Job, Training

router = APIRouter(tags=["dashboards"])
log = logging.getLogger("flightbase.jobqueue.dashboards")

LIVE = ("queued", "preempted", "starting", "running")
RECENT_TRAININGS = 10
# newest trainings looked at for the recent ones (a workspace's last 10 ended ones are almost always among them)
TRAININGS_SCANNED = 200
AUDIT_EVENTS = 20


def _readings(request: Request, placements) -> dict[tuple[str, int], dict]:
    """NVML's readings of the GPUs in ``placements``: where work runs on this machine's real GPUs."""
    runtime = request.app.state.runtime
    if runtime.settings.backend not in ("local", "docker") or runtime.gpu_kind != "gpu":
        return {}
    indices = sorted({g for placement in placements for g in (placement or {}).get(LOCAL_NODE, ())})
    return {(LOCAL_NODE, i): r for i, r in gpus.readings(indices).items()}


def _cluster(request: Request) -> tuple[int, int]:
    runtime = request.app.state.runtime
    total = sum(n.total for n in runtime.inventory.nodes())
    held = runtime.gpus_held()
    return total, max(0, total - held)


async def _registry(request: Request, path: str):
    """The registry's answer as JSON, or raises ``httpx.HTTPError``."""
    resp = await request.app.state.datasets.get(path)
    resp.raise_for_status()
    return resp.json()


@router.get("/dashboard", response_model=DashboardOut,
            summary="A workspace's dashboard: GPUs against the quota, running and queued jobs, recent trainings, "
                    "GPU notebooks, datasets, images and storage, its dates")
async def dashboard(request: Request, w: Annotated[InWorkspace, in_workspace(
        Level.MEMBER, "workspace:read", source="query", description="The workspace (one the caller is a member of)")]):
    identity, ws, workspace = w.identity, w.ws, w.ws.name

    def may(permission: str) -> bool:
        return authz.check(identity, permission, workspace, ws.managers, ws.members).allowed

    runtime = request.app.state.runtime
    now = time.time()
    see_jobs, see_trainings = may("jobs:read"), may("trainings:read")

    def load(session):
        live = list(session.scalars(select(Job).where(Job.workspace == workspace, Job.state.in_(LIVE))))
        recent = list(session.scalars(select(Training).where(Training.workspace == workspace,
                                                              Training.kind != leases.TRAINING_KIND)
                                      .order_by(Training.created_at.desc()).limit(TRAININGS_SCANNED)))
        ids = {j.training_id for j in live} | {t.id for t in recent}
        trainings = {t.id: t for t in session.scalars(select(Training).where(Training.id.in_(ids)))}
        jobs_of = defaultdict(list)
        for j in session.scalars(select(Job).where(Job.training_id.in_([t.id for t in recent]))):
            jobs_of[j.training_id].append(j)
        return live, recent, trainings, jobs_of

    live, recent, trainings, jobs_of = await in_session(request, load)
    active = [j for j in live if j.state in figures.ACTIVE]
    readings = await asyncio.to_thread(_readings, request, [j.placement for j in active])
    insights = runtime.insight() if any(j.state in figures.WAITING for j in live) else {}
    total, free = _cluster(request)
    settings = ws.settings
    last_active = request.app.state.lease_reconciler.last_active()

    storage, datasets, images, problem = None, [], [], None
    try:
        if may("datasets:read"):
            storage, datasets = await asyncio.gather(_registry(request, f"/workspaces/{quote(workspace)}/storage"),
                                                     _registry(request, f"/workspaces/{quote(workspace)}/datasets"))
        if may("images:read"):
            images = await _registry(request, f"/workspaces/{quote(workspace)}/images")
    except (httpx.HTTPError, ValueError) as exc:
        log.warning("the registry did not answer for the dashboard of %s: %s", workspace, exc)
        problem = f"the registry did not answer ({type(exc).__name__}); its figures are missing"

    return DashboardOut(
        workspace=workspace, now=now, gpu_kind=runtime.gpu_kind,
        gpus=figures.gpu_figure(active, settings.gpu_quota if settings else None, total, free),
        window=figures.window_figure(settings.start_date if settings else None,
                                     settings.end_date if settings else None, dt.date.today()),
        running=figures.running_rows(live, trainings, now, readings) if see_jobs else [],
        queue=figures.queue_rows(live, insights, trainings) if see_jobs else [],
        recent=figures.recent_trainings(recent, jobs_of, RECENT_TRAININGS) if see_trainings else [],
        notebooks=figures.notebook_rows(
            [(j, trainings[j.training_id].spec.server) for j in active
             if j.kind == leases.KIND and j.training_id in trainings], last_active, now) if see_trainings else [],
        storage=figures.storage_figure(storage), datasets=figures.dataset_rows(datasets),
        images=figures.image_rows(images), registry_error=problem,
    )


@router.get("/admin/overview", response_model=AdminOverviewOut,
            summary="Every node and GPU slot with its holder, every workspace, the people in them, and the "
                    "registry's newest audit events (administrators)")
async def admin_overview(request: Request,
                         identity: Annotated[Identity, admin("only administrators may see the installation's overview")]):
    runtime = request.app.state.runtime
    settings = request.app.state.settings
    now = time.time()

    def load(session):
        live = list(session.scalars(select(Job).where(Job.state.in_(LIVE))))
        trainings = {t.id: t for t in session.scalars(
            select(Training).where(Training.id.in_({j.training_id for j in live})))}
        return live, trainings

    live, trainings = await in_session(request, load)
    active = [j for j in live if j.state in figures.ACTIVE]
    readings = await asyncio.to_thread(_readings, request, [{LOCAL_NODE: [g["index"] for g in settings.gpus]}])
    nodes = []
    for node in runtime.inventory.nodes():
        if node.name == LOCAL_NODE:
            slots = list(settings.gpus)
        else:  # a cluster's node: its GPUs by index
            slots = [{"index": i, "kind": runtime.gpu_kind, "name": f"GPU {i}"} for i in range(node.total)]
        rows = figures.slot_rows(node.name, slots, active, trainings, readings)
        nodes.append(figures.NodeRow(name=node.name, schedulable=node.schedulable, labels=dict(node.labels),
                                     total=node.total, free=sum(1 for r in rows if r.holder is None), slots=rows))
    found = await request.app.state.hub.workspaces()
    try:
        resp = await request.app.state.datasets.get("/audit", limit=AUDIT_EVENTS)
        if resp.status_code == 404:
            audit = AuditFeed(available=False, events=[], message="the registry keeps no audit log")
        else:
            resp.raise_for_status()
            audit = AuditFeed(available=True, events=resp.json())
    except (httpx.HTTPError, ValueError) as exc:
        audit = AuditFeed(available=False, events=[], message=f"the registry did not answer ({type(exc).__name__})")
    return AdminOverviewOut(
        now=now, gpu_kind=runtime.gpu_kind, nodes=nodes,
        workspaces=figures.workspace_rows(found.values(), live, dt.date.today()),
        users=figures.user_rows(found.values()), registry_audit=audit,
    )

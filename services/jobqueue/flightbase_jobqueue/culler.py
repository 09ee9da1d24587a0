"""Keeping Jupyter trainings' leases true to their servers, and culling idle GPU notebooks.

Every ``interval`` seconds the :class:`LeaseReconciler`:

1. releases the leases whose server the hub no longer has (the server
   crashed and the hub noticed, the hub lost a pending spawn, the user was
   deleted): a lease never outlives its server by more than the hub's poll
   interval plus one check, whatever way the server ended;
2. checks each granted lease's notebook for activity — GPU utilisation from
   NVML where the lease holds a real GPU, the kernels' state and last
   activity from the server's own API (``/api/kernels`` and ``/api/status``,
   read with ``no_track_activity`` so that looking does not count as use) —
   and warns, then stops, a notebook idle for its workspace's
   ``idle_timeout_minutes``. The warning is recorded as the lease's reason
   (shown by the API, the CLI and the JupyterLab sidebar).

The jobqueue never sends its own token to a server: people's servers run
people's code, which may log every request it gets. The spawner gives each
lease a token limited to its one server (``access:servers!server=<user>/<name>``,
owned by the server's owner: nothing its code could not do already), kept
with the lease's secrets (:data:`ACTIVITY_TOKEN`) and sent only to that
server. Stopping a server needs the hub scope ``servers``; reading which
servers a user has, ``read:servers`` (:mod:`flightbase_server.hub.rbac`).

What the culler changes of a lease goes through a :class:`LeaseOwner` (the
jobqueue's runtime in the service): the culler reads the leases from the
database and never touches the scheduler itself.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from typing import Awaitable, Callable, Protocol
from urllib.parse import quote

import httpx
from sqlalchemy import select

from flightbase_server.gpus import utilisation as gpu_utilisation
from flightbase_server.service import tasks
from flightbase_server.service.db import Sessions
from flightbase_jobqueue import leases
from flightbase_jobqueue.models import Job, Training, TrainingSecret

log = logging.getLogger("flightbase.jobqueue.culler")

# A queued lease's server is pending in the hub; one just granted may not be
# registered as pending for a moment: leases younger than this are not judged.
GRACE_SECONDS = 10.0
GPU_BUSY_PERCENT = 5
# The name a lease's server token is kept under among its training's secrets (no
# environment variable can be named so: it is never passed to anything as one).
ACTIVITY_TOKEN = "flightbase:activity-token"


class LeaseOwner(Protocol):
    """What the culler asks of whoever holds the leases (``runtime.JobRuntime``), on the event loop."""

    def note(self, job_id: str, reason: str | None) -> None:
        """Record (or clear, with None) what the lease's user should know now: the idle warning."""

    def ending(self, job_id: str, reason: str) -> None:
        """Why the lease is about to end: its server is being stopped for it."""

    def release_lease(self, job_id: str, reason: str) -> None:
        """The lease's server is gone: the lease ends (a queued one is cancelled)."""


def _epoch(stamp: str | None) -> float | None:
    if not stamp:
        return None
    try:
        return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class LeaseReconciler:
    """The leases' check every ``interval`` seconds (see above).

    ``owner``: what ends and annotates leases. ``sessions``: the jobqueue's
    database, where the leases are read. ``hub_api_url`` and ``token``: the
    hub's API as the jobqueue. ``public_url``: where people's servers are
    reached (the proxy). ``idle_timeout_of``: a workspace's idle timeout in
    seconds (None: its notebooks are never culled). ``reads_gpus``: whether
    the leases' GPUs are this machine's, so that NVML's utilisation counts as
    activity (the local and docker backends with real GPUs).
    """

    def __init__(self, owner: LeaseOwner, sessions: Sessions, hub_api_url: str, public_url: str, token: str, *,
                 idle_timeout_of: Callable[[str], Awaitable[float | None]], interval: float = 30.0,
                 reads_gpus: bool = False):
        self.owner = owner
        self.reads_gpus = reads_gpus
        self.sessions = sessions
        self.public_url = public_url.rstrip("/")
        self.interval = interval
        self.idle_timeout_of = idle_timeout_of
        self._hub = httpx.AsyncClient(base_url=hub_api_url.rstrip("/"), headers={"Authorization": f"token {token}"},
                                      timeout=10)
        # no default credentials: each server is sent only the token its owner gave for it
        self._servers = httpx.AsyncClient(timeout=10)
        self._last_active: dict[str, float] = {}
        self._warned: set[str] = set()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="lease-reconciler")

    async def stop(self) -> None:
        await tasks.cancel(self._task)
        await self._hub.aclose()
        await self._servers.aclose()

    async def _run(self) -> None:
        while True:
            try:
                await self.check_once()
            except Exception:
                log.exception("lease check failed")
            await asyncio.sleep(self.interval)

    # -- the hub ---------------------------------------------------------------
    async def hub_servers(self, user: str) -> dict[str, dict] | None:
        """The user's servers (name -> model), None if the user does not exist; raises if the hub is down."""
        resp = await self._hub.get(f"/users/{quote(user)}")
        if resp.status_code == 404:
            return None
        resp.raise_for_status()
        return resp.json().get("servers") or {}

    async def stop_server(self, user: str, server: str) -> None:
        path = f"/users/{quote(user)}/servers/{quote(server)}" if server else f"/users/{quote(user)}/server"
        resp = await self._hub.delete(path)
        if resp.status_code not in (202, 204, 404, 400):
            resp.raise_for_status()

    # -- one check -------------------------------------------------------------
    def _live_leases(self) -> list[tuple[Job, Training]]:
        with self.sessions() as session:
            rows = session.execute(
                select(Job, Training).join(Training, Training.id == Job.training_id)
                .where(Job.kind == leases.KIND, Job.state.in_(("queued", "preempted", "starting", "running")))
            ).all()
            for job, training in rows:
                session.expunge(job)
                session.expunge(training)
            return rows

    async def check_once(self) -> None:
        now = time.time()
        rows = self._live_leases()
        servers_of: dict[str, dict | None] = {}
        for job, training in rows:
            if now - (job.started_at or job.submitted_at) < GRACE_SECONDS:
                continue
            if job.created_by not in servers_of:
                try:
                    servers_of[job.created_by] = await self.hub_servers(job.created_by)
                except httpx.HTTPError as exc:  # the hub is down: judge nothing now
                    log.warning("cannot read the hub's servers (%s); leases are checked later", exc)
                    return
            server_name = training.spec.server
            servers = servers_of[job.created_by]
            if leases.orphaned(server_name, servers):
                log.info("lease %s: server %s/%s is gone; releasing", job.id, job.created_by, server_name)
                self.owner.release_lease(job.id, "its server stopped")
                self._forget(job.id)
                continue
            if job.state in ("starting", "running") and servers[server_name].get("ready"):
                await self._check_idle(now, job, server_name, servers[server_name])
        live = {job.id for job, _ in rows}
        for job_id in list(self._last_active):
            if job_id not in live:
                self._forget(job_id)

    def last_active(self) -> dict[str, float]:
        """When each granted lease's notebook was last seen in use (epoch seconds), as of the last
        check; a lease not checked yet is absent. The dashboard shows how long each has been idle."""
        return dict(self._last_active)

    def _forget(self, job_id: str) -> None:
        self._last_active.pop(job_id, None)
        self._warned.discard(job_id)

    def activity_token(self, job: Job) -> str | None:
        """The token the lease's server accepts for reading its kernels (None: the spawner gave none)."""
        with self.sessions() as session:
            row = session.get(TrainingSecret, (job.training_id, ACTIVITY_TOKEN))
            return row.value if row is not None else None

    async def activity(self, job: Job, server: dict) -> leases.Activity:
        gpu_busy = None
        if self.reads_gpus:  # NVML reads this machine's GPUs only (make_reconciler in app.py says when)
            gpus = [g for ids in (job.placement or {}).values() for g in ids]
            readings = [gpu_utilisation(g) for g in gpus]
            if readings and all(r is not None for r in readings):
                gpu_busy = any(r >= GPU_BUSY_PERCENT for r in readings)
        base = self.public_url + server["url"]
        kernels_busy, last = False, None
        token = self.activity_token(job)
        if token is None:  # nothing to read the kernels with (a lease from an older spawner): counts as active
            return leases.Activity(gpu_busy=gpu_busy, kernels_busy=False, last_activity=time.time())
        try:
            resp = await self._servers.get(base + "api/kernels", params={"no_track_activity": "1"},
                                           headers={"Authorization": f"token {token}"})
            resp.raise_for_status()
            kernels = resp.json()
            kernels_busy = any(k.get("execution_state") == "busy" for k in kernels)
            stamps = [t for t in (_epoch(k.get("last_activity")) for k in kernels) if t]
            last = max(stamps) if stamps else None
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("lease %s: cannot read the server's kernels: %s", job.id, exc)
            last = time.time()  # unknown counts as active: never cull on a failed look
        return leases.Activity(gpu_busy=gpu_busy, kernels_busy=kernels_busy, last_activity=last)

    async def _check_idle(self, now: float, job: Job, server_name: str, server: dict) -> None:
        timeout = await self.idle_timeout_of(job.workspace)
        if timeout is None:
            return
        seen = await self.activity(job, server)
        verdict = leases.idle_verdict(now, job.started_at or now, self._last_active.get(job.id, 0.0), seen,
                                      timeout, job.id in self._warned)
        self._last_active[job.id] = verdict.last_active
        if verdict.action == "warn":
            log.info("lease %s: %s", job.id, verdict.message)
            self._warned.add(job.id)
            self.owner.note(job.id, verdict.message)
        elif verdict.action == "keep" and not verdict.message and job.id in self._warned:
            self._warned.discard(job.id)  # used again: the warning no longer holds
            self.owner.note(job.id, None)
        elif verdict.action == "stop":
            log.info("lease %s: %s", job.id, verdict.message)
            self.owner.ending(job.id, verdict.message)
            await self.stop_server(job.created_by, server_name)
            self.owner.release_lease(job.id, verdict.message)
            self._forget(job.id)

"""The dashboards' figures, from plain rows: pure functions (no I/O, no clock: ``now`` comes in).

``GET /api/v1/dashboard`` (a workspace, for its members) and ``GET
/api/v1/admin/overview`` (administrators) gather rows from the store, the
scheduler, the hub and the registry (``api/dashboards.py``) and hand them to
the functions here; the pages (``pages/``) only draw what these return.
Rows are read by attribute (``job.state``, ``job.gpus``...), so the ORM rows
and the tests' small factories both do.

- member dashboard: ``gpu_figure`` (GPUs in use against the quota),
  ``window_figure`` (the workspace's dates), ``running_rows``, ``queue_rows``,
  ``recent_trainings``, ``notebook_rows`` (idle time), ``storage_figure``;
- administrators: ``slot_rows`` (every GPU or CPU slot, its holder and NVML
  readings), ``workspace_rows``, ``user_rows``.

The response bodies are defined here too, next to what fills them.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any, Iterable, Mapping, Sequence

from pydantic import BaseModel, Field

ACTIVE = ("starting", "running")
WAITING = ("queued", "preempted")
ENDED = ("succeeded", "failed", "cancelled")
LEASE = "lease"
JUPYTER_TRAINING = "jupyter"

# (node, GPU index) -> {"utilisation_percent", "memory_used_bytes", "memory_total_bytes"} (flightbase_server.gpus.readings)
Readings = Mapping[tuple[str, int], Mapping[str, int]]


# -- response bodies ---------------------------------------------------------------------------------
class GpuFigure(BaseModel):
    in_use: int = Field(description="GPUs (or CPU slots) the workspace holds now: trainings and notebooks")
    quota: int | None = Field(description="The workspace's gpu_quota; None: no quota")
    trainings: int = Field(description="Of in_use, held by training jobs")
    notebooks: int = Field(description="Of in_use, held by Jupyter trainings' leases")
    borrowed: int = Field(description="Of in_use, above the quota (idle GPUs borrowed; reclaimable)")
    percent: int | None = Field(description="in_use as a percentage of the quota")
    cluster_total: int = Field(description="GPUs of the whole installation")
    cluster_free: int = Field(description="GPUs no one holds now")


class WindowFigure(BaseModel):
    start_date: dt.date | None
    end_date: dt.date | None
    state: str = Field(description="open, not-started, ended, or unlimited (no dates)")
    days_left: int | None = Field(description="Days until the end date, today included; None without one")
    note: str | None = Field(description="Why work cannot run today, when it cannot")


class RunningRow(BaseModel):
    job_id: str
    training_id: str
    name: str
    user: str
    gpus: int
    hosts: list[str]
    placement: dict[str, list[int]]
    state: str
    started_at: float | None
    elapsed_seconds: float | None
    priority: int
    restarts: int
    utilisation_percent: float | None = Field(description="Mean NVML utilisation of its GPUs; None where unknown")


class QueuedRow(BaseModel):
    job_id: str
    training_id: str
    name: str
    kind: str
    user: str
    gpus: int
    priority: int
    position: int | None = Field(description="1-based, in the whole queue; None while held")
    workspace_position: int | None
    estimated_start: float | None
    estimated_start_range: list[float] | None = Field(
        default=None, description="[earliest, latest] estimated start; None without an estimate")
    reason: str
    held: bool
    submitted_at: float


class TrainingRow(BaseModel):
    training_id: str
    name: str
    kind: str
    user: str
    outcome: str = Field(description="succeeded, failed or cancelled")
    jobs: int
    started_at: float | None
    ended_at: float | None
    duration_seconds: float | None = Field(description="From its first job's start to its last job's end")


class NotebookRow(BaseModel):
    lease_id: str
    user: str
    server: str
    gpus: list[int]
    node: str | None
    granted_at: float | None
    held_seconds: float | None
    idle_seconds: float | None = Field(description="Since the notebook was last seen in use (as of the last "
                                                   "idle check); None before its first check")
    note: str | None = Field(description="An idle warning, when one was given")


class StorageFigure(BaseModel):
    used_bytes: int
    quota_bytes: int | None
    datasets_bytes: int
    images_bytes: int
    percent: int | None


class DatasetRow(BaseModel):
    name: str
    latest_version: int | None
    versions: int
    size_bytes: int
    created_by: str


class ImageRow(BaseModel):
    name: str
    reference: str
    source: str
    builtin: bool
    size_bytes: int | None


class DashboardOut(BaseModel):
    """A workspace's dashboard: everything its page shows but the usage chart (``GET /usage``)."""

    workspace: str
    now: float
    gpu_kind: str
    gpus: GpuFigure
    window: WindowFigure
    running: list[RunningRow]
    queue: list[QueuedRow]
    recent: list[TrainingRow]
    notebooks: list[NotebookRow]
    storage: StorageFigure | None = Field(description="None where the caller may not read datasets, or the "
                                                      "registry did not answer (see registry_error)")
    datasets: list[DatasetRow]
    images: list[ImageRow]
    registry_error: str | None = None


class SlotHolder(BaseModel):
    job_id: str
    training_id: str
    name: str
    kind: str
    workspace: str
    user: str


class SlotRow(BaseModel):
    index: int
    kind: str = Field(description="gpu or cpu-slot")
    name: str
    holder: SlotHolder | None
    since: float | None = Field(description="When its holder got it")
    utilisation_percent: int | None = None
    memory_used_bytes: int | None = None
    memory_total_bytes: int | None = None


class NodeRow(BaseModel):
    name: str
    schedulable: bool
    labels: dict[str, str]
    total: int
    free: int
    slots: list[SlotRow]


class WorkspaceRow(BaseModel):
    name: str
    members: int
    managers: list[str]
    quota: int | None
    allow_borrowing: bool | None
    borrowing_limit: int | None = Field(default=None, description="Most GPUs it may borrow above its quota; None: no limit")
    max_gpus_per_job: int | None
    in_use: int
    borrowed: int
    queued: int
    window: WindowFigure | None
    settings_errors: dict[str, str]


class UserWorkspace(BaseModel):
    workspace: str
    manager: bool


class UserRow(BaseModel):
    name: str
    workspaces: list[UserWorkspace]


class AuditFeed(BaseModel):
    available: bool
    events: list[dict[str, Any]]
    message: str | None = None


class AdminOverviewOut(BaseModel):
    now: float
    gpu_kind: str
    nodes: list[NodeRow]
    workspaces: list[WorkspaceRow]
    users: list[UserRow]
    registry_audit: AuditFeed = Field(description="The registry's newest audit events (the jobqueue's own are "
                                                  "at GET /audit)")


# -- member dashboard --------------------------------------------------------------------------------
def gpu_figure(active_jobs: Iterable[Any], quota: int | None, cluster_total: int, cluster_free: int) -> GpuFigure:
    """``active_jobs``: the workspace's jobs that hold GPUs now (starting or running)."""
    active = [j for j in active_jobs if j.state in ACTIVE]
    in_use = sum(j.gpus for j in active)
    notebooks = sum(j.gpus for j in active if j.kind == LEASE)
    return GpuFigure(
        in_use=in_use, quota=quota, trainings=in_use - notebooks, notebooks=notebooks,
        borrowed=max(0, in_use - quota) if quota is not None else 0,
        percent=round(100 * in_use / quota) if quota else None,
        cluster_total=cluster_total, cluster_free=cluster_free,
    )


def window_figure(start_date: dt.date | None, end_date: dt.date | None, today: dt.date) -> WindowFigure:
    if start_date is None and end_date is None:
        return WindowFigure(start_date=None, end_date=None, state="unlimited", days_left=None, note=None)
    days_left = (end_date - today).days + 1 if end_date is not None else None
    if start_date is not None and today < start_date:
        state, note = "not-started", f"the workspace starts on {start_date.isoformat()}"
    elif end_date is not None and today > end_date:
        state, note, days_left = "ended", f"the workspace ended on {end_date.isoformat()}", 0
    else:
        state, note = "open", None
    return WindowFigure(start_date=start_date, end_date=end_date, state=state, days_left=days_left, note=note)


def utilisation(placement: Mapping[str, Sequence[int]] | None, readings: Readings) -> float | None:
    """The mean utilisation of the GPUs of ``placement``; None unless every one of them was read."""
    values = [readings.get((node, g), {}).get("utilisation_percent") for node, gpus in (placement or {}).items()
              for g in gpus]
    if not values or any(v is None for v in values):
        return None
    return round(sum(values) / len(values), 1)


def running_rows(jobs: Iterable[Any], trainings: Mapping[str, Any], now: float,
                 readings: Readings = {}) -> list[RunningRow]:
    """Training jobs holding GPUs (notebooks are ``notebook_rows``), the longest running first."""
    rows = []
    for j in jobs:
        if j.state not in ACTIVE or j.kind == LEASE:
            continue
        t = trainings.get(j.training_id)
        placement = {node: list(gpus) for node, gpus in (j.placement or {}).items()}
        rows.append(RunningRow(
            job_id=j.id, training_id=j.training_id, name=t.name if t is not None else j.name, user=j.created_by,
            gpus=j.gpus, hosts=sorted(placement), placement=placement, state=j.state, started_at=j.started_at,
            elapsed_seconds=max(0.0, now - j.started_at) if j.started_at is not None else None,
            priority=j.priority, restarts=j.restarts, utilisation_percent=utilisation(placement, readings)))
    return sorted(rows, key=lambda r: (r.started_at is None, r.started_at or 0.0, r.job_id))


def held_reason(training: Any = None, insight: Any = None) -> str:
    """Why a held job waits (a sweep's later jobs wait outside the scheduler's queue, and a paused
    training's queued jobs with them): from its training when the caller has it at hand; then,
    with the queue's ``insight`` for it, when its release is projected to start it."""
    if training is None:
        why = "held: waits for earlier jobs of its sweep (or the sweep is paused)"
    elif training.state == "paused":
        why = "held: its training is paused; resume it to release its jobs"
    else:
        k = training.spec.parallel
        why = (f"held: its sweep runs {k} job{'s' if k != 1 else ''} at a time; "
               "joins the queue when one of its earlier jobs ends")
    return why if insight is None else f"{why}; {insight.reason}"


def estimated_range(info: Any) -> list[float] | None:
    """A queue insight's range of estimated starts as the API gives it (None without one)."""
    r = getattr(info, "estimated_range", None)
    return None if r is None else list(r)


def queue_rows(jobs: Iterable[Any], insights: Mapping[str, Any], trainings: Mapping[str, Any]) -> list[QueuedRow]:
    """Waiting jobs in queue order (``insights``: the scheduler's position, estimate and reason by job
    id); held ones (a sweep's later jobs, a paused training) after them, oldest first."""
    rows = []
    for j in jobs:
        if j.state not in WAITING:
            continue
        t = trainings.get(j.training_id)
        info = insights.get(j.id)
        if j.held and j.state == "queued":  # no place in the queue; its release's estimate if any
            place = dict(position=None, workspace_position=None, reason=held_reason(t, info),
                         estimated_start=None if info is None else info.estimated_start,
                         estimated_start_range=estimated_range(info))
        elif info is not None:
            place = dict(position=info.position, workspace_position=info.workspace_position,
                         estimated_start=info.estimated_start, reason=info.reason,
                         estimated_start_range=estimated_range(info))
        else:
            place = dict(position=None, workspace_position=None, estimated_start=None,
                         reason="waiting for the next scheduling pass")
        rows.append(QueuedRow(job_id=j.id, training_id=j.training_id, name=t.name if t is not None else j.name,
                              kind=j.kind, user=j.created_by, gpus=j.gpus, priority=j.priority, held=j.held,
                              submitted_at=j.submitted_at, **place))
    return sorted(rows, key=lambda r: (r.position is None, r.position or 0, r.submitted_at, r.job_id))


def outcome(states: Sequence[str]) -> str | None:
    """A training's outcome once every job has ended (None while one has not): as the trainings API says."""
    if not states or any(s not in ENDED for s in states):
        return None
    counts = Counter(states)
    if counts["failed"]:
        return "failed"
    if counts["cancelled"] and not counts["succeeded"]:
        return "cancelled"
    return "succeeded"


def recent_trainings(trainings: Iterable[Any], jobs_of: Mapping[str, Sequence[Any]], limit: int = 10) -> list[TrainingRow]:
    """Ended trainings (not Jupyter trainings: those are notebooks), the latest to end first."""
    rows = []
    for t in trainings:
        if t.kind == JUPYTER_TRAINING:
            continue
        jobs = jobs_of.get(t.id, ())
        result = outcome([j.state for j in jobs])
        if result is None:
            continue
        starts = [j.started_at for j in jobs if j.started_at is not None]
        ends = [j.finished_at for j in jobs if j.finished_at is not None]
        started, ended = (min(starts) if starts else None), (max(ends) if ends else None)
        rows.append(TrainingRow(
            training_id=t.id, name=t.name, kind=t.kind, user=t.created_by, outcome=result, jobs=len(jobs),
            started_at=started, ended_at=ended,
            duration_seconds=max(0.0, ended - started) if started is not None and ended is not None else None))
    rows.sort(key=lambda r: (r.ended_at or 0.0, r.training_id), reverse=True)
    return rows[:limit]


def notebook_rows(leases: Iterable[tuple[Any, str]], last_active: Mapping[str, float], now: float) -> list[NotebookRow]:
    """Notebooks holding GPUs: ``leases`` are (lease job, server name) pairs; ``last_active`` when the
    idle check last saw each in use."""
    rows = []
    for job, server in leases:
        if job.state not in ACTIVE:
            continue
        placement = job.placement or {}
        seen = last_active.get(job.id)
        rows.append(NotebookRow(
            lease_id=job.id, user=job.created_by, server=server,
            gpus=sorted(g for gpus in placement.values() for g in gpus), node=next(iter(placement), None),
            granted_at=job.started_at,
            held_seconds=max(0.0, now - job.started_at) if job.started_at is not None else None,
            idle_seconds=max(0.0, now - seen) if seen is not None else None,
            note=job.reason or None))
    return sorted(rows, key=lambda r: (r.granted_at or 0.0, r.lease_id))


def storage_figure(storage: Mapping[str, Any] | None) -> StorageFigure | None:
    """From the registry's ``GET /workspaces/W/storage``."""
    if storage is None:
        return None
    used, quota = int(storage.get("used_bytes") or 0), storage.get("quota_bytes")
    return StorageFigure(used_bytes=used, quota_bytes=quota, datasets_bytes=int(storage.get("datasets_bytes") or 0),
                         images_bytes=int(storage.get("images_bytes") or 0),
                         percent=round(100 * used / quota) if quota else None)


def dataset_rows(datasets: Iterable[Mapping[str, Any]]) -> list[DatasetRow]:
    return sorted((DatasetRow(name=d["name"], latest_version=d.get("latest_version"), versions=d.get("versions", 0),
                              size_bytes=d.get("size_bytes", 0), created_by=d.get("created_by", ""))
                   for d in datasets), key=lambda r: r.name)


def image_rows(images: Iterable[Mapping[str, Any]]) -> list[ImageRow]:
    """The workspace's own images first, then the built-in ones."""
    return sorted((ImageRow(name=i["name"], reference=i.get("reference", ""), source=i.get("source", "reference"),
                            builtin=bool(i.get("builtin")), size_bytes=i.get("size_bytes"))
                   for i in images), key=lambda r: (r.builtin, r.name))


# -- administrators ----------------------------------------------------------------------------------
def slot_rows(node: str, slots: Sequence[Mapping[str, Any]], active_jobs: Iterable[Any],
              trainings: Mapping[str, Any], readings: Readings = {}) -> list[SlotRow]:
    """Every slot of ``node`` (``slots``: its GPUs or CPU slots, as ``PlatformSettings.gpus`` lists
    them) with the job that holds it, since when, and NVML's readings where there are any."""
    holders: dict[int, Any] = {}
    for j in active_jobs:
        if j.state in ACTIVE:
            for g in (j.placement or {}).get(node, ()):
                holders[g] = j
    rows = []
    for slot in slots:
        index = int(slot["index"])
        j = holders.get(index)
        holder = None
        if j is not None:
            t = trainings.get(j.training_id)
            holder = SlotHolder(job_id=j.id, training_id=j.training_id, name=t.name if t is not None else j.name,
                                kind=j.kind, workspace=j.workspace, user=j.created_by)
        reading = readings.get((node, index), {})
        rows.append(SlotRow(index=index, kind=slot.get("kind", "gpu"), name=slot.get("name", f"GPU {index}"),
                            holder=holder, since=j.started_at if j is not None else None,
                            utilisation_percent=reading.get("utilisation_percent"),
                            memory_used_bytes=reading.get("memory_used_bytes"),
                            memory_total_bytes=reading.get("memory_total_bytes") or slot.get("memory_bytes") or None))
    return rows


def workspace_rows(workspaces: Iterable[Any], jobs: Iterable[Any], today: dt.date) -> list[WorkspaceRow]:
    """``workspaces``: the hub's (``flightbase_server.service.hub.Workspace``); ``jobs``: every live job."""
    in_use: Counter = Counter()
    queued: Counter = Counter()
    for j in jobs:
        if j.state in ACTIVE:
            in_use[j.workspace] += j.gpus
        elif j.state in WAITING:
            queued[j.workspace] += 1
    rows = []
    for ws in sorted(workspaces, key=lambda w: w.name):
        s = ws.settings
        quota = s.gpu_quota if s is not None else None
        used = in_use[ws.name]
        rows.append(WorkspaceRow(
            name=ws.name, members=len(ws.members), managers=list(ws.managers), quota=quota,
            allow_borrowing=s.allow_borrowing if s is not None else None,
            borrowing_limit=getattr(s, "borrowing_limit", None),
            max_gpus_per_job=s.max_gpus_per_job if s is not None else None,
            in_use=used, borrowed=max(0, used - quota) if quota is not None else 0, queued=queued[ws.name],
            window=window_figure(s.start_date, s.end_date, today) if s is not None else None,
            settings_errors=dict(ws.settings_errors)))
    return rows


def user_rows(workspaces: Iterable[Any]) -> list[UserRow]:
    """Everyone who is a member or a manager of a workspace, with theirs (people in no workspace are
    in the hub's admin panel)."""
    found: dict[str, dict[str, bool]] = {}
    for ws in workspaces:
        managers = set(ws.managers)
        for name in set(ws.members) | managers:
            found.setdefault(name, {})[ws.name] = name in managers
    return [UserRow(name=name, workspaces=[UserWorkspace(workspace=w, manager=m) for w, m in sorted(spaces.items())])
            for name, spaces in sorted(found.items())]

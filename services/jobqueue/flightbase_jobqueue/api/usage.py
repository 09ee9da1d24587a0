"""GPU usage: GPU-seconds and GPU-hours per workspace, user and UTC day (``GET /usage``).

Read from the usage intervals the store records as jobs take and give back
their GPUs (``models.UsageInterval``), added up by the pure
:mod:`flightbase_jobqueue.accounting`. Members see their workspaces' usage
(``workspace:read``), every member's of them; an administrator sees every
workspace, deleted ones too; a workspace the caller cannot see answers 404.
``format=csv`` answers the same rows as ``text/csv`` with a header row.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy import or_, select

from flightbase_server.service.access import Listing, listing
from flightbase_server.service.deps import in_session
from flightbase_server.service.errors import ApiError
from flightbase_jobqueue import accounting
from flightbase_jobqueue.models import UsageInterval
from flightbase_jobqueue.schemas import UsageOut, UsageRowOut

router = APIRouter(tags=["usage"])

FORMATS = ("json", "csv")


def _time(field: str, text: str) -> float:
    try:
        return accounting.parse_time(text)
    except ValueError as exc:
        raise ApiError(422, f"{field}: {exc}", field=field) from None


def load_intervals(session, start: float, end: float, workspaces: list[str] | None) -> list[accounting.Interval]:
    """The intervals that overlap ``[start, end)`` (open ones included), of ``workspaces`` (None: all)."""
    c = UsageInterval
    stmt = select(c.workspace, c.user, c.gpus, c.started_at, c.ended_at, c.job_id, c.training_id, c.kind,
                  c.outcome).where(c.started_at < end, or_(c.ended_at.is_(None), c.ended_at > start))
    if workspaces is not None:
        stmt = stmt.where(c.workspace.in_(workspaces))
    return [accounting.Interval(*row) for row in session.execute(stmt)]


@router.get(
    "/usage",
    response_model=UsageOut,
    response_model_exclude_none=True,
    summary="GPU-seconds and GPU-hours per workspace, user and/or UTC day in a window (JSON or CSV)",
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}},
                     "description": "The usage; with format=csv a CSV table with a header row"}},
)
async def usage(
    request: Request,
    scope: Annotated[Listing, listing("workspace:read", "Only this workspace (default: every one you can see)")],
    from_: str | None = Query(default=None, alias="from",
                              description="Start, included: an ISO date (midnight UTC) or datetime (UTC unless it "
                                          "has an offset); default: the start of the UTC day 29 days ago"),
    to: str | None = Query(default=None, description="End, excluded (ISO date or datetime); default: now"),
    group_by: str | None = Query(default=None, description="Comma list of workspace, user, day (default workspace)"),
    format: str = Query(default="json", description="json or csv"),
):
    now = time.time()
    try:
        keys = accounting.parse_group_by(group_by)
    except ValueError as exc:
        raise ApiError(422, f"group_by: {exc}", field="group_by") from None
    if format not in FORMATS:
        raise ApiError(422, f"format: must be one of {', '.join(FORMATS)}", field="format")
    start, end = accounting.default_window(now)
    if from_ is not None:
        start = _time("from", from_)
    if to is not None:
        end = _time("to", to)
    if end <= start:
        raise ApiError(422, f"to: must be after from ({accounting.iso(start)})", field="to")

    names = None if scope.workspace is None and scope.identity.is_admin else await scope.workspaces(request)
    intervals = await in_session(request, load_intervals, start, end, names) if names != [] else []
    rows = accounting.aggregate(intervals, start=start, end=end, now=now, group_by=keys)
    if format == "csv":
        return Response(accounting.to_csv(rows, keys), media_type="text/csv",
                        headers={"Content-Disposition": 'attachment; filename="flightbase-usage.csv"'})
    if names is None:  # the administrator's whole view: today's workspaces and any with usage
        names = sorted(set(await request.app.state.hub.workspaces()) | {iv.workspace for iv in intervals})
    total = sum(r.gpu_seconds for r in rows)
    return UsageOut(
        from_=accounting.iso(start), to=accounting.iso(end), now=accounting.iso(now), group_by=list(keys),
        workspaces=sorted(names),
        rows=[UsageRowOut(**dict(zip(keys, r.key)), gpu_seconds=round(r.gpu_seconds, 3),
                          gpu_hours=round(r.gpu_hours, 6)) for r in rows],
        total_gpu_seconds=round(total, 3), total_gpu_hours=round(total / 3600.0, 6),
    )

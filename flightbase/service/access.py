"""Resolve a workspace for a request and check the permission in one step.

A workspace the identity may not see answers 404, exactly like one that does
not exist, so names in other workspaces do not leak.
"""

from __future__ import annotations

import datetime as dt

from fastapi import Request

from flightbase import authz
from flightbase.authz import Identity
from flightbase.service.errors import ApiError, not_found
from flightbase.service.hub import Workspace


async def authorize(request: Request, identity: Identity, workspace: str, permission: str) -> Workspace:
    request.state.workspace = workspace  # the workspace the request acts in, for its audit row (audit.AuditLog)
    ws = await request.app.state.hub.workspace(workspace)
    if ws is None or not authz.can_see(identity, workspace):
        raise not_found(f"workspace {workspace!r}")
    grant = authz.check(identity, permission, workspace, ws.managers)
    if not grant.allowed:
        raise ApiError(403 if grant.visible else 404, grant.reason)
    return ws


def require_usable(ws: Workspace, today: dt.date | None = None) -> None:
    """Refuse new work in a workspace whose settings are broken or whose dates exclude today."""
    if ws.settings is None:
        detail = "; ".join(f"{k}: {v}" for k, v in ws.settings_errors.items())
        raise ApiError(
            409,
            f"workspace {ws.name!r} has invalid settings ({detail}); an administrator or manager must fix them",
            errors={f"workspace.{k}": v for k, v in ws.settings_errors.items()},
        )
    why = ws.settings.is_active(today or dt.date.today())
    if why:
        raise ApiError(409, f"workspace {ws.name!r} cannot run work: {why}", field="workspace")


async def workspaces_with(request: Request, identity: Identity, permission: str, workspace: str | None = None) -> list[str]:
    """The workspaces a listing covers: ``workspace`` if given (404/403 as for any route),
    else every workspace where the caller holds ``permission``."""
    if workspace is not None:
        await authorize(request, identity, workspace, permission)
        return [workspace]
    found = await request.app.state.hub.workspaces()
    return [name for name, ws in found.items() if authz.check(identity, permission, name, ws.managers).allowed]

"""Workspaces: JupyterHub groups with Flightbase settings in their properties.

Administrators create and delete workspaces and change every setting;
managers change their workspace's members and the settings in
MANAGER_SETTINGS; members read.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response

from flightbase_server import authz
from flightbase_server.service.access import InWorkspace, Level, Person, admin, workspace as in_workspace
from flightbase_server.service.errors import ApiError
from flightbase_server.service.hub import Workspace
from flightbase_server.workspaces import SettingsError, WorkspaceSettings, parse_settings
from flightbase_jobqueue.schemas import WorkspaceCreate, WorkspaceOut

router = APIRouter(tags=["workspaces"])

MANAGER_SETTINGS = frozenset({"max_gpus_per_job", "allowed_images", "idle_timeout_minutes"})


def workspace_out(ws: Workspace, identity) -> WorkspaceOut:
    return WorkspaceOut(
        name=ws.name,
        members=sorted(ws.members),
        managers=list(ws.managers),
        settings=ws.settings.to_properties() if ws.settings else None,
        settings_errors=ws.settings_errors,
        permissions=authz.Permissions(identity, ws.name, ws.managers, ws.members).list(),
    )


@router.get("/workspaces", response_model=list[WorkspaceOut], summary="The workspaces the caller can see")
async def list_workspaces(request: Request, identity: Person):
    found = await request.app.state.hub.workspaces()
    return [workspace_out(ws, identity) for name, ws in sorted(found.items()) if authz.can_see(identity, name, ws.members)]


@router.post("/workspaces", response_model=WorkspaceOut, status_code=201, summary="Create a workspace (administrators)")
async def create_workspace(request: Request, identity: Annotated[authz.Identity, admin()], body: WorkspaceCreate):
    hub = request.app.state.hub
    try:
        settings = parse_settings(body.settings)
    except SettingsError as exc:
        raise ApiError(422, str(exc), errors={f"settings.{k}": v for k, v in exc.errors.items()}) from None
    if await hub.workspace(body.name) is not None:
        raise ApiError(409, f"workspace {body.name!r} already exists", field="name")
    await hub.create_group(body.name, settings.to_properties())
    ws = await hub.workspace(body.name)
    return workspace_out(ws, identity)


@router.get("/workspaces/{workspace}", response_model=WorkspaceOut)
async def get_workspace(w: Annotated[InWorkspace, in_workspace(Level.MEMBER, "workspace:read")]):
    return workspace_out(w.ws, w.identity)


@router.patch(
    "/workspaces/{workspace}/settings",
    response_model=WorkspaceOut,
    summary="Change some settings; the rest stay as they are",
)
async def patch_settings(request: Request, w: Annotated[InWorkspace, in_workspace(Level.MANAGER, "workspace:manage")],
                         changes: dict[str, Any] = Body(...)):
    ws, identity, workspace = w.ws, w.identity, w.ws.name
    if not identity.is_admin:
        for key in changes:
            if key not in MANAGER_SETTINGS and key in WorkspaceSettings.model_fields:
                raise ApiError(403, f"{key}: only administrators may change this setting", field=key)
    merged = {**ws.properties, **changes}
    try:
        settings = parse_settings(merged)
    except SettingsError as exc:
        raise ApiError(422, str(exc), errors=exc.errors) from None
    await request.app.state.hub.set_properties(workspace, settings.to_properties())
    return workspace_out(await request.app.state.hub.workspace(workspace), identity)


@router.put("/workspaces/{workspace}/members/{user}", response_model=WorkspaceOut, summary="Add a member")
async def add_member(request: Request, w: Annotated[InWorkspace, in_workspace(Level.MANAGER, "workspace:manage")],
                     user: str):
    identity, workspace = w.identity, w.ws.name
    hub = request.app.state.hub
    if not await hub.user_exists(user):
        raise ApiError(404, f"user: no user named {user!r}", field="user")
    await hub.add_member(workspace, user)
    request.app.state.hub_auth.forget_user(user)  # let them in now, not when their cached lookup expires
    return workspace_out(await hub.workspace(workspace), identity)


@router.delete("/workspaces/{workspace}/members/{user}", response_model=WorkspaceOut, summary="Remove a member")
async def remove_member(request: Request, w: Annotated[InWorkspace, in_workspace(Level.MANAGER, "workspace:manage")],
                        user: str):
    ws, identity, workspace = w.ws, w.identity, w.ws.name
    if user not in ws.members:
        raise ApiError(404, f"user: {user!r} is not a member of {workspace!r}", field="user")
    hub = request.app.state.hub
    await hub.remove_member(workspace, user)
    request.app.state.hub_auth.forget_user(user)  # refused from their next request on (tests/security)
    return workspace_out(await hub.workspace(workspace), identity)


@router.delete("/workspaces/{workspace}", status_code=204, summary="Delete a workspace (administrators)")
async def delete_workspace(request: Request, w: Annotated[InWorkspace, in_workspace(Level.WORKSPACE_ADMIN, None)]):
    await request.app.state.hub.delete_group(w.ws.name)
    request.app.state.hub_auth.forget_user()  # every member's groups changed
    return Response(status_code=204)

"""Who may use each route: the access level every API route declares, and the checks behind it.

``authorize`` resolves a workspace for a request and checks a permission in one step. A
workspace the identity may not see answers 404, exactly like one that does not exist, so names
in other workspaces do not leak. The routes do not call it themselves: each declares one
``Level`` in its signature (``Person``, ``admin()``, ``workspace()``, ``workspace_in_body()``,
``listing()`` here; a training, job or lease in flightbase_jobqueue/api/access.py; a dataset or
image in flightbase_registry/api/access.py), see below.
"""

from __future__ import annotations

import datetime as dt
import inspect
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Any, Callable

from fastapi import Depends, Query, Request

from flightbase_server import authz
from flightbase_server.authz import Identity
from flightbase_server.service.deps import CurrentIdentity
from flightbase_server.service.errors import ApiError, not_found
from flightbase_server.service.hub import Workspace


async def visible(request: Request, identity: Identity, workspace: str) -> Workspace | None:
    """The workspace if it exists and the identity may know of it, else None. Membership is read
    from the hub's group (kept at most a few seconds, ``HubClient``), not from the groups of the
    token's lookup (kept ``auth_cache_seconds``): a member removed at the hub itself is refused
    within those seconds (authz.is_member; tests/security/test_membership_cache.py)."""
    ws = await request.app.state.hub.workspace(workspace)
    if ws is None or not authz.can_see(identity, workspace, ws.members):
        return None
    return ws


async def authorize(request: Request, identity: Identity, workspace: str, permission: str,
                    hidden_as: str | None = None) -> Workspace:
    """The workspace, if the identity holds ``permission`` there; 404 if it may not see it
    (naming ``hidden_as``, the training or job asked for, instead of the workspace when given:
    the answer for something in another workspace is that of something that does not exist)."""
    # The workspace the request acts in, for its audit row (audit.AuditLog). A job or training
    # named by id (hidden_as) is tied to its workspace only once the identity may see it.
    if hidden_as is None:
        request.state.workspace = workspace
    ws = await visible(request, identity, workspace)
    if ws is None:
        raise not_found(hidden_as or f"workspace {workspace!r}")
    if hidden_as is not None:
        request.state.workspace = workspace
    # visible() has established that the identity may see the workspace (with the same member
    # list), so a refusal here is a 403 that names the missing permission.
    grant = authz.check(identity, permission, workspace, ws.managers, ws.members)
    if not grant.allowed:
        raise ApiError(403, grant.reason)
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
    return [name for name, ws in found.items()
            if authz.check(identity, permission, name, ws.managers, ws.members).allowed]


# --- Authorisation declared on the route -------------------------------------------------------
#
# Every API route of both services declares exactly one access level, as a FastAPI dependency in
# its signature (in the spirit of JupyterHub's ``@needs_scope``): the dependency authenticates,
# resolves what the path (or the query, or the body) names — the workspace, the training, the
# job, the dataset — once, checks the level and hands the object to the handler, which does not
# check again. ``declared(route)`` reads the declarations back: tests/unit/test_route_access.py
# fails for a route without one, and tests/platform/test_permissions.py turns each route's level
# into the statuses it expects for each role.


class Level(str, Enum):
    """Who may use a route. The statuses each level answers are those of ``authorize``: 404 where
    the workspace may not be named to the caller, 403 where it may but the right is missing,
    401 (the service kit's middleware, before the route) without credentials."""

    PERSON = "person"  # any authenticated person; the answer holds only what they may see
    LISTING = "listing"  # any person: a listing of the workspaces where they hold the permission; a workspace
    #                      named in ?workspace= is authorised as for MEMBER
    MEMBER = "member"  # holds the permission in the object's workspace (a member): 404 for outsiders
    CONTROL = "control"  # a training's owner, or its workspace's manager: 403 for other members
    MANAGER = "manager"  # the workspace's manager (a manager action of authz): 403 for members
    AUDITOR = "auditor"  # an administrator, or the manager of some workspace: 403 for everyone else
    WORKSPACE_ADMIN = "workspace-admin"  # an administrator, on a workspace: 404 for outsiders, 403 for members
    ADMIN = "admin"  # a platform administrator: 403 for everyone else


@dataclass(frozen=True)
class Needs:
    """A route's declaration: its level and the authz permission it checks (``None`` where the
    level alone decides)."""

    level: Level
    permission: str | None = None

    def __post_init__(self):
        if self.permission is not None and self.permission not in authz.all_permissions():
            raise ValueError(f"unknown permission {self.permission!r}")
        manager_only = self.permission in authz.MANAGER_ACTIONS
        if self.level in (Level.MEMBER, Level.LISTING) and manager_only:
            raise ValueError(f"{self.permission} is a manager action: declare Level.MANAGER")
        if self.level is Level.MANAGER and not manager_only:
            raise ValueError(f"Level.MANAGER needs a manager action, not {self.permission!r}")


def needs(level: Level, permission: str | None, resolve: Callable) -> Any:
    """The route's declaration: ``Depends(resolve)``, marked with its ``Needs``. Each call makes a
    fresh resolver, so one function can serve several levels."""

    async def dependency(*args, **kwargs):
        return await resolve(*args, **kwargs)

    dependency.__signature__ = inspect.signature(resolve, eval_str=True)  # its own module's names
    dependency.__needs__ = Needs(level, permission)
    dependency.__name__ = f"needs_{level.value.replace('-', '_')}"
    return Depends(dependency)


def declared(route) -> list[Needs]:
    """The ``Needs`` a route declares, found anywhere in its dependency tree."""
    found: list[Needs] = []

    def walk(dependant):
        for sub in dependant.dependencies:
            if getattr(sub.call, "__needs__", None) is not None:
                found.append(sub.call.__needs__)
            walk(sub)

    walk(route.dependant)
    return found


def _signature(fn: Callable, *params: tuple[str, Any, Any]) -> Callable:
    """Give ``fn(request, identity, **params)`` a signature FastAPI reads: (name, annotation, default)."""
    kinds = inspect.Parameter.POSITIONAL_OR_KEYWORD
    fn.__signature__ = inspect.Signature(
        [inspect.Parameter("request", kinds, annotation=Request),
         inspect.Parameter("identity", kinds, annotation=CurrentIdentity)]
        + [inspect.Parameter(name, kinds, annotation=ann, default=default) for name, ann, default in params])
    return fn


async def _person(identity: CurrentIdentity) -> Identity:
    return identity


def _admin_only(message: str) -> Callable:
    async def resolve(identity: CurrentIdentity) -> Identity:
        if not identity.is_admin:
            raise ApiError(403, message)
        return identity

    return resolve


Person = Annotated[Identity, needs(Level.PERSON, None, _person)]
"""Any authenticated person (the route answers with what they may see)."""


def admin(message: str = "only administrators may do this") -> Any:
    """A platform administrator; 403 with ``message`` for everyone else."""
    return needs(Level.ADMIN, None, _admin_only(message))


@dataclass
class InWorkspace:
    """What a workspace-level dependency hands the handler: who asks, the workspace, and the
    validated body when the body names the workspace."""

    identity: Identity
    ws: Workspace
    body: Any = None


def workspace(level: Level, permission: str | None, *, source: str = "path", description: str | None = None) -> Any:

    """The workspace named by the path's ``{workspace}`` (``source="path"``) or ``?workspace=``
    (``source="query"``), authorised for ``permission``: ``InWorkspace``.
    ``Level.WORKSPACE_ADMIN``: outsiders 404, then administrators only (403)."""

    async def resolve(request: Request, identity: Identity, workspace: str) -> InWorkspace:
        if level is Level.WORKSPACE_ADMIN:
            request.state.workspace = workspace
            ws = await visible(request, identity, workspace)
            if ws is None:
                raise not_found(f"workspace {workspace!r}")
            if not identity.is_admin:
                raise ApiError(403, "only administrators may do this")
            return InWorkspace(identity, ws)
        return InWorkspace(identity, await authorize(request, identity, workspace, permission))

    default = inspect.Parameter.empty if source == "path" else Query(description=description)
    return needs(level, permission, _signature(resolve, ("workspace", str, default)))


def workspace_in_body(model: type, permission: str) -> Any:
    """Level.MEMBER in the workspace the body's ``workspace`` names: ``InWorkspace`` with the
    validated body (declared here, so a body that does not validate is a 422 before anything
    else, as for any route)."""

    async def resolve(request: Request, identity: Identity, body) -> InWorkspace:
        return InWorkspace(identity, await authorize(request, identity, body.workspace, permission), body)

    return needs(Level.MEMBER, permission, _signature(resolve, ("body", model, inspect.Parameter.empty)))


@dataclass
class Listing:
    """A listing's scope: the workspace ``?workspace=`` named (authorised), or ``None`` for every
    workspace where the caller holds the permission."""

    identity: Identity
    permission: str
    workspace: str | None

    async def workspaces(self, request: Request) -> list[str]:
        if self.workspace is not None:
            return [self.workspace]
        return await workspaces_with(request, self.identity, self.permission)


def listing(permission: str, description: str | None = "Only this workspace") -> Any:
    """Level.LISTING: any person; a workspace named in ``?workspace=`` is authorised (404/403)."""

    async def resolve(request: Request, identity: Identity, workspace: str | None) -> Listing:
        if workspace is not None:
            await authorize(request, identity, workspace, permission)
        return Listing(identity, permission, workspace)

    return needs(Level.LISTING, permission,
                 _signature(resolve, ("workspace", str | None, Query(default=None, description=description))))

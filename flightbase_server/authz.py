"""Who may do what in which workspace: Flightbase's custom JupyterHub scopes.

Scopes are named ``custom:flightbase:<resource>:<action>`` and granted through
JupyterHub roles (see :mod:`flightbase_server.hub.rbac`). The hub reports the scopes
a request's token carries; this module turns them, with the user's groups and
the workspace's settings, into a yes or no. It is pure: no I/O.

How a scope applies to a workspace:

- ``custom:flightbase:X!group=W`` applies to workspace W (a role in the hub
  config may grant such filtered scopes, e.g. an auditor role).
- An unfiltered ``custom:flightbase:X`` (what the ``user`` role grants every
  user) applies in each workspace the user is a member of. JupyterHub cannot
  create roles at run time, so per-workspace roles cannot be made when an
  administrator creates a group; filtering by the user's own groups is the
  same rule, applied here.
- Manager actions (``MANAGER_ACTIONS``) additionally need the user to be
  listed in the workspace's ``managers`` setting.
- A token that may administer hub groups (``admin:groups``: the hub's
  administrators) is a platform administrator: every scope it carries applies
  to every workspace, and it gets the manager actions everywhere.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

PREFIX = "custom:flightbase:"

# resource -> actions, with what each means; the hub config declares each one.
SCOPES: dict[str, dict[str, str]] = {
    "workspace": {
        "read": "See a workspace's settings, members and dashboard.",
        "manage": "Change a workspace's settings and members (workspace managers).",
    },
    "trainings": {
        "read": "See the trainings of a workspace.",
        "write": "Create trainings and control the ones you own.",
        "manage": "Control any training of a workspace (workspace managers).",
    },
    "jobs": {
        "read": "See jobs, their logs and metrics.",
        "write": "Cancel and retry jobs of trainings you own.",
    },
    "datasets": {
        "read": "List and read a workspace's datasets.",
        "write": "Create datasets and upload versions.",
        "delete": "Delete datasets and dataset versions (workspace managers).",
    },
    "images": {
        "read": "List a workspace's images.",
        "write": "Register and upload images.",
        "delete": "Delete images (workspace managers).",
    },
}

# Actions a member holds only where the workspace lists them as a manager.
MANAGER_ACTIONS = frozenset(
    {"workspace:manage", "trainings:manage", "datasets:delete", "images:delete"}
)

ADMIN_SCOPE = "admin:groups"


def scope_name(permission: str) -> str:
    return PREFIX + permission


def all_permissions() -> list[str]:
    return [f"{res}:{act}" for res, acts in SCOPES.items() for act in acts]


@dataclass(frozen=True)
class Identity:
    """Who is asking, as the hub reported it for the request's token."""

    name: str
    kind: str = "user"  # "user" or "service"
    groups: frozenset[str] = frozenset()
    scopes: frozenset[str] = frozenset()

    @property
    def is_admin(self) -> bool:
        return ADMIN_SCOPE in self.scopes

    @classmethod
    def from_hub_model(cls, model: dict) -> "Identity":
        return cls(
            name=model["name"],
            kind=model.get("kind", "user"),
            groups=frozenset(model.get("groups") or ()),
            scopes=frozenset(model.get("scopes") or ()),
        )


@dataclass(frozen=True)
class Grant:
    """The outcome of a permission check, with the reason when refused."""

    allowed: bool
    visible: bool  # whether the workspace may be named to this identity at all
    reason: str = ""


def is_member(identity: Identity, workspace: str, members: Collection[str] | None = None) -> bool:
    """Whether ``identity`` is a member of ``workspace``. ``members`` is the workspace's member
    list as the service last read the hub's group (at most a few seconds old); when given it
    decides for a person, so that a member added or removed at the hub itself (its admin panel
    or API) is let in or refused within those seconds, not when the token's cached lookup, whose
    ``groups`` are otherwise used, expires (``auth_cache_seconds``, 30 s by default)."""
    if members is not None and identity.kind == "user":
        return identity.name in members
    return workspace in identity.groups


def _holds(identity: Identity, permission: str, workspace: str, members: Collection[str] | None = None) -> bool:
    scope = scope_name(permission)
    if f"{scope}!group={workspace}" in identity.scopes:
        return True
    if scope in identity.scopes:
        return identity.is_admin or is_member(identity, workspace, members)
    return False


def can_see(identity: Identity, workspace: str, members: Collection[str] | None = None) -> bool:
    """Whether the workspace exists as far as this identity may know (``members``: as for
    :func:`is_member`)."""
    if identity.is_admin or is_member(identity, workspace, members):
        return True
    return any(s.endswith(f"!group={workspace}") and s.startswith(PREFIX) for s in identity.scopes)


def check(identity: Identity, permission: str, workspace: str, managers: tuple[str, ...] | list[str] = (),
          members: Collection[str] | None = None) -> Grant:
    """May ``identity`` use ``permission`` (e.g. "trainings:write") in ``workspace``? ``members``:
    the workspace's member list where the caller has it (:func:`is_member`)."""
    if permission not in _ALL:
        raise KeyError(f"unknown permission {permission!r}")
    visible = can_see(identity, workspace, members)
    if not visible:
        return Grant(False, False, f"no workspace named {workspace!r}")
    if not _holds(identity, permission, workspace, members):
        return Grant(False, True, f"missing scope {scope_name(permission)} in workspace {workspace!r}")
    if permission in MANAGER_ACTIONS and not identity.is_admin and identity.name not in managers:
        if f"{scope_name(permission)}!group={workspace}" not in identity.scopes:
            return Grant(False, True, f"only managers of workspace {workspace!r} may do this")
    return Grant(True, True)


_ALL = frozenset(all_permissions())


@dataclass
class Permissions:
    """Convenience view for one identity and one workspace (used in responses)."""

    identity: Identity
    workspace: str
    managers: tuple[str, ...] = field(default_factory=tuple)
    members: Collection[str] | None = None

    def list(self) -> list[str]:
        return [p for p in all_permissions()
                if check(self.identity, p, self.workspace, self.managers, self.members).allowed]

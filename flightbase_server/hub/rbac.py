"""The custom scopes and roles Flightbase declares in JupyterHub.

Pure functions returning the structures ``c.JupyterHub.custom_scopes`` and
``c.JupyterHub.load_roles`` expect; :mod:`flightbase_server.authz` explains how the
services apply them.
"""

from __future__ import annotations

from flightbase_server import authz

SERVICE_NAMES = ("jobqueue", "registry")


def custom_scopes() -> dict[str, dict[str, str]]:
    return {
        authz.scope_name(f"{res}:{act}"): {"description": text}
        for res, acts in authz.SCOPES.items()
        for act, text in acts.items()
    }


# What each service may do in the hub, and no more (docs/security.md). Neither may reach
# people's servers (``access:servers``): the idle check uses a token limited to the one
# server it looks at, which that server's owner gave (flightbase_jobqueue.culler). Neither
# holds ``admin:users``.
JOBQUEUE_HUB_SCOPES = [
    "list:groups", "read:groups",  # workspaces, their members and settings
    "admin:groups", "groups",  # create and delete workspaces; membership and settings
    "read:users",  # does a user exist (a new member)
    "read:servers", "servers",  # which servers a user has; stop an idle or cancelled one
    "access:services!service=registry",
    authz.scope_name("datasets:read"), authz.scope_name("datasets:write"),  # resolve and mark datasets in use
    authz.scope_name("images:read"),  # is an image the workspace's own
]
REGISTRY_HUB_SCOPES = [
    "list:groups", "read:groups",  # workspaces and their members
    "read:users",  # whether the holder of a data ticket is an administrator
]


def roles() -> list[dict]:
    """The roles to load.

    ``user``: every user may reach both services and holds every Flightbase
    scope unfiltered, which the services apply in the user's own workspaces
    only (manager actions only where the user is a listed manager).

    ``flightbase-jobqueue`` and ``flightbase-registry``: what each service
    needs from the hub API (:data:`JOBQUEUE_HUB_SCOPES`, :data:`REGISTRY_HUB_SCOPES`).
    """
    member_scopes = [authz.scope_name(p) for p in authz.all_permissions()]
    access = [f"access:services!service={name}" for name in SERVICE_NAMES]
    return [
        {
            "name": "user",
            "description": "Every Flightbase user: their own server, and membership rights in their workspaces.",
            "scopes": ["self", *access, *member_scopes],
        },
        {
            "name": "flightbase-jobqueue",
            "description": "The jobqueue: manages workspaces (hub groups: create, delete, membership, "
                           "settings in their properties), checks that users exist, resolves and marks the "
                           "datasets and images its jobs use, and keeps Jupyter trainings' GPU leases true "
                           "to their servers (reads them, stops idle ones).",
            "scopes": JOBQUEUE_HUB_SCOPES,
            "services": ["jobqueue"],
        },
        {
            "name": "flightbase-registry",
            "description": "The registry: reads workspaces (hub groups and their members) and users.",
            "scopes": REGISTRY_HUB_SCOPES,
            "services": ["registry"],
        },
    ]


def server_token_scopes() -> list[str]:
    """The scopes of a single-user server's token, as far as its owner holds them.

    JupyterHub's default (the server's own access and activity) plus what the
    Flightbase client needs in a notebook cell and the spawner needs for the
    GPU lease: reach the services, the owner's name and groups, the Flightbase
    scopes (applied by the services in the owner's workspaces only).
    """
    return ["access:servers!server", "users:activity!user", "read:users:name!user", "read:users:groups!user",
            *(f"access:services!service={name}" for name in SERVICE_NAMES),
            *(authz.scope_name(p) for p in authz.all_permissions())]


# The Flightbase scopes each service applies to a person's request (its routes' permission
# checks): the jobqueue checks a training's datasets and image against the person's own
# scopes too; the registry has no workspace, training or job routes.
SERVICE_PERMISSIONS = {
    "jobqueue": [p for p in authz.all_permissions() if p.split(":")[0] in ("workspace", "trainings", "jobs")]
                + ["datasets:read", "images:read"],
    "registry": [p for p in authz.all_permissions() if p.split(":")[0] in ("datasets", "images")],
}


def browser_scopes(service: str) -> list[str]:
    """What a login to ``service`` (its OAuth cookie) may carry, as far as the person holds it:
    ``oauth_client_allowed_scopes`` of the service in the hub, the embedded hub's and the chart's.

    The person's name and groups (who is asking, their workspaces), ``admin:groups`` (which marks
    an administrator), ``read:metrics`` (an administrator's browser may open the service's
    Prometheus page) and the Flightbase scopes the service applies (:data:`SERVICE_PERMISSIONS`).
    JupyterHub (3+) adds the service's own ``access:services!service=<name>``."""
    return ["read:users:groups!user", "read:users:name!user", authz.ADMIN_SCOPE, "read:metrics",
            *(authz.scope_name(p) for p in SERVICE_PERMISSIONS[service])]


def merge_roles(existing, ours: list[dict]) -> list[dict]:
    """``c.JupyterHub.load_roles`` with ``ours`` added to what the config already holds.

    Zero to JupyterHub's jupyterhub_config.py has set it before ``flightbase_server/hub/jupyterhub_config/kubernetes.py``
    runs: the idle culler's role (``cull.enabled``) and the chart's ``hub.loadRoles``. A role of
    ours whose name is already there (an operator's ``hub.loadRoles.user``, say) is joined with
    it: JupyterHub refuses a role named twice, and neither side may lose what it grants, so
    the scopes and the users, groups and services it is given to are the union of both, in the
    order they came (the operator's first)."""
    merged = [dict(r) for r in _config_value(existing, [])]
    by_name = {r.get("name"): r for r in merged}
    for role in ours:
        found = by_name.get(role["name"])
        if found is None:
            merged.append(dict(role))
            by_name[role["name"]] = merged[-1]
            continue
        for key in ("scopes", "users", "groups", "services"):
            if key in role or key in found:
                found[key] = list(dict.fromkeys([*(found.get(key) or []), *(role.get(key) or [])]))
        found.setdefault("description", role.get("description", ""))
    return merged


def merge_custom_scopes(existing, ours: dict[str, dict]) -> dict[str, dict]:
    """``c.JupyterHub.custom_scopes`` with ours added to an operator's (``hub.config``)."""
    return {**_config_value(existing, {}), **ours}


def _config_value(value, empty):
    """A value from a traitlets Config section: what was set, ``empty`` for a key not set, or
    ``empty`` with what was appended or added to it (a ``LazyConfigValue`` is what reading a
    key that is not set yields)."""
    from traitlets.config.loader import LazyConfigValue

    if isinstance(value, LazyConfigValue):
        return value.get_value(empty)
    return empty if value is None else value

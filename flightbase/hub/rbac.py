"""The custom scopes and roles Flightbase declares in JupyterHub.

Pure functions returning the structures ``c.JupyterHub.custom_scopes`` and
``c.JupyterHub.load_roles`` expect; :mod:`flightbase.authz` explains how the
services apply them.
"""

from __future__ import annotations

from flightbase import authz

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


def browser_scopes() -> list[str]:
    """Scopes a service's browser session may hold, as far as the person holds them
    (``read:metrics``: an administrator's browser may open the services' Prometheus pages)."""
    return ["read:users:groups!user", "read:users:name!user", authz.ADMIN_SCOPE, "read:metrics",
            *(authz.scope_name(p) for p in authz.all_permissions())]

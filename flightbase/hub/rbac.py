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


def roles(*, admin_users: list[str] | tuple[str, ...] = ()) -> list[dict]:
    """The roles to load.

    ``user``: every user may reach both services and holds every Flightbase
    scope unfiltered, which the services apply in the user's own workspaces
    only (manager actions only where the user is a listed manager).

    ``flightbase-service``: what the services need from the hub API to read
    users and groups, and to write group membership and properties on behalf of
    a workspace manager whose request they have authorised.
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
            "name": "flightbase-service",
            "description": "The Flightbase services: read users and groups, manage workspace groups.",
            "scopes": [
                "list:users",
                "read:users",
                "list:groups",
                "read:groups",
                "admin:groups",
                "groups",
                "admin:users",
                "read:servers",
            ],
            "services": list(SERVICE_NAMES),
        },
        {
            "name": "flightbase-jobqueue",
            "description": "The jobqueue resolves and marks the datasets its jobs mount, and keeps "
                           "Jupyter trainings' GPU leases true to their servers (reads their kernels' "
                           "activity, stops idle ones).",
            "scopes": [
                "access:services!service=registry",
                "servers",
                "access:servers",
                authz.scope_name("datasets:read"),
                authz.scope_name("datasets:write"),
            ],
            "services": ["jobqueue"],
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
    """Scopes a service's browser session may hold, as far as the person holds them."""
    return ["read:users:groups!user", "read:users:name!user", authz.ADMIN_SCOPE,
            *(authz.scope_name(p) for p in authz.all_permissions())]

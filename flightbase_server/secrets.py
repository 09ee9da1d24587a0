"""Secrets of one installation, kept in ``<data_dir>/secrets.json`` (mode 0600).

Generated on first start and reused afterwards (a key added in a later
release is generated on the next start). Nothing here is ever logged, put in a
URL or in an environment that jobs or notebooks see.
"""

from __future__ import annotations

import json
import os
import secrets as _secrets
from pathlib import Path

_KEYS = ("jobqueue_token", "registry_token", "proxy_auth_token", "registry_oauth_secret", "oci_registry_password")

# The account of the embedded OCI registry (docker-registry, htpasswd auth): only the
# services hold its password (the "oci_registry_password" key); see
# flightbase_server.hub.config.oci_registry_config and the registry service's OciRegistry.
OCI_REGISTRY_USER = "flightbase"


def new_token() -> str:
    return _secrets.token_hex(32)


def load_or_create(data_dir: Path) -> dict[str, str]:
    path = data_dir / "secrets.json"
    values: dict[str, str] = {}
    if path.exists():
        values = json.loads(path.read_text())
    changed = False
    for key in _KEYS:
        if not values.get(key):
            values[key] = new_token()
            changed = True
    if changed:
        write(path, values)
    return values


def read(data_dir: Path) -> dict[str, str]:
    """The secrets as they are, for a service that uses them and must not create them."""
    return json.loads((data_dir / "secrets.json").read_text())


def write(path: Path, values: dict) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # also when a leftover .tmp had another mode
    with os.fdopen(fd, "w") as f:
        json.dump(values, f, indent=1)
    os.replace(tmp, path)

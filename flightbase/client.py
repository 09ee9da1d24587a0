"""The Python client of the Flightbase services, used by the CLI and in notebooks.

It finds the hub and a token the way a notebook cell would: FLIGHTBASE_URL and
FLIGHTBASE_TOKEN if set, else the single-user server's JUPYTERHUB_API_URL and
JUPYTERHUB_API_TOKEN.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlparse

import httpx


class ApiError(Exception):
    """A 4xx/5xx answer from a service, with the field it concerns when there is one."""

    def __init__(self, status: int, message: str, field: str | None = None, body: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.body = body or {}


class ConfigError(Exception):
    pass


def _hub_base(environ) -> str:
    url = environ.get("FLIGHTBASE_URL")
    if url:
        return url.rstrip("/")
    api = environ.get("JUPYTERHUB_API_URL")
    if api:
        parsed = urlparse(api)
        return f"{parsed.scheme}://{parsed.netloc}"
    return "http://127.0.0.1:8000"


class Client:
    def __init__(self, url: str | None = None, token: str | None = None, *, timeout: float = 30.0, environ=None):
        environ = os.environ if environ is None else environ
        self.url = (url or _hub_base(environ)).rstrip("/")
        self.token = token or environ.get("FLIGHTBASE_TOKEN") or environ.get("JUPYTERHUB_API_TOKEN")
        if not self.token:
            raise ConfigError("no API token: set FLIGHTBASE_TOKEN (from `flightbase up` or /hub/token)")
        self._http = httpx.Client(timeout=timeout, headers={"Authorization": f"token {self.token}"})

    def close(self) -> None:
        self._http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def request(self, service: str, method: str, path: str, **kwargs) -> Any:
        url = f"{self.url}/services/{service}/api/v1/{path.lstrip('/')}"
        try:
            resp = self._http.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiError(0, f"cannot reach {self.url}: {exc}") from None
        if resp.status_code >= 400:
            try:
                body = resp.json()
            except ValueError:
                body = {"message": resp.text[:200] or resp.reason_phrase}
            raise ApiError(resp.status_code, body.get("message", "error"), body.get("field"), body)
        if resp.status_code == 204 or not resp.content:
            return None
        return resp.json()

    # --- jobqueue
    def info(self) -> dict:
        return self.request("jobqueue", "GET", "info")

    def workspaces(self) -> list[dict]:
        return self.request("jobqueue", "GET", "workspaces")

    def workspace(self, name: str) -> dict:
        return self.request("jobqueue", "GET", f"workspaces/{name}")

    def create_workspace(self, name: str, **settings) -> dict:
        return self.request("jobqueue", "POST", "workspaces", json={"name": name, "settings": settings})

    def update_workspace(self, name: str, **settings) -> dict:
        return self.request("jobqueue", "PATCH", f"workspaces/{name}/settings", json=settings)

    def add_member(self, workspace: str, user: str) -> dict:
        return self.request("jobqueue", "PUT", f"workspaces/{workspace}/members/{user}")

    def remove_member(self, workspace: str, user: str) -> dict:
        return self.request("jobqueue", "DELETE", f"workspaces/{workspace}/members/{user}")

    def trainings(self, workspace: str | None = None) -> list[dict]:
        params = {"workspace": workspace} if workspace else {}
        return self.request("jobqueue", "GET", "trainings", params=params)

    # --- registry
    def datasets(self, workspace: str) -> list[dict]:
        return self.request("registry", "GET", f"workspaces/{workspace}/datasets")

    def images(self, workspace: str) -> list[dict]:
        return self.request("registry", "GET", f"workspaces/{workspace}/images")

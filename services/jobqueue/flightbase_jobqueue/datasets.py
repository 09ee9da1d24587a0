"""The registry, as the jobqueue uses it: resolve the datasets a training names, mark them in use.

A training names datasets as ``name`` (the latest version) or ``name@N``; at
submission each is resolved to an exact, immutable version (recorded in the
training, so it is known later exactly what a job read) and marked in use by
every job of the training, so that version cannot be deleted under a job.
Jobs that end unmark it. Calls go straight to the registry service with the
jobqueue's own hub token.
"""

from __future__ import annotations

import logging
import os
import re
from urllib.parse import quote

import httpx

from flightbase.service.errors import ApiError

log = logging.getLogger("flightbase.jobqueue.datasets")
SPEC = re.compile(r"^(?P<name>[a-z0-9][a-z0-9._-]{0,127})(?:@(?P<version>\d+|latest))?$")


class DatasetClient:
    def __init__(self, base_url: str, token: str | None = None):
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/services/registry/api/v1",
            headers={"Authorization": f"token {token or os.environ['JUPYTERHUB_API_TOKEN']}"},
            timeout=30,
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def resolve(self, workspace: str, specs: list[str]) -> list[dict]:
        """[{"name", "version", "path"}] for ``specs``; a 422 naming the dataset otherwise."""
        out = []
        for spec in specs:
            m = SPEC.match(spec)
            if not m:
                raise ApiError(422, f"datasets: {spec!r} is not NAME or NAME@VERSION", field="datasets")
            name, version = m["name"], m["version"] or "latest"
            resp = await self._http.get(f"/workspaces/{quote(workspace)}/datasets/{name}/versions/{version}/mount")
            if resp.status_code == 404:
                raise ApiError(422, f"datasets: no dataset {spec!r} in {workspace!r} (or it has no version yet)",
                               field="datasets")
            resp.raise_for_status()
            body = resp.json()
            out.append({"name": name, "version": body["version"], "path": body["path"]})
        names = [d["name"] for d in out]
        if len(set(names)) != len(names):
            raise ApiError(422, "datasets: a dataset is named twice", field="datasets")
        return out

    async def mark(self, workspace: str, versions: list[dict], job_ids: list[str], in_use: bool) -> None:
        method = "PUT" if in_use else "DELETE"
        for d in versions:
            for job_id in job_ids:
                path = f"/workspaces/{quote(workspace)}/datasets/{d['name']}/versions/{d['version']}/uses/{job_id}"
                try:
                    resp = await self._http.request(method, path)
                    if resp.status_code >= 400 and not (not in_use and resp.status_code == 404):
                        log.warning("%s %s: %s %s", method, path, resp.status_code, resp.text[:200])
                except httpx.HTTPError as exc:
                    log.warning("%s %s failed: %s", method, path, exc)

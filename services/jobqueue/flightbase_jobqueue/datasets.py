"""The registry, as the jobqueue uses it: resolve the datasets a training names, mark them in use,
and read which images a workspace has.

A training names datasets as ``name`` (the latest version) or ``name@N``; at
submission each is resolved to an exact, immutable version (recorded in the
training, so it is known later exactly what a job read) and marked in use by
every job of the training, so that version cannot be deleted under a job.
Jobs that end unmark it. A workspace's images (the built-in ones and its own)
are what a training or a Jupyter training may use when the workspace's
``allowed_images`` is empty (:meth:`DatasetClient.images`). Calls go straight
to the registry service with the jobqueue's own hub token (``HubServiceEnv.api_token``,
which the composition root reads once at start-up and hands over).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Sequence
from urllib.parse import quote

import httpx

from flightbase_server.service.errors import ApiError
from flightbase_server.service.inflight import InFlight
from flightbase_jobqueue.training_spec import DatasetRef

log = logging.getLogger("flightbase.jobqueue.datasets")
SPEC = re.compile(r"^(?P<name>[a-z0-9][a-z0-9._-]{0,127})(?:@(?P<version>\d+|latest))?$")
# A burst of submissions asks for the same workspace's images many times a second; an image
# registered since is seen at once (a miss reads again), one deleted is still accepted this long.
IMAGES_TTL_SECONDS = 10.0


class DatasetClient:
    def __init__(self, base_url: str, token: str, *, clock=time.monotonic):
        self._clock = clock
        self._images: dict[str, tuple[float, dict[str, str]]] = {}
        self._builtin: tuple[float, dict[str, str]] = (float("-inf"), {})  # see builtin_images()
        self._listing = InFlight()  # the listings of images under way, by workspace
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/services/registry/api/v1",
            headers={"Authorization": f"token {token}"},
            timeout=30,
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def resolve(self, workspace: str, specs: list[str]) -> list[DatasetRef]:
        """The exact version of each of ``specs``; a 422 naming the dataset otherwise."""
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
            out.append(DatasetRef(name=name, version=body["version"], path=body["path"]))
        names = [d.name for d in out]
        if len(set(names)) != len(names):
            raise ApiError(422, "datasets: a dataset is named twice", field="datasets")
        return out

    async def images(self, workspace: str, *, fresh: bool = False) -> dict[str, str]:
        """The workspace's images, built-in ones included, as {name: reference}.

        Raises :class:`ApiError` 503 when the registry cannot answer: without the list
        nothing is accepted."""
        cached = self._images.get(workspace)
        if cached is not None and not fresh and self._clock() - cached[0] < IMAGES_TTL_SECONDS:
            return cached[1]
        return await self._listing.run(workspace, lambda: self._list(workspace), anew=fresh)

    async def _list(self, workspace: str) -> dict[str, str]:
        try:
            resp = await self._http.get(f"/workspaces/{quote(workspace)}/images")
            resp.raise_for_status()
            items = resp.json()
            found = {i["name"]: i.get("reference") or i["name"] for i in items}
            builtin = {i["name"]: found[i["name"]] for i in items if i.get("workspace") is None}
        except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("reading the images of %s from the registry failed: %s", workspace, exc)
            raise ApiError(503, f"image: the registry did not list the images of workspace {workspace!r}; "
                                "try again shortly", field="image") from None
        now = self._clock()
        self._images[workspace] = (now, found)
        self._builtin = (now, builtin)
        return found

    async def builtin_images(self, workspace: str) -> dict[str, str]:
        """The built-in images, {name: reference}, as a listing of any workspace's images at
        most ``IMAGES_TTL_SECONDS`` old gave them (read through ``workspace``'s when none is).

        Every workspace lists the same built-in images (they have no workspace, and no image of
        a workspace may take a built-in's name), so a submission that names one needs no
        listing of its own workspace: with 30 busy workspaces that saved the jobqueue three
        registry requests a second (docs/benchmarks.md, "Scale of the live service"). When
        they have expired and a listing is already on its way, it brings them: the
        submissions of other workspaces wait for it rather than each asking for their own.
        Empty if that listing failed (the caller then reads its own workspace's)."""
        at, found = self._builtin
        if self._clock() - at < IMAGES_TTL_SECONDS:
            return found
        pending = self._listing.any()
        try:
            if pending is not None:
                await asyncio.shield(pending)
            else:
                await self.images(workspace)
        except ApiError:
            return {}
        at, found = self._builtin
        return found if self._clock() - at < IMAGES_TTL_SECONDS else {}

    async def get(self, path: str, **params) -> httpx.Response:
        """A read of the registry's API as the jobqueue (the dashboards show a workspace's datasets,
        images and storage, and administrators the registry's audit log, to those who may read them)."""
        return await self._http.get(path, params=params or None)

    async def mark(self, workspace: str, versions: Sequence[DatasetRef], job_ids: list[str], in_use: bool) -> None:
        method = "PUT" if in_use else "DELETE"
        for d in versions:
            for job_id in job_ids:
                path = f"/workspaces/{quote(workspace)}/datasets/{d.name}/versions/{d.version}/uses/{job_id}"
                try:
                    resp = await self._http.request(method, path)
                    if resp.status_code >= 400 and not (not in_use and resp.status_code == 404):
                        log.warning("%s %s: %s %s", method, path, resp.status_code, resp.text[:200])
                except httpx.HTTPError as exc:
                    log.warning("%s %s failed: %s", method, path, exc)

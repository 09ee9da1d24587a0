"""Talking to the hub: who a token belongs to, and the workspaces (groups).

The services keep no user table: identity, membership and workspace settings
are read from the hub's REST API with the service's own token, cached for a
few seconds (``auth_cache_seconds``) so that a burst of requests costs the hub
one lookup.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx

from flightbase_server.service.hub_login import HubLogin
from flightbase_server.service.inflight import InFlight
from flightbase_server.settings import HubServiceEnv
from flightbase_server.workspaces import SettingsError, WorkspaceSettings, parse_settings


def make_hub_auth(cache_seconds: int, env: HubServiceEnv | None = None) -> HubLogin:
    """The hub login (:class:`HubLogin`, what the services use of JupyterHub's ``HubOAuth``)
    wired from the JUPYTERHUB_* environment the hub gives its services, as read by
    :class:`HubServiceEnv` (``env``, default: this process's environment)."""
    env = env or HubServiceEnv.from_env()
    base_url = env.base_url if env.base_url.endswith("/") else env.base_url + "/"
    return HubLogin(api_url=env.api_url or "http://127.0.0.1:8081/hub/api", api_token=env.api_token,
                    oauth_client_id=env.client_id, base_url=env.service_prefix or "/", hub_prefix=f"{base_url}hub/",
                    oauth_redirect_uri=env.oauth_callback_url, access_scopes=env.access_scopes(),
                    cache_max_age=cache_seconds)


@dataclass(frozen=True)
class Workspace:
    name: str
    members: tuple[str, ...]
    properties: dict[str, Any]
    settings: WorkspaceSettings | None
    settings_errors: dict[str, str]

    @property
    def managers(self) -> tuple[str, ...]:
        if self.settings is not None:
            return tuple(self.settings.managers)
        raw = self.properties.get("managers") or []
        if isinstance(raw, str):
            raw = [p.strip() for p in raw.split(",")]
        return tuple(raw)

    @classmethod
    def from_group(cls, model: dict) -> "Workspace":
        props = dict(model.get("properties") or {})
        try:
            settings, errors = parse_settings(props), {}
        except SettingsError as exc:
            settings, errors = None, exc.errors
        return cls(
            name=model["name"],
            members=tuple(model.get("users") or ()),
            properties=props,
            settings=settings,
            settings_errors=errors,
        )


LISTING = None  # the key in HubClient._fetching of the whole listing of groups
LISTING_PAGE = 200  # groups asked for per page of the hub's listing (the hub may give fewer)
LISTING_MIN_NAMES = 8  # workspaces in use from which an expired one is read with the whole listing


class HubClient:
    """The hub REST API as this service (by default the hub and token of :class:`HubServiceEnv`)."""

    def __init__(self, api_url: str | None = None, token: str | None = None, cache_seconds: float = 5.0):
        if not (api_url and token):
            env = HubServiceEnv.from_env().require(*(n for n, v in (("api_url", api_url), ("api_token", token)) if not v))
            api_url, token = api_url or env.api_url, token or env.api_token
        self.api_url = api_url.rstrip("/")
        self._token = token
        self._client = httpx.AsyncClient(
            base_url=self.api_url, headers={"Authorization": f"token {self._token}"}, timeout=30
        )
        self._cache_seconds = cache_seconds
        self._groups: tuple[float, dict[str, Workspace]] | None = None
        self._one: dict[str, tuple[float, Workspace | None]] = {}
        self._fetching = InFlight()  # the lookups under way: by name (workspace()), or the listing (LISTING)
        self._generation = 0  # invalidate() counts up: a lookup begun before it is not cached
        self._used: dict[str, float] = {}  # name -> when workspace() was last asked for it
        self._listing_pages: int | None = None  # requests the hub's last listing took

    async def close(self) -> None:
        await self._client.aclose()

    async def _request(self, method: str, path: str, **kwargs) -> httpx.Response:
        resp = await self._client.request(method, path, **kwargs)
        return resp

    def invalidate(self) -> None:
        self._groups = None
        self._one.clear()
        self._fetching.forget()  # a lookup in flight may predate the change: the next caller asks again
        self._generation += 1

    async def workspaces(self) -> dict[str, Workspace]:
        """Every group of the hub (paginated through), cached for ``cache_seconds``."""
        now = time.monotonic()
        if self._groups and now - self._groups[0] < self._cache_seconds:
            return self._groups[1]
        return await self._fetching.run(LISTING, lambda: self._fetch_listing(now))

    async def workspace(self, name: str) -> Workspace | None:
        """The hub's group ``name`` (None if there is none), cached for ``cache_seconds``.

        One request per name at a time: when the cached copy expires under load, the requests
        that need it meanwhile wait for the one lookup in flight instead of each asking the hub
        (fifty clients would otherwise send the hub fifty identical requests at once).

        When many workspaces are in use, an expired one is read again with all the others,
        through the hub's listing of groups (:meth:`_listing_pays`): a busy jobqueue with 30
        active workspaces otherwise asked the hub 30 times per ``cache_seconds``, and each of
        those requests cost it more CPU than the listing's one (docs/benchmarks.md, "Scale of
        the live service")."""
        now = time.monotonic()
        self._used[name] = now
        cached = self._one.get(name)
        if cached and now - cached[0] < self._cache_seconds:
            return cached[1]
        if self._listing_pays(now):
            return (await self._fetching.run(LISTING, lambda: self._fetch_listing(now))).get(name)
        return await self._fetching.run(name, lambda: self._fetch_workspace(name, now))

    def _listing_pays(self, now: float) -> bool:
        """Whether one read of the whole listing replaces enough lookups by name: at least
        ``LISTING_MIN_NAMES`` names asked for within the last two cache periods, and no more
        pages (requests) in the hub's listing, when it was last read, than those names. A hub with
        thousands of groups of which a few are in use is still asked by name. (Names not asked
        for lately are forgotten here, so that this stays as small as the workspaces in use.)"""
        recent = now - 2 * self._cache_seconds
        if len(self._used) >= LISTING_MIN_NAMES:
            for old in [n for n, t in self._used.items() if t < recent]:
                del self._used[old]
        in_use = len(self._used)
        if in_use < LISTING_MIN_NAMES:
            return False
        return self._listing_pages is None or self._listing_pages <= in_use

    async def _fetch_listing(self, now: float) -> dict[str, Workspace]:
        generation = self._generation
        found: dict[str, Workspace] = {}
        offset = pages = 0
        while True:
            pages += 1
            resp = await self._request(
                "GET", "/groups", params={"offset": offset, "limit": LISTING_PAGE},
                headers={"Accept": "application/jupyterhub-pagination+json"},
            )
            resp.raise_for_status()
            page = resp.json()
            for model in page["items"]:
                found[model["name"]] = Workspace.from_group(model)
            if not page.get("_pagination", {}).get("next"):
                break
            offset += len(page["items"])
        if generation == self._generation:  # not invalidated (a change made here) while it was read
            self._groups = (now, found)
            self._listing_pages = pages
            # What a lookup by name would have cached: every group, and no entry (None) for a
            # name asked for lately that is not one.
            for name in self._used:
                self._one[name] = (now, found.get(name))
            for name, ws in found.items():
                self._one[name] = (now, ws)
        return found

    async def _fetch_workspace(self, name: str, now: float) -> Workspace | None:
        generation = self._generation
        resp = await self._request("GET", f"/groups/{name}")
        if resp.status_code == 404:
            ws = None
        else:
            resp.raise_for_status()
            ws = Workspace.from_group(resp.json())
        if generation == self._generation:  # not invalidated (a change made here) while it was asked for
            self._one[name] = (now, ws)
        return ws

    async def user_exists(self, name: str) -> bool:
        resp = await self._request("GET", f"/users/{name}")
        return resp.status_code == 200

    async def create_group(self, name: str, properties: dict) -> None:
        resp = await self._request("POST", f"/groups/{name}", json={})
        resp.raise_for_status()
        await self.set_properties(name, properties)

    async def set_properties(self, name: str, properties: dict) -> None:
        resp = await self._request("PUT", f"/groups/{name}/properties", json=properties)
        resp.raise_for_status()
        self.invalidate()

    async def add_member(self, group: str, user: str) -> None:
        resp = await self._request("POST", f"/groups/{group}/users", json={"users": [user]})
        resp.raise_for_status()
        self.invalidate()

    async def remove_member(self, group: str, user: str) -> None:
        resp = await self._request("DELETE", f"/groups/{group}/users", json={"users": [user]})
        resp.raise_for_status()
        self.invalidate()

    async def delete_group(self, name: str) -> None:
        resp = await self._request("DELETE", f"/groups/{name}")
        resp.raise_for_status()
        self.invalidate()


"""The services' side of the hub's login: who a token belongs to, and the OAuth round trip.

What the services used of JupyterHub's ``HubOAuth`` (jupyterhub/services/auth.py), over the
hub's documented REST API, with the same names and behaviour:

- ``user_for_token``: ``GET <api_url>/user`` with the token; the hub answers with the owner's
  model (name, groups, the token's scopes) or 403 for a token it does not know. Answers are
  kept ``cache_max_age`` seconds, by the token's SHA-256 (never the token itself), the "no
  such token" answers included, as HubAuth keeps them; ``cache_max_age`` 0 keeps nothing.
  Lookups of the same token under way at once share one request to the hub.
- ``check_scopes``: whether the token's scopes grant one of the required ones (JupyterHub's
  rule: an unfiltered scope grants its filtered forms, ``access:services`` grants
  ``access:services!service=jobqueue``; a filtered one grants only itself, a user's scope
  its servers'; group filters are not resolved, so they grant nothing here, as HubAuth
  without its database).
- the OAuth authorization-code flow with PKCE (RFC 7636, S256): ``generate_state`` keeps
  the next URL and the code verifier in memory for ``oauth_state_max_age`` seconds under a
  random id, and ``token_for_code`` trades the code at ``<api_url>/oauth2/token`` with the
  service's token as its client secret.

Why not ``HubOAuth`` itself: importing it imports the hub's database models, Alembic,
aiohttp and traitlets, 17 MB of the jobqueue's resident memory (about a tenth of it under
Kueue's 15,000 workloads, docs/benchmarks.md "Scale of the live service") and 0.7 s of its
start, for these few calls. ``tests/unit/test_hub_login.py`` checks the names, the header
pattern, the cookies, PKCE and the scope rule against ``HubOAuth``'s own, and the platform
tests log in through the real hub.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import re
import secrets
import time
from typing import Any, Callable
from urllib.parse import urlencode

import httpx

from flightbase_server.service.errors import ApiError
from flightbase_server.service.inflight import InFlight

log = logging.getLogger("flightbase_server.service.hub_login")

HUB_TIMEOUT_SECONDS = 30.0


class _Expiring:
    """A dict whose entries are dropped ``max_age`` seconds after they were set (swept at most
    once per ``max_age``, so that entries never read again do not pile up)."""

    def __init__(self, max_age: float, clock=time.monotonic):
        self.max_age, self._clock = max_age, clock
        self._items: dict[str, tuple[float, Any]] = {}
        self._swept = clock()

    def get(self, key: str, default: Any = None) -> Any:
        item = self._items.get(key)
        if item is None or self._clock() - item[0] >= self.max_age:
            return default
        return item[1]

    def set(self, key: str, value: Any) -> None:
        now = self._clock()
        if now - self._swept >= self.max_age:
            self._items = {k: v for k, v in self._items.items() if now - v[0] < self.max_age}
            self._swept = now
        self._items[key] = (now, value)

    def pop(self, key: str) -> Any:
        item = self._items.pop(key, None)
        return None if item is None else item[1]

    def drop(self, which: Callable[[Any], bool]) -> None:
        """Drop every entry whose value ``which`` picks."""
        self._items = {k: v for k, v in self._items.items() if not which(v[1])}

    def __len__(self) -> int:
        return len(self._items)


def _parse(scope: str) -> tuple[str, str | None, str | None]:
    base, _, flt = scope.partition("!")
    if not flt:
        return base, None, None
    entity, _, value = flt.partition("=")
    return base, entity, value


def scope_granted(required: str, held: frozenset[str] | set[str]) -> bool:
    """Whether the scopes ``held`` grant ``required`` (the module docstring's rule)."""
    base, entity, value = _parse(required)
    if base in held:  # unfiltered: grants every filtered form
        return True
    if entity is None:
        return False
    if required in held:
        return True
    # a user's scope grants the same scope on that user's servers (JupyterHub's hierarchy)
    return entity == "server" and f"{base}!user={value.partition('/')[0]}" in held


class HubLogin:
    """See the module docstring. Built by ``flightbase_server.service.hub.make_hub_auth``."""

    auth_header_pat = re.compile(r"(?:token|bearer)\s+(.+)", re.IGNORECASE)
    oauth_state_max_age = 600

    def __init__(self, *, api_url: str, api_token: str, oauth_client_id: str, base_url: str = "/",
                 hub_prefix: str = "/hub/", oauth_redirect_uri: str = "", access_scopes: set[str] | None = None,
                 cache_max_age: int = 300, transport: httpx.AsyncBaseTransport | None = None):
        self.api_url = api_url.rstrip("/")
        self.api_token = api_token
        self.oauth_client_id = oauth_client_id
        self.base_url = "/" + base_url.strip("/") + "/" if base_url.strip("/") else "/"
        self.hub_prefix = hub_prefix
        self.oauth_redirect_uri = oauth_redirect_uri or f"{self.base_url}oauth_callback"
        self.oauth_authorization_url = f"{hub_prefix.rstrip('/')}/api/oauth2/authorize"
        self.oauth_token_url = f"{self.api_url}/oauth2/token"
        self.access_scopes = set(access_scopes or ())
        self.cache_max_age = cache_max_age
        self._cache = _Expiring(cache_max_age)
        self._states = _Expiring(self.oauth_state_max_age)
        self._lookups = InFlight()
        # forget_user() calls so far, and the last one that named each user (or everyone): a
        # lookup that began before one that concerns its answer keeps nothing. One entry per user
        # ever forgotten (bounded by the hub's users), never pruned: an entry is read by lookups
        # that began before it until their callers have checked it, which nothing here tracks.
        self._generation = 0
        self._forgotten: dict[str, int] = {}
        self._forgot_all = 0
        self._transport = transport
        self._clients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}

    # -- names ---------------------------------------------------------------------
    @property
    def cookie_name(self) -> str:
        """The login cookie: the OAuth client id, so that each service has its own."""
        return self.oauth_client_id

    @property
    def state_cookie_name(self) -> str:
        return self.cookie_name + "-oauth-state"

    @property
    def cookie_path(self) -> str:
        return self.base_url

    # -- the hub's API -------------------------------------------------------------
    def _client(self) -> httpx.AsyncClient:
        """One client (and connection pool) per event loop: a pool cannot cross loops."""
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            for old in [lp for lp in self._clients if lp.is_closed()]:
                del self._clients[old]
            client = self._clients[loop] = httpx.AsyncClient(timeout=HUB_TIMEOUT_SECONDS, transport=self._transport)
        return client

    async def close(self) -> None:
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()

    async def _hub(self, method: str, url: str, *, allow_403: bool = False, **kwargs) -> dict | None:
        """The hub's JSON answer; None for a 403 when ``allow_403``; ApiError 502 otherwise."""
        try:
            r = await self._client().request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            log.error("the hub's API could not be reached at %s: %s", self.api_url, type(exc).__name__)
            raise ApiError(502, "the hub could not be reached to check the login; try again") from None
        if r.status_code == 403 and allow_403:
            return None
        if r.status_code >= 400:
            log.warning("the hub answered %s %s with %d", method, url.split("?")[0], r.status_code)
            detail = ""
            try:
                body = r.json()
                detail = str(body.get("error_description") or body.get("error") or "")[:200]
            except ValueError:
                pass
            raise ApiError(502, "the hub refused to check the login" + (f": {detail}" if detail else ""))
        try:
            return r.json()
        except ValueError:
            raise ApiError(502, "the hub's answer was not JSON") from None

    async def user_for_token(self, token: str, use_cache: bool = True, *, sync: bool = False) -> dict | None:
        """The model of the token's owner, with the token's scopes; None if the hub does not know
        the token. Awaitable only (``sync`` is HubAuth's argument; True is refused)."""
        if sync:
            raise TypeError("user_for_token is awaitable only: pass sync=False")
        key = hashlib.sha256(token.encode("utf8", "replace")).hexdigest()
        if use_cache and self.cache_max_age > 0:
            missing = object()
            hit = self._cache.get(key, missing)
            if hit is not missing:
                return hit

        async def lookup() -> tuple[dict | None, int]:
            began = self._generation
            model = await self._hub("GET", f"{self.api_url}/user", allow_403=True,
                                    headers={"Authorization": f"token {token}"})
            if self.cache_max_age > 0 and not self._forgotten_since(model, began):
                self._cache.set(key, model)
            return model, began

        model, began = await self._lookups.run(key, lookup, anew=not use_cache)
        if self._forgotten_since(model, began):
            # read before its owner was forgotten: this caller may have come after (it joined
            # the lookup under way), so it gets the hub's answer of now
            model, _ = await self._lookups.run(key, lookup)
        return model

    def _forgotten_since(self, model: dict | None, generation: int) -> bool:
        """Whether ``forget_user`` was called for ``model``'s owner, or everyone, after
        ``generation``."""
        if self._generation == generation:
            return False
        if self._forgot_all > generation:
            return True
        name = model.get("name") if isinstance(model, dict) else None
        return name is not None and self._forgotten.get(name, 0) > generation

    def forget_user(self, name: str | None = None) -> None:
        """Forget the cached lookups of ``name``'s tokens (everyone's when None): the service
        changed that user's groups (a workspace's members) and its next request must be judged
        on the hub's new answer, not on one kept for up to ``cache_max_age`` seconds. (Access
        to a workspace does not wait for this: membership is read from the hub's group, kept a
        few seconds, authz.is_member; the cached groups remain in the identity for what has no
        group to hand.)

        A lookup under way may have read the old answer. Which user a token belongs to is
        known only once the hub has answered, so such a lookup is judged when it ends
        (``_forgotten_since``): if it is ``name``'s (or everyone was forgotten), it keeps
        nothing, and a caller that joined it is given a new one; other users' lookups are kept."""
        self._generation += 1
        if name is None:
            self._forgot_all = self._generation
            self._forgotten.clear()
        else:
            self._forgotten[name] = self._generation
        self._cache.drop(lambda model: name is None or (isinstance(model, dict) and model.get("name") == name))

    def check_scopes(self, required_scopes: set[str] | str, user: dict) -> set[str]:
        """The required scopes the user's token holds (truthy if any), as ``HubAuth.check_scopes``."""
        if isinstance(required_scopes, str):
            required_scopes = {required_scopes}
        held = frozenset(user.get("scopes") or ())
        return {s for s in required_scopes if scope_granted(s, held)}

    # -- OAuth ---------------------------------------------------------------------
    @staticmethod
    def generate_pkce_code_challenge(method: str = "S256") -> tuple[str, str, str]:
        """(code verifier, code challenge, method) for PKCE (RFC 7636 section 4)."""
        if method != "S256":
            raise ValueError(f"Only method='S256' is supported, not {method!r}")
        verifier = secrets.token_urlsafe(32)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
        return verifier, challenge, method

    def generate_state(self, next_url: str | None = None, **extra_state: str) -> str:
        """A random state id, under which the next URL (and the code verifier) are kept."""
        state_id = secrets.token_urlsafe(16)
        self._states.set(state_id, {"next_url": next_url, **extra_state})
        return state_id

    def get_next_url(self, state_id: str = "") -> str:
        return (self._states.get(state_id) or {}).get("next_url") or self.base_url

    def get_code_verifier(self, state_id: str = "") -> str | None:
        return (self._states.get(state_id) or {}).get("code_verifier")

    def clear_oauth_state(self, state_id: str) -> None:
        self._states.pop(state_id)

    async def token_for_code(self, code: str, *, code_verifier: str | None = None, sync: bool = False) -> str:
        """The hub token the OAuth code stands for (the last step of the login)."""
        if sync:
            raise TypeError("token_for_code is awaitable only: pass sync=False")
        params = {"client_id": self.oauth_client_id, "client_secret": self.api_token,
                  "grant_type": "authorization_code", "code": code, "redirect_uri": self.oauth_redirect_uri}
        if code_verifier:
            params["code_verifier"] = code_verifier
        reply = await self._hub("POST", self.oauth_token_url, content=urlencode(params).encode(),
                                headers={"Content-Type": "application/x-www-form-urlencoded",
                                         "Authorization": f"token {self.api_token}"})
        token = (reply or {}).get("access_token")
        if not isinstance(token, str) or not token:
            raise ApiError(502, "the hub's token answer had no access_token")
        return token

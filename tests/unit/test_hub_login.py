"""The services' hub login (``flightbase_server/service/hub_login.py``) behaves as JupyterHub's
``HubOAuth`` in everything the services use of it: names, header pattern, cookies, PKCE and
the scope rule are compared here with ``HubOAuth`` itself (imported in the test only).

The token lookups' cache, their sharing and the hub's failures are checked against a hub
answered by ``httpx.MockTransport`` (it counts the requests and can fail on demand, which a
real hub cannot be made to do); the lookups against the real hub, and the whole browser
login, are in the platform tests (tests/security/test_tokens.py, tests/pages/)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import warnings

import httpx
import pytest
from jupyterhub.services.auth import HubOAuth
from jupyterhub.services.auth import check_scopes as hub_check_scopes

from flightbase_server.service import hub_login
from flightbase_server.service.errors import ApiError
from flightbase_server.service.hub import make_hub_auth
from flightbase_server.service.hub_login import HubLogin
from flightbase_server.settings import HubServiceEnv

ENVS = [
    HubServiceEnv(api_url="http://hub:8081/hub/api", api_token="t0k", service_prefix="/services/jobqueue",
                  base_url="/jh", service_name="jobqueue", client_id="service-jobqueue"),
    HubServiceEnv(api_url="http://hub:8081/hub/api", api_token="t0k", service_prefix="/services/registry/",
                  service_name="registry", client_id="service-registry",
                  oauth_callback_url="https://hub.example.org/cb",
                  oauth_access_scopes='["access:services!service=registry", "custom:x"]'),
]


@pytest.mark.parametrize("env", ENVS)
def test_the_names_are_hub_oauths(env):
    ours = make_hub_auth(7, env)
    base = env.base_url if env.base_url.endswith("/") else env.base_url + "/"
    theirs = HubOAuth(api_url=env.api_url, api_token=env.api_token, base_url=env.service_prefix,
                      hub_prefix=f"{base}hub/", oauth_client_id=env.client_id,
                      **({"oauth_redirect_uri": env.oauth_callback_url} if env.oauth_callback_url else {}),
                      access_scopes=env.access_scopes(), cache_max_age=7)
    for name in ("api_url", "api_token", "base_url", "hub_prefix", "oauth_client_id", "oauth_redirect_uri",
                 "oauth_authorization_url", "oauth_token_url", "access_scopes", "cache_max_age", "cookie_name",
                 "state_cookie_name", "cookie_path"):
        assert getattr(ours, name) == getattr(theirs, name), name
    assert (ours.auth_header_pat.pattern, ours.auth_header_pat.flags) == (
        theirs.auth_header_pat.pattern, theirs.auth_header_pat.flags)


@pytest.mark.parametrize("header", ["token abc", "Token  abc ", "bearer abc", "BEARER abc", "basic abc", "tokenabc",
                                    "token", "x token abc"])
def test_the_header_pattern_matches_what_hub_oauth_matches(header):
    ours, theirs = HubLogin.auth_header_pat.match(header), HubOAuth.auth_header_pat.match(header)
    assert (ours and ours.group(1)) == (theirs and theirs.group(1))


def test_pkce_is_hub_oauths_s256(monkeypatch):
    import jupyterhub.services.auth as jh_auth

    verifier = "a-fixed-verifier-of-forty-three-characters-"
    for module in (hub_login, jh_auth):
        monkeypatch.setattr(module.secrets, "token_urlsafe", lambda n: verifier)
    theirs = HubOAuth(api_token="t0k", oauth_client_id="service-jobqueue").generate_pkce_code_challenge()
    assert HubLogin.generate_pkce_code_challenge() == theirs
    monkeypatch.undo()
    verifier, challenge, method = HubLogin.generate_pkce_code_challenge()
    assert len(verifier) >= 43 and method == "S256"  # RFC 7636 section 4.1: 43 to 128 characters
    # RFC 7636 section 4.2: BASE64URL(SHA256(verifier)), without padding
    assert challenge == base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    with pytest.raises(ValueError):
        HubLogin.generate_pkce_code_challenge("plain")


def test_the_oauth_state_keeps_the_next_url_and_verifier_once():
    auth = make_hub_auth(7, ENVS[0])
    a = auth.generate_state(next_url="/services/jobqueue/queue?x=1", code_verifier="v1")
    b = auth.generate_state(next_url="/services/jobqueue/", code_verifier="v2")
    assert a != b and len(a) >= 20
    assert (auth.get_next_url(a), auth.get_code_verifier(a)) == ("/services/jobqueue/queue?x=1", "v1")
    auth.clear_oauth_state(a)
    # an unknown or used state gives nothing but the service's own page
    assert (auth.get_next_url(a), auth.get_code_verifier(a)) == ("/services/jobqueue/", None)
    assert auth.get_code_verifier(b) == "v2"


HELD = [set(), {"access:services"}, {"access:services!service=jobqueue"}, {"access:services!service=registry"},
        {"access:servers"}, {"access:services!group=team"}, {"custom:x"}, {"access:servers!user=alice"},
        {"access:servers!server=alice/"}, {"read:users", "access:services!service=jobqueue"},
        {"admin:users", "access:servers!user=bob"}]
REQUIRED = [{"access:services!service=jobqueue"}, {"access:services"}, {"access:services!service=registry", "custom:x"},
            {"access:servers!server=alice/"}, {"access:servers!user=alice"}, {"read:metrics"}]


@pytest.mark.parametrize("required", REQUIRED, ids=[",".join(sorted(r)) for r in REQUIRED])
def test_the_scope_rule_is_jupyterhubs(required):
    auth = make_hub_auth(7, ENVS[0])
    for held in HELD:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # JupyterHub's warning for group filters it cannot resolve
            expected = hub_check_scopes(required, held)
        assert auth.check_scopes(required, {"scopes": sorted(held)}) == expected, (required, held)


def hub(answers: dict[str, tuple[int, dict]], seen: list[httpx.Request]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        token = request.headers["authorization"].split()[1]
        status, body = answers[token]
        return httpx.Response(status, json=body)

    return httpx.MockTransport(handle)


def login(cache: int, transport: httpx.AsyncBaseTransport) -> HubLogin:
    return HubLogin(api_url="http://hub:8081/hub/api", api_token="svc", oauth_client_id="service-jobqueue",
                    cache_max_age=cache, transport=transport)


def test_lookups_of_one_token_share_one_request_and_are_kept_for_the_cache_age():
    seen: list[httpx.Request] = []
    alice = {"name": "alice", "groups": ["team"], "scopes": ["access:services!service=jobqueue"]}
    auth = login(30, hub({"good": (200, alice), "bad": (403, {"status": 403})}, seen))

    async def run():
        models = await asyncio.gather(*(auth.user_for_token("good") for _ in range(50)))
        again = await auth.user_for_token("good")
        bad = [await auth.user_for_token("bad") for _ in range(3)]
        fresh = await auth.user_for_token("good", use_cache=False)
        await auth.close()
        return models, again, bad, fresh

    models, again, bad, fresh = asyncio.run(run())
    assert all(m == alice for m in models) and again == alice and fresh == alice
    assert bad == [None, None, None]  # the hub's 403: not a user; kept too, as HubAuth keeps it
    assert [r.url.path for r in seen] == ["/hub/api/user"] * 3  # good once, bad once, the uncached one
    assert all(r.method == "GET" for r in seen)


def test_without_a_cache_every_lookup_asks_the_hub():
    seen: list[httpx.Request] = []
    auth = login(0, hub({"good": (200, {"name": "alice", "scopes": []})}, seen))

    async def run():
        for _ in range(3):
            await auth.user_for_token("good", use_cache=False)
        await auth.close()

    asyncio.run(run())
    assert len(seen) == 3


def test_a_hub_that_fails_gives_a_502_and_the_token_is_in_no_log_and_no_message(caplog):
    secret = "s3cr3t-token-value"

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async def ask(transport):
        auth = login(30, transport)
        try:
            return await auth.user_for_token(secret)
        finally:
            await auth.close()

    caplog.set_level(logging.DEBUG)
    for transport in (httpx.MockTransport(down), hub({secret: (500, {"error": "boom"})}, [])):
        with pytest.raises(ApiError) as info:
            asyncio.run(ask(transport))
        assert info.value.status == 502 and secret not in info.value.message
    assert secret not in caplog.text and "the hub" in caplog.text


def test_the_code_is_traded_with_the_services_secret_and_the_verifier():
    seen: list[httpx.Request] = []

    def token_endpoint(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"access_token": "hub-token", "token_type": "Bearer"})

    auth = login(30, httpx.MockTransport(token_endpoint))

    async def run():
        try:
            return await auth.token_for_code("c0de", code_verifier="v3r")
        finally:
            await auth.close()

    assert asyncio.run(run()) == "hub-token"
    (request,) = seen
    assert request.method == "POST" and str(request.url) == "http://hub:8081/hub/api/oauth2/token"
    form = dict(httpx.QueryParams(request.content.decode()))
    assert form == {"client_id": "service-jobqueue", "client_secret": "svc", "grant_type": "authorization_code",
                    "code": "c0de", "redirect_uri": "/oauth_callback", "code_verifier": "v3r"}


def test_forgetting_a_user_drops_their_cached_lookups_and_what_a_lookup_under_way_read():
    """``forget_user`` (the jobqueue calls it when it changes a workspace's members): the
    user's cached answers go, other users' stay; a lookup of that user's token that was under
    way when the change was made keeps nothing (it may have read the hub before the change),
    and a caller that joined it after the change is given the hub's new answer; a lookup of
    another user's token under way at the same time is kept. The hub is a MockTransport whose
    answer changes between two requests, which a test cannot time with a real hub; the
    end-to-end case is tests/security/test_membership_cache.py."""
    seen: list[httpx.Request] = []
    groups = {"alice": ["team"], "bob": ["team"]}
    release = asyncio.Event()

    async def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        name = request.headers["authorization"].split()[1].split("-")[0]
        model = {"name": name, "groups": list(groups[name]), "scopes": []}  # read now...
        if request.headers["authorization"].endswith("-slow") and len(seen) <= 4:
            await release.wait()  # ...answered later
        return httpx.Response(200, json=model)

    auth = login(30, httpx.MockTransport(handle))

    async def run():
        assert (await auth.user_for_token("alice-1"))["groups"] == ["team"]
        assert (await auth.user_for_token("bob-1"))["groups"] == ["team"]
        slow = asyncio.ensure_future(auth.user_for_token("alice-slow"))
        bob_slow = asyncio.ensure_future(auth.user_for_token("bob-slow"))
        await asyncio.sleep(0.05)  # their requests have read alice's and bob's groups
        groups["alice"] = []  # alice leaves the team (through the service)...
        auth.forget_user("alice")  # ...which forgets her
        joined = asyncio.ensure_future(auth.user_for_token("alice-slow"))  # asks after the change
        await asyncio.sleep(0.05)
        release.set()
        stale, late, bob = await slow, await joined, await bob_slow
        after = [await auth.user_for_token(t) for t in ("alice-1", "alice-slow", "bob-1", "bob-slow")]
        await auth.close()
        return stale, late, bob, after

    stale, late, bob, after = asyncio.run(run())
    assert late["groups"] == []  # joined the lookup under way after the change: the new answer
    assert bob["groups"] == ["team"]
    assert [m["groups"] for m in after] == [[], [], ["team"], ["team"]]
    asked = [r.headers["authorization"].split()[1] for r in seen]
    # alice's slow token was asked again once, for both of its callers, and her other token
    # once after the change; bob's lookups, one of them under way at the change, were kept
    assert sorted(asked[:4]) == ["alice-1", "alice-slow", "bob-1", "bob-slow"]
    assert sorted(asked[4:]) == ["alice-1", "alice-slow"]
    # the caller that asked before the change may be given either answer
    assert stale["groups"] in (["team"], [])

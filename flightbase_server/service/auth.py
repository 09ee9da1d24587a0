"""Authenticate every request with the hub.

API clients send ``Authorization: token <hub API token>`` (or ``Bearer``);
browsers get a HubOAuth cookie after an OAuth round trip through the hub.
The hub reports the token's owner, groups and scopes; nothing is stored here.
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import RedirectResponse

from flightbase_server.authz import Identity
from flightbase_server.service.errors import ApiError

log = logging.getLogger("flightbase_server.service.auth")


class LoginRedirect(Exception):
    def __init__(self, response: RedirectResponse):
        self.response = response


def _token_from(request: Request) -> str | None:
    auth = request.app.state.hub_auth
    header = request.headers.get("authorization")
    if header:
        match = auth.auth_header_pat.match(header)
        if match:
            return match.group(1).strip()
    return request.cookies.get(auth.cookie_name)


def _wants_html(request: Request) -> bool:
    return request.method == "GET" and "text/html" in request.headers.get("accept", "")


def login_redirect(request: Request) -> RedirectResponse:
    auth = request.app.state.hub_auth
    verifier, challenge, method = auth.generate_pkce_code_challenge()
    next_url = request.url.path + (f"?{request.url.query}" if request.url.query else "")  # back to the same page
    state = auth.generate_state(next_url=next_url, code_verifier=verifier)
    params = {
        "client_id": auth.oauth_client_id,
        "redirect_uri": auth.oauth_redirect_uri,
        "response_type": "code",
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": method,
    }
    response = RedirectResponse(f"{auth.oauth_authorization_url}?{urlencode(params)}", status_code=302)
    response.set_cookie(auth.state_cookie_name, state, path=auth.cookie_path, httponly=True,
                        max_age=auth.oauth_state_max_age, samesite="lax")
    return response


async def oauth_callback(request: Request):
    auth = request.app.state.hub_auth
    code = request.query_params.get("code")
    state = request.query_params.get("state")
    if not code or not state:
        raise ApiError(400, "OAuth callback without code or state; try logging in again", field="code")
    if request.cookies.get(auth.state_cookie_name) != state:
        raise ApiError(403, "OAuth state does not match; try logging in again", field="state")
    next_url = auth.get_next_url(state)
    verifier = auth.get_code_verifier(state)
    auth.clear_oauth_state(state)
    token = await auth.token_for_code(code, code_verifier=verifier, sync=False)
    response = RedirectResponse(next_url, status_code=302)
    response.delete_cookie(auth.state_cookie_name, path=auth.cookie_path)
    response.set_cookie(auth.cookie_name, token, path=auth.cookie_path, httponly=True, samesite="lax")
    return response


async def current_identity(request: Request) -> Identity:
    """FastAPI dependency: the identity behind the request, or 401/403."""
    auth = request.app.state.hub_auth
    token = _token_from(request)
    if not token:
        if _wants_html(request):
            raise LoginRedirect(login_redirect(request))
        raise ApiError(401, "authentication required: send 'Authorization: token <your hub API token>'")
    # cache_max_age 0 means no caching at all: every request asks the hub (the tests' setting)
    model = await auth.user_for_token(token, use_cache=auth.cache_max_age > 0, sync=False)
    if model is None:
        if _wants_html(request):  # a page's cookie that expired or was revoked (the hub's logout): log in again
            raise LoginRedirect(login_redirect(request))
        raise ApiError(401, "the token is not valid (expired or revoked?)")
    if not auth.check_scopes(auth.access_scopes, model):
        raise ApiError(403, f"this token may not use this service (needs one of {sorted(auth.access_scopes)})")
    identity = Identity.from_hub_model(model)
    request.state.identity = identity
    return identity

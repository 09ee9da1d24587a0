"""The services read the ``JUPYTERHUB_*`` variables through ``HubServiceEnv`` only (issue #18).

So the settings object is the one list of what a service reads: the README's table is made
from it and the chart test (tests/kubernetes/test_chart_settings.py) checks that the chart
sets, for each service's pod, every one of them a cluster needs.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from flightbase_server.service.hub import HubClient, make_hub_auth
from flightbase_server.settings import HubServiceEnv

SERVICE_KIT = Path(__file__).resolve().parents[2] / "flightbase_server" / "service"


def _environment_reads(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, variable) of each literal ``JUPYTERHUB_*`` name a module reads or passes around."""
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("JUPYTERHUB_")]


def test_the_service_kit_reads_no_jupyterhub_variable_itself():
    found = {f"{path.name}:{line}": var for path in sorted(SERVICE_KIT.glob("*.py"))
             for line, var in _environment_reads(ast.parse(path.read_text()))}
    assert found == {}, f"read these through flightbase_server.settings.HubServiceEnv: {found}"


def test_the_hub_login_is_wired_from_the_settings_object():
    env = HubServiceEnv(api_url="http://hub:8081/hub/api", api_token="t0k", service_prefix="/services/jobqueue",
                        base_url="/jh", service_name="jobqueue", client_id="service-jobqueue")
    auth = make_hub_auth(7, env)
    assert (auth.api_url, auth.api_token, auth.base_url, auth.hub_prefix, auth.oauth_client_id) == (
        "http://hub:8081/hub/api", "t0k", "/services/jobqueue/", "/jh/hub/", "service-jobqueue")
    assert auth.oauth_redirect_uri == "/services/jobqueue/oauth_callback"
    assert auth.oauth_authorization_url == "/jh/hub/api/oauth2/authorize"
    assert auth.access_scopes == {"access:services!service=jobqueue"} and auth.cache_max_age == 7

    env = HubServiceEnv(api_url="http://hub:8081/hub/api", api_token="t0k", service_name="jobqueue",
                        client_id="service-jobqueue", oauth_callback_url="https://hub.example.org/cb",
                        oauth_access_scopes='["access:services!service=jobqueue", "custom:x"]')
    auth = make_hub_auth(7, env)
    assert auth.oauth_redirect_uri == "https://hub.example.org/cb"
    assert auth.access_scopes == {"access:services!service=jobqueue", "custom:x"}


def test_the_settings_object_reads_the_variables_the_hub_hands_a_service():
    env = HubServiceEnv.from_env({"JUPYTERHUB_SERVICE_NAME": "registry", "JUPYTERHUB_CLIENT_ID": "service-registry",
                                  "JUPYTERHUB_OAUTH_CALLBACK_URL": "/services/registry/oauth_callback"})
    assert (env.service_name, env.client_id, env.oauth_callback_url) == (
        "registry", "service-registry", "/services/registry/oauth_callback")
    assert env.access_scopes() == {"access:services!service=registry"}
    assert HubServiceEnv().access_scopes() == set()  # JupyterHub's own default without a name
    with pytest.raises(ValueError, match="JUPYTERHUB_OAUTH_ACCESS_SCOPES"):
        HubServiceEnv(oauth_access_scopes='{"a": 1}').access_scopes()


def test_the_hub_client_takes_the_hub_from_the_settings_object(monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_API_URL", "http://hub:8081/hub/api/")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "svc")
    client = HubClient()
    assert (client.api_url, client._token) == ("http://hub:8081/hub/api", "svc")
    monkeypatch.delenv("JUPYTERHUB_API_TOKEN")
    with pytest.raises(RuntimeError, match="JUPYTERHUB_API_TOKEN not set"):
        HubClient()

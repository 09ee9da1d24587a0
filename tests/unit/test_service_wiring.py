"""How the jobqueue finds the registry, the hub's proxy and its deployment kind: from its settings.

The jobqueue app runs for real, in-process (its start-up and shutdown, SQLite, the local
backend); the registry, the hub and a person's notebook server are small recording HTTP
servers on loopback: the test is about which address the jobqueue calls, and in a cluster
those are other pods. (The whole path through the real services is covered by the platform
tests: tests/platform/test_permissions.py resolves datasets, tests/spawner/test_jupyter_training.py
culls idle leases.)
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from flightbase_server.settings import HubServiceEnv, PlatformSettings
from flightbase_jobqueue.app import build
from tests.helpers.loopback import JsonServer


@pytest.fixture
def recorders():
    made = []

    def make(answer=lambda path: {}):
        made.append(JsonServer(answer))
        return made[-1]

    yield make
    for r in made:
        r.close()


@pytest.fixture
def hub_env(monkeypatch, recorders):
    hub = recorders(lambda path: {"items": []} if "/groups" in path else {})
    monkeypatch.setenv("JUPYTERHUB_API_URL", hub.url + "/hub/api")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "jobqueue-token")
    return hub


def settings_from(tmp_path: Path, **env: str) -> PlatformSettings:
    return PlatformSettings.from_env({"FLIGHTBASE_DATA_DIR": str(tmp_path), "FLIGHTBASE_GPUS": "[]", **env})


def test_datasets_are_resolved_at_the_registry_url_setting(tmp_path, hub_env, recorders):
    """FLIGHTBASE_REGISTRY_URL (the chart: the registry's Service) is where dataset lookups go,
    with the jobqueue's own token; not the jobqueue's own loopback."""
    registry = recorders(lambda path: {"version": 3, "path": "/srv/flightbase/datasets/ws/mnist/3"})
    settings = settings_from(tmp_path, FLIGHTBASE_REGISTRY_URL=registry.url + "/")
    app = build(settings)
    with TestClient(app) as client:
        found = client.portal.call(app.state.datasets.resolve, "ws", ["mnist"])
    assert [d.model_dump() for d in found] == [{"name": "mnist", "version": 3,
                                                "path": "/srv/flightbase/datasets/ws/mnist/3"}]
    path, headers = registry.seen[0]
    assert path == "/services/registry/api/v1/workspaces/ws/datasets/mnist/versions/latest/mount"
    assert headers["Authorization"] == "token jobqueue-token"


def test_without_the_setting_the_registry_is_the_embedded_loopback_one(tmp_path):
    settings = settings_from(tmp_path, FLIGHTBASE_REGISTRY_PORT="18083")
    assert settings.registry_api_url() == "http://127.0.0.1:18083"
    assert settings.proxy_base_url() == settings.public_url == "http://127.0.0.1:8000"


def test_the_culler_reads_servers_through_the_proxy_url_setting(tmp_path, hub_env, recorders):
    """FLIGHTBASE_PROXY_URL (the chart: z2jh's proxy Service) is where the lease culler reads a
    server's kernels; the public URL (an ingress, TLS) is for people."""
    proxy = recorders(lambda path: [{"execution_state": "busy", "last_activity": "2026-01-01T00:00:00Z"}])
    settings = settings_from(tmp_path, FLIGHTBASE_PROXY_URL=proxy.url, FLIGHTBASE_PORT="1",
                             FLIGHTBASE_LEASE_CHECK_SECONDS="2.5")
    app = build(settings)
    with TestClient(app) as client:
        reconciler = app.state.lease_reconciler
        assert reconciler.interval == 2.5
        job = type("Job", (), {"placement": {}, "training_id": "t1"})()
        reconciler.activity_token = lambda job: "server-token"
        activity = client.portal.call(reconciler.activity, job, {"url": "/user/alice/lab/"})
    assert activity.kernels_busy is True
    path, headers = proxy.seen[0]
    assert path.startswith("/user/alice/lab/api/kernels?") and headers["Authorization"] == "token server-token"


@pytest.mark.parametrize("deployment", ["embedded", "kubernetes"])
def test_info_reports_the_deployment_setting(tmp_path, monkeypatch, recorders, deployment):
    """The hub here answers every token lookup with alice's model (HubOAuth's GET /user)."""
    hub = recorders(lambda path: {"kind": "user", "name": "alice", "admin": False, "groups": [],
                                  "scopes": ["access:services!service=jobqueue"]})
    monkeypatch.setenv("JUPYTERHUB_SERVICE_NAME", "jobqueue")
    monkeypatch.setenv("JUPYTERHUB_API_URL", hub.url + "/hub/api")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "jobqueue-token")
    settings = settings_from(tmp_path, FLIGHTBASE_DEPLOYMENT=deployment)
    app = build(settings)
    with TestClient(app) as client:
        resp = client.get("/services/jobqueue/api/v1/info", headers={"Authorization": "token alice-token"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["deployment"] == deployment


def test_an_unknown_deployment_is_refused():
    with pytest.raises(ValueError, match="FLIGHTBASE_DEPLOYMENT: 'cloud'"):
        PlatformSettings.from_env({"FLIGHTBASE_DATA_DIR": "/tmp", "FLIGHTBASE_DEPLOYMENT": "cloud"})


@pytest.mark.parametrize(("var", "raw"), [("FLIGHTBASE_LEASE_CHECK_SECONDS", "soon"), ("FLIGHTBASE_PORT", "80a")])
def test_a_malformed_number_names_its_variable(var, raw):
    with pytest.raises(ValueError, match=var):
        PlatformSettings.from_env({"FLIGHTBASE_DATA_DIR": "/tmp", var: raw})


def test_hub_env_names_what_is_missing():
    with pytest.raises(RuntimeError, match="JUPYTERHUB_API_TOKEN"):
        HubServiceEnv.from_env({"JUPYTERHUB_API_URL": "http://hub:8081/hub/api"}).require("api_url", "api_token")


@pytest.mark.parametrize(("raw", "expected"), [(None, 30.0), ("1", 1.0), ("0.5", 0.5), ("soon", None), ("0", None),
                                               ("-3", None), ("nan", None), ("inf", None)])
def test_flightbase_up_takes_the_lease_check_period_from_its_environment(raw, expected):
    """`flightbase up` builds the settings it exports: the period must come through it (the
    platform tests run with 1 s), and a bad one stops it with the variable's name."""
    from flightbase_server.platform import UsageError, lease_check_seconds

    environ = {} if raw is None else {"FLIGHTBASE_LEASE_CHECK_SECONDS": raw}
    if expected is None:
        with pytest.raises(UsageError, match="FLIGHTBASE_LEASE_CHECK_SECONDS"):
            lease_check_seconds(environ)
    else:
        assert lease_check_seconds(environ) == expected


@pytest.mark.parametrize(("raw", "expected"), [(None, "0.24"), ("0.24", "0.24"), ("none", "none"), ("0", "0"),
                                               ("lots", None), ("-1", None), ("nan", None), ("inf", None)])
def test_flightbase_up_passes_the_preemption_budget_on_and_refuses_a_bad_one(raw, expected):
    """`flightbase up` builds the settings it exports to the services (they override the
    environment): the operator's budget must come through it, and a bad one stops it with the
    variable's name (exit 2), as it stops the jobqueue started with it some other way."""
    from flightbase_server.platform import UsageError, preemption_budget

    environ = {} if raw is None else {"FLIGHTBASE_PREEMPTION_BUDGET": raw}
    if expected is None:
        with pytest.raises(UsageError, match="FLIGHTBASE_PREEMPTION_BUDGET"):
            preemption_budget(environ)
        with pytest.raises(ValueError, match="FLIGHTBASE_PREEMPTION_BUDGET"):
            PlatformSettings.from_env({"FLIGHTBASE_DATA_DIR": "/tmp", "FLIGHTBASE_PREEMPTION_BUDGET": raw})
    else:
        assert preemption_budget(environ) == expected
        settings = PlatformSettings.from_env({"FLIGHTBASE_DATA_DIR": "/tmp", "FLIGHTBASE_PREEMPTION_BUDGET": expected})
        assert settings.to_env()["FLIGHTBASE_PREEMPTION_BUDGET"] == expected

"""`flightbase up` serves the hub and both services through the proxy."""

import httpx
import pytest

pytestmark = pytest.mark.slow


def test_hub_login_page_is_served(platform):
    resp = httpx.get(f"{platform.url}/hub/login")
    assert resp.status_code == 200
    assert "Sign up" in resp.text or "signup" in resp.text
    assert 'name="password"' in resp.text


def test_health_endpoints_through_proxy(platform):
    for name in ("jobqueue", "registry"):
        body = httpx.get(f"{platform.url}/services/{name}/health").json()
        assert body["status"] == "ok"
        assert body["service"] == name


def test_cpu_slots_are_reported_as_such(platform):
    info = platform.api("jobqueue", "GET", "info", platform.admin_token).json()
    assert info["gpu_kind"] == "cpu-slot"
    assert [g["kind"] for g in info["gpus"]] == ["cpu-slot"] * 4
    assert info["admin"] is True
    # health lives beside api/, not in it (and under api/ nothing answers without credentials)
    assert platform.api("jobqueue", "GET", "health", platform.admin_token).status_code == 404
    assert platform.api("jobqueue", "GET", "health").status_code == 401
    health = httpx.get(f"{platform.url}/services/jobqueue/health").json()
    assert health["gpu_kind"] == "cpu-slot"


def test_openapi_documents(platform):
    for name in ("jobqueue", "registry"):
        doc = httpx.get(f"{platform.url}/services/{name}/api/v1/openapi.json").json()
        assert doc["openapi"].startswith("3.")
        assert any(p.startswith(f"/services/{name}/api/v1/") for p in doc["paths"])


def test_services_run_under_the_hub(platform):
    services = platform.hub("GET", "services").json()
    assert {"jobqueue", "registry"} <= set(services)
    assert all(services[n]["url"].startswith("http://127.0.0.1:") for n in ("jobqueue", "registry"))

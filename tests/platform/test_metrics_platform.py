"""The services' Prometheus pages on the real platform: through the hub's proxy, with the hub's tokens.

Everything here is real: JupyterHub, its proxy, both services and a job that
runs. The page is parsed with ``prometheus_client``'s own parser and its
figures are compared with what the REST APIs say at the same moment.

- Who may read it: an administrator's hub token (the hub's ``admin`` role
  holds ``read:metrics``), never a member's (403) nor an unknown token (401)
  nor nobody (401); with ``FLIGHTBASE_METRICS_TOKEN`` set, that token too (a
  platform of its own).
- What it says: the workspace's allocated GPUs and quota, jobs by state, the
  GPUs in use and free, the route latencies of the calls just made; the
  registry's datasets and images per workspace and its upload bytes.
"""

from __future__ import annotations

import secrets

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.platforms import running_platform

from .world import upload_code, wait_state

pytestmark = pytest.mark.slow


def scrape(platform, service: str, token: str | None = None, scheme: str = "token") -> httpx.Response:
    headers = {"Authorization": f"{scheme} {token}"} if token else {}
    return httpx.get(f"{platform.url}/services/{service}/metrics", headers=headers, timeout=30)


def samples(text: str) -> dict[str, list]:
    """Each family's samples by the family's name (as the parser names it: counters without _total)."""
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def value(found: dict, family: str, sample: str | None = None, **labels) -> float | None:
    for s in found.get(family, []):
        if (sample is None or s.name == sample) and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    return None


def test_only_administrators_and_the_metrics_token_read_the_page(platform, shared_world):
    w = shared_world
    for service in ("jobqueue", "registry"):
        assert scrape(platform, service).status_code == 401
        assert scrape(platform, service, "not-a-token").status_code == 401
        refused = scrape(platform, service, w.tokens["member"])
        assert refused.status_code == 403, refused.text
        assert "read:metrics" in refused.json()["message"]
        assert scrape(platform, service, w.tokens["manager"]).status_code == 403
        page = scrape(platform, service, platform.admin_token)
        assert page.status_code == 200, page.text
        assert page.headers["content-type"].startswith("text/plain")
        assert "flightbase_api_request_duration_seconds" in samples(page.text)


def test_the_jobqueue_page_agrees_with_the_api(platform, shared_world):
    w = shared_world
    owner = w.tokens["owner"]
    wait_state(platform, owner, f"jobs/{w.job_id}", states=("running",), timeout=60)
    # one more job that cannot start: it asks for more GPUs than the workspace's quota leaves
    code = upload_code(platform, owner, w.workspace, "big.py", b"print('never')\n")
    big = platform.api("jobqueue", "POST", "trainings", owner,
                       json={"workspace": w.workspace, "name": "big", "entrypoint": "big.py", "code_id": code, "gpus": 4})
    assert big.status_code == 201, big.text
    try:
        jobs = platform.api("jobqueue", "GET", "jobs", owner, params={"workspace": w.workspace}).json()
        held = sum(j["gpus"] for j in jobs if j["state"] in ("starting", "running"))
        queued = [j for j in jobs if j["state"] == "queued"]
        assert held >= 1 and queued, jobs
        found = samples(scrape(platform, "jobqueue", platform.admin_token).text)

        assert value(found, "flightbase_workspace_allocated_gpus", workspace=w.workspace) == held
        assert value(found, "flightbase_workspace_gpu_quota", workspace=w.workspace) == 4
        assert value(found, "flightbase_jobs", workspace=w.workspace, state="running") == \
            sum(1 for j in jobs if j["state"] == "running")
        assert value(found, "flightbase_jobs", workspace=w.workspace, state="failed") >= 1  # the world's failed one
        pending = sum(s.value for s in found["flightbase_pending_jobs"] if s.labels["workspace"] == w.workspace)
        assert pending == len(queued)
        assert value(found, "flightbase_oldest_pending_seconds", workspace=w.workspace) >= 0
        # GPUs: what is allocated across the platform, and the rest of its 4 slots free
        allocated, free = value(found, "flightbase_gpus", state="allocated"), value(found, "flightbase_gpus", state="free")
        assert allocated >= held and allocated + free == 4
        # the scheduler has passed, and the calls just made were timed by route template, not by id
        assert value(found, "flightbase_scheduler_pass_seconds", "flightbase_scheduler_pass_seconds_count") > 0
        routes = {s.labels["route"] for s in found["flightbase_api_request_duration_seconds"]}
        assert "/api/v1/jobs/{job_id}" in routes and "/api/v1/trainings" in routes
        assert not any(w.job_id in r for r in routes)
    finally:
        platform.api("jobqueue", "POST", f"trainings/{big.json()['id']}/cancel", owner)


def test_the_registry_page_counts_the_workspaces_things(platform, shared_world):
    w = shared_world
    found = samples(scrape(platform, "registry", platform.admin_token).text)
    datasets = platform.api("registry", "GET", f"workspaces/{w.workspace}/datasets", w.tokens["owner"]).json()
    images = platform.api("registry", "GET", f"workspaces/{w.workspace}/images", w.tokens["owner"]).json()
    assert value(found, "flightbase_datasets", workspace=w.workspace) == len(datasets) == 1
    own = [i for i in images if i["workspace"] == w.workspace]  # the list also offers the built-in images
    assert value(found, "flightbase_images", workspace=w.workspace) == len(own) == 1
    assert "flightbase_upload_bytes" in found


@pytest.fixture(scope="module")
def tokened(tmp_path_factory):
    token = secrets.token_urlsafe(32)
    with running_platform(tmp_path_factory, "metrics-token", extra_env={"FLIGHTBASE_METRICS_TOKEN": token}) as p:
        yield p, token


def test_a_scraper_without_a_hub_account_reads_with_the_metrics_token(tokened):
    platform, token = tokened
    for service in ("jobqueue", "registry"):
        page = scrape(platform, service, token, scheme="Bearer")
        assert page.status_code == 200, page.text
        assert "flightbase_api_request_duration_seconds" in samples(page.text)
        assert scrape(platform, service, token[:-1] + ("A" if token[-1] != "A" else "B"), scheme="Bearer").status_code == 401
        assert scrape(platform, service).status_code == 401
    # the token is no hub credential: it opens nothing else
    assert platform.api("jobqueue", "GET", "workspaces", token).status_code == 401
    assert httpx.get(f"{platform.url}/hub/api/users", headers={"Authorization": f"token {token}"}).status_code == 403

"""The Prometheus metrics, without a platform: the kit's middleware and page, and both services' collectors.

The kit is driven through a real application made by ``create_app`` (the
same middlewares and route as the services) over httpx's ASGI transport. The
hub is a table of tokens -> the model the hub would report
(``HubTable``); the real hub, proxy and services are in
``tests/platform/test_metrics.py``. The collectors are pure: literal inputs,
literal expected samples. What they count in the databases is counted in real
SQLite databases made from the services' models.
"""

from __future__ import annotations

import asyncio
import re
import uuid

import httpx
import pytest
from fastapi import APIRouter
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from flightbase_server.service import metrics as service_metrics
from flightbase_server.service.app import create_app
from flightbase_server.settings import PlatformSettings
from flightbase_jobqueue import models as jq_models
from flightbase_jobqueue import prometheus as jq
from flightbase_jobqueue.scheduling.types import ActiveJob, Job, Node, WorkspaceLimits
from flightbase_registry import models as reg_models
from flightbase_registry import prometheus as reg

PREFIX = "/services/jobqueue/"
METRICS_TOKEN = "m" * 40
HUB = {  # token -> what the hub reports for it
    "admin-token": {"name": "admin", "kind": "user", "scopes": ["admin:groups", "read:metrics"]},
    "member-token": {"name": "bob", "kind": "user", "scopes": ["custom:flightbase:jobs:read"]},
    "scraper-token": {"name": "prometheus", "kind": "service", "scopes": ["read:metrics"]},
}


class HubTable:
    """What the services use of HubOAuth (the header pattern is HubOAuth's own), over a table of tokens."""

    cookie_name = "jupyterhub-services-jobqueue"
    auth_header_pat = re.compile(r"(?:token|bearer)\s+(.+)", re.IGNORECASE)
    cache_max_age = 0

    def __init__(self):
        self.asked: list[str] = []

    async def user_for_token(self, token, use_cache=False, sync=True):
        self.asked.append(token)
        return HUB.get(token)


class Source:
    """A service's scrape-time collector: one gauge; counts its calls."""

    def __init__(self):
        self.calls = 0

    async def __call__(self, app):
        from prometheus_client.core import GaugeMetricFamily

        self.calls += 1
        family = GaugeMetricFamily("flightbase_unit_test_things", "Things.", labels=["workspace"])
        family.add_metric(["w"], 3)
        return [type("C", (), {"collect": lambda self: iter([family])})()]


def make_app(monkeypatch, tmp_path, token: str | None = METRICS_TOKEN):
    if token is None:
        monkeypatch.delenv(service_metrics.TOKEN_ENV, raising=False)
    else:
        monkeypatch.setenv(service_metrics.TOKEN_ENV, token)
    monkeypatch.delenv("JUPYTERHUB_SERVICE_PREFIX", raising=False)
    router = APIRouter()

    @router.get("/jobs/{job_id}")
    async def get_job(job_id: str):
        return {"id": job_id}

    @router.post("/jobs/{job_id}/cancel")
    async def cancel_job(job_id: str):
        return {"id": job_id}

    @router.get("/files/{path:path}")
    async def get_file(path: str):
        return {"path": path}

    @router.get("/boom")
    async def boom():
        raise RuntimeError("a bug")

    async def nothing(app):
        pass

    hub, source = HubTable(), Source()
    app = create_app(name="jobqueue", version="0", description="", routers=[router], startup=nothing,
                     shutdown=nothing, health=lambda app: {}, hub_auth=hub, metrics=source)
    app.state.settings = PlatformSettings(data_dir=tmp_path)  # the body limits read it
    return app, hub, source


def call(app, method: str, path: str, headers: dict | None = None, cookies: dict | None = None,
         content: bytes | None = None) -> httpx.Response:
    async def go():
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://service", cookies=cookies) as client:
            return await client.request(method, path, headers=headers, content=content)

    return asyncio.run(go())


def latency_count(route: str, status: int, method: str = "GET") -> float:
    return REGISTRY.get_sample_value("flightbase_api_request_duration_seconds_count",
                                     {"service": "jobqueue", "method": method, "route": route,
                                      "status": str(status)}) or 0.0


# --- the latency middleware: route templates, never raw paths

TOKEN = {"Authorization": "token admin-token"}


@pytest.mark.parametrize(("method", "path", "headers", "content", "route", "status"), [
    ("GET", f"{PREFIX}api/v1/jobs/j-123", TOKEN, None, "/api/v1/jobs/{job_id}", 200),
    # refused by the request guards before routing: still the route's template
    ("GET", f"{PREFIX}api/v1/jobs/j-123", {}, None, "/api/v1/jobs/{job_id}", 401),
    ("POST", f"{PREFIX}api/v1/jobs/j-123/cancel", {**TOKEN, "Content-Length": str(2 << 20)}, b"x" * (2 << 20),
     "/api/v1/jobs/{job_id}/cancel", 413),
    ("GET", f"{PREFIX}api/v1/files/a/b/c.txt", TOKEN, None, "/api/v1/files/{path}", 200),
    ("DELETE", f"{PREFIX}api/v1/jobs/j-123", TOKEN, None, "/api/v1/jobs/{job_id}", 405),
    ("GET", f"{PREFIX}api/v1/boom", TOKEN, None, "/api/v1/boom", 500),
    ("GET", f"{PREFIX}health", {}, None, "/health", 200),
    ("GET", f"{PREFIX}metrics", {}, None, "/metrics", 401),
    ("GET", f"{PREFIX}no/such/page", {}, None, "unmatched", 404),
    ("GET", "/elsewhere", {}, None, "unmatched", 404),
])
def test_latency_is_observed_by_route_template_and_status(monkeypatch, tmp_path, method, path, headers, content,
                                                          route, status):
    app, _, _ = make_app(monkeypatch, tmp_path)
    before = latency_count(route, status, method)
    resp = call(app, method, path, headers=headers, content=content)
    assert resp.status_code == status
    assert latency_count(route, status, method) == before + 1


def test_labels_stay_bounded_whatever_the_client_sends(monkeypatch, tmp_path):
    app, _, _ = make_app(monkeypatch, tmp_path)
    before = latency_count("/api/v1/jobs/{job_id}", 405, "other")
    call(app, "BREW", f"{PREFIX}api/v1/jobs/{uuid.uuid4().hex}", headers=TOKEN)
    assert latency_count("/api/v1/jobs/{job_id}", 405, "other") == before + 1
    for _ in range(3):
        call(app, "GET", f"{PREFIX}api/v1/jobs/{uuid.uuid4().hex}", headers=TOKEN)
    routes = {s.labels["route"] for family in REGISTRY.collect() for s in family.samples
              if s.name.startswith("flightbase_api_request_duration_seconds")}
    assert not any(re.search(r"[0-9a-f]{32}|j-123|a/b/c", r) for r in routes), routes


@pytest.mark.parametrize(("template", "params", "path", "expected"), [
    # FastAPI keeps an included router's routes without the include's prefix
    ("/jobs/{job_id}", {"job_id": "7"}, "/services/jobqueue/api/v1/jobs/7", "/services/jobqueue/api/v1/jobs/{job_id}"),
    ("/files/{path}", {"path": "a/b"}, "/s/api/v1/files/a/b", "/s/api/v1/files/{path}"),
    ("/s/health", {}, "/s/health", "/s/health"),  # a top-level route knows its whole path
    ("/jobs/{job_id}", {"job_id": "7"}, "/elsewhere/8", "/jobs/{job_id}"),  # no match: the route's own template
])
def test_routed_template(template, params, path, expected):
    route = type("Route", (), {"path_format": template})()
    assert service_metrics.routed_template({"route": route, "path_params": params, "path": path}) == expected


def test_routed_template_is_none_before_routing():
    assert service_metrics.routed_template({"path": "/s/api/v1/jobs/7"}) is None


# --- who may read the page (as JupyterHub's /hub/metrics: the scope read:metrics, or the metrics token)

@pytest.mark.parametrize(("headers", "cookie", "status"), [
    ({}, None, 401),
    ({"Accept": "text/html"}, None, 401),  # a browser without a cookie: no login page here, a JSON 401
    ({"Authorization": f"Bearer {METRICS_TOKEN}"}, None, 200),
    ({"Authorization": f"token {METRICS_TOKEN}"}, None, 200),
    ({"Authorization": f"Bearer {METRICS_TOKEN}x"}, None, 401),
    ({"Authorization": f"Bearer {METRICS_TOKEN[:-1]}"}, None, 401),
    ({"Authorization": "Bearer admin-token"}, None, 200),
    ({"Authorization": "token scraper-token"}, None, 200),
    ({"Authorization": "token member-token"}, None, 403),
    ({"Authorization": "token revoked"}, None, 401),
    ({"Authorization": "Basic YWRtaW46eA=="}, None, 401),
    ({}, "admin-token", 200),  # an administrator's browser (the hub's OAuth cookie)
    ({}, "member-token", 403),
    ({}, METRICS_TOKEN, 401),  # the metrics token is a header's, never a cookie's
])
def test_access(monkeypatch, tmp_path, headers, cookie, status):
    app, hub, source = make_app(monkeypatch, tmp_path)
    cookies = {HubTable.cookie_name: cookie} if cookie else None
    resp = call(app, "GET", f"{PREFIX}metrics", headers=headers, cookies=cookies)
    assert resp.status_code == status, resp.text
    if status != 200:
        assert resp.headers["content-type"] == "application/json" and resp.json()["message"]
        assert source.calls == 0, "nothing is collected for a refused scrape"
    if not headers.get("Authorization", "").lower().startswith(("token", "bearer")) and cookie is None:
        assert hub.asked == [], "a request without credentials is answered before the hub is asked"
    if headers.get("Authorization", "").endswith(METRICS_TOKEN):
        assert hub.asked == [], "the metrics token is never sent to the hub"


def test_without_a_metrics_token_only_hub_tokens_count(monkeypatch, tmp_path):
    app, hub, _ = make_app(monkeypatch, tmp_path, token=None)
    assert call(app, "GET", f"{PREFIX}metrics", headers={"Authorization": "Bearer "}).status_code == 401
    assert call(app, "GET", f"{PREFIX}metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).status_code == 401
    assert call(app, "GET", f"{PREFIX}metrics", headers={"Authorization": "Bearer admin-token"}).status_code == 200
    assert hub.asked == [METRICS_TOKEN, "admin-token"]


@pytest.mark.parametrize(("raw", "expected"), [
    (None, ""),
    ("", ""),
    (f"  {METRICS_TOKEN}\n", METRICS_TOKEN),  # from a file or a Secret, with its newline
    ("x" * 16, "x" * 16),
])
def test_metrics_settings(raw, expected):
    environ = {} if raw is None else {service_metrics.TOKEN_ENV: raw}
    assert service_metrics.MetricsSettings.from_env(environ).token == expected


def test_a_short_metrics_token_is_a_configuration_error():
    with pytest.raises(ValueError, match=service_metrics.TOKEN_ENV):
        service_metrics.MetricsSettings.from_env({service_metrics.TOKEN_ENV: "short"})


def test_the_page_parses_and_holds_the_services_own_metrics(monkeypatch, tmp_path):
    app, _, source = make_app(monkeypatch, tmp_path)
    call(app, "GET", f"{PREFIX}api/v1/jobs/7", headers=TOKEN)
    resp = call(app, "GET", f"{PREFIX}metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert resp.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(resp.text)}
    assert families["flightbase_api_request_duration_seconds"].type == "histogram"
    assert [(s.labels, s.value) for s in families["flightbase_unit_test_things"].samples] == [({"workspace": "w"}, 3)]
    assert "process_cpu_seconds" in families and source.calls == 1
    # OpenMetrics for a scraper that asks for it (Prometheus does)
    om = call(app, "GET", f"{PREFIX}metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}",
                                                       "Accept": "application/openmetrics-text; version=1.0.0"})
    assert om.headers["content-type"].startswith("application/openmetrics-text") and om.text.endswith("# EOF\n")


# --- the jobqueue's collector

def samples(collector) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in collector.collect() for s in f.samples}


def job(id: str, ws: str, gpus: int = 1, since: float = 0.0, preemptible: bool = True) -> Job:
    return Job(id=id, workspace=ws, gpus=gpus, submitted_at=since, preemptible=preemptible)


@pytest.mark.parametrize(("gpus", "in_use", "limits", "preemptible", "reason"), [
    (1, 0, WorkspaceLimits(), True, "resources"),  # no quota: it waits for GPUs
    (2, 2, WorkspaceLimits(quota=4), True, "resources"),  # within the quota
    (3, 2, WorkspaceLimits(quota=4, allow_borrowing=False), True, "quota"),
    (3, 2, WorkspaceLimits(quota=4, allow_borrowing=True), True, "resources"),  # may borrow idle GPUs
    (3, 2, WorkspaceLimits(quota=4, allow_borrowing=True), False, "quota"),  # non-preemptible jobs never borrow
    (1, 0, WorkspaceLimits(quota=0, allow_borrowing=False), True, "quota"),
])
def test_pending_reason(gpus, in_use, limits, preemptible, reason):
    assert jq.pending_reason(job("j", "w", gpus, preemptible=preemptible), in_use, limits) == reason


def test_jobqueue_collector():
    live = jq.LiveState(
        now=1000.0,
        queued=(job("a1", "a", 2, since=900.0), job("b1", "b", 1, since=400.0), job("a2", "a", 1, since=990.0)),
        active=(ActiveJob(job("r1", "a", 2), {"n1": (0, 1)}, 100.0), ActiveJob(job("r2", "b", 1), {"n1": (2,)}, 100.0)),
        # n1 as the coordinator sees it (held GPUs already out of `free`); n2 is cordoned
        nodes=(Node("n1", 4, (3,)), Node("n2", 4, (0, 1, 2, 3), schedulable=False)),
        limits={"a": WorkspaceLimits(quota=3, allow_borrowing=False), "c": WorkspaceLimits(quota=8)},
    )
    stored = jq.StoredCounts(jobs={("a", "running"): 1, ("a", "queued"): 2, ("a", "failed"): 4, ("b", "queued"): 3},
                             held={"b": 2})
    got = samples(jq.JobqueueCollector(live, stored))

    def g(name, **labels):
        return got[name, tuple(sorted(labels.items()))]

    # a: 2 in use of a quota of 3, no borrowing: a1 (2 GPUs) waits for the quota, a2 (1) fits in it
    assert [g("flightbase_pending_jobs", workspace=w, reason=r) for w in "abc" for r in ("quota", "resources", "held")] \
        == [1, 1, 0, 0, 1, 2, 0, 0, 0]
    assert [g("flightbase_oldest_pending_seconds", workspace=w) for w in "abc"] == [100.0, 600.0, 0.0]
    assert (g("flightbase_gpus", state="allocated"), g("flightbase_gpus", state="free")) == (3, 1)
    assert [g("flightbase_workspace_allocated_gpus", workspace=w) for w in "abc"] == [2, 1, 0]
    assert {k[1]: v for k, v in got.items() if k[0] == "flightbase_workspace_gpu_quota"} == {
        (("workspace", "a"),): 3, (("workspace", "c"),): 8}
    jobs = {dict(k[1])["state"]: v for k, v in got.items() if k[0] == "flightbase_jobs" and dict(k[1])["workspace"] == "a"}
    assert jobs == {"queued": 2, "starting": 0, "running": 1, "succeeded": 0, "failed": 4, "cancelled": 0, "preempted": 0}
    assert g("flightbase_jobs", workspace="b", state="queued") == 3


def test_free_gpus_leave_out_those_jobs_hold_however_the_inventory_reports_them():
    """The local inventory lists every GPU as free; the coordinator's snapshot leaves held ones out."""
    active = (ActiveJob(job("r", "a", 2), {"n1": (0, 1)}, 0.0),)
    for free in ((0, 1, 2, 3), (2, 3)):
        live = jq.LiveState(now=0.0, queued=(), active=active, nodes=(Node("n1", 4, free),), limits={})
        got = samples(jq.JobqueueCollector(live, jq.StoredCounts()))
        assert got["flightbase_gpus", (("state", "free"),)] == 2


def test_observe_step_records_admission_waits_and_preemptions():
    ws = f"ws-{uuid.uuid4().hex[:8]}"
    waited = Job(id="j1", workspace=ws, gpus=1, submitted_at=10.0, enqueued_at=70.0)  # requeued at 70
    victim = job("j2", ws, 1)
    active = [ActiveJob(waited, {"n": (0,)}, 100.0), ActiveJob(victim, {"n": (1,)}, 0.0, stopping=True)]
    jq.observe_step(100.0, ["j1", "gone"], ["j2"], lambda: active)
    assert REGISTRY.get_sample_value("flightbase_admission_wait_seconds_count", {"workspace": ws}) == 1
    assert REGISTRY.get_sample_value("flightbase_admission_wait_seconds_sum", {"workspace": ws}) == 30.0
    assert REGISTRY.get_sample_value("flightbase_admission_wait_seconds_bucket", {"workspace": ws, "le": "30.0"}) == 1
    assert REGISTRY.get_sample_value("flightbase_preemptions_total", {"workspace": ws}) == 1
    jq.observe_step(101.0, [], [], lambda: pytest.fail("nothing to look up"))


def test_stored_counts_in_a_real_database(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'jobqueue.sqlite'}")
    jq_models.Base.metadata.create_all(engine)
    with Session(engine) as session, session.begin():
        session.add(jq_models.Training(id="t", workspace="a", name="t", created_by="u", spec={}))
        for i, (ws, state, held) in enumerate([("a", "queued", False), ("a", "queued", True), ("a", "queued", True),
                                               ("a", "running", False), ("b", "failed", False), ("b", "queued", True)]):
            session.add(jq_models.Job(id=f"j{i}", training_id="t", workspace=ws, name="j", gpus=1, state=state,
                                      held=held, submitted_at=0.0, created_by="u"))
    with Session(engine) as session:
        counts = jq.stored_counts(session)
    assert counts.jobs == {("a", "queued"): 3, ("a", "running"): 1, ("b", "failed"): 1, ("b", "queued"): 1}
    assert counts.held == {"a": 2, "b": 1}


# --- the registry's collector

def test_registry_counts_and_collector(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    reg_models.Base.metadata.create_all(engine)
    with Session(engine) as session, session.begin():
        session.add_all([reg_models.Dataset(id="d1", workspace="a", name="d1", created_by="u"),
                         reg_models.Dataset(id="d2", workspace="a", name="d2", created_by="u"),
                         reg_models.Dataset(id="d3", workspace="b", name="d3", created_by="u")])
        session.add_all([reg_models.DatasetVersion(id="v1", dataset_id="d1", workspace="a", number=1, size_bytes=100,
                                                   created_by="u"),
                         reg_models.DatasetVersion(id="v2", dataset_id="d1", workspace="a", number=2, size_bytes=50,
                                                   created_by="u")])
        session.add_all([reg_models.Image(id="i1", workspace="b", name="up", reference="r", size_bytes=7, created_by="u"),
                         reg_models.Image(id="i2", workspace="b", name="ref", reference="r", created_by="u")])
        session.add(reg_models.Upload(id="u1", dataset_id="d3", workspace="b", total_bytes=9, created_by="u"))
    with Session(engine) as session:
        counts = reg.registry_counts(session)
    got = samples(reg.RegistryCollector(counts))
    assert {(n, dict(l)["workspace"]): v for (n, l), v in got.items() if n != "flightbase_storage_bytes"} == {
        ("flightbase_datasets", "a"): 2, ("flightbase_datasets", "b"): 1,
        ("flightbase_dataset_versions", "a"): 2, ("flightbase_dataset_versions", "b"): 0,
        ("flightbase_images", "a"): 0, ("flightbase_images", "b"): 2}
    assert {(dict(l)["workspace"], dict(l)["kind"]): v for (n, l), v in got.items() if n == "flightbase_storage_bytes"} == {
        ("a", "datasets"): 150, ("a", "images"): 0, ("a", "uploads"): 0,
        ("b", "datasets"): 0, ("b", "images"): 7, ("b", "uploads"): 9}


def test_upload_bytes_are_counted_per_workspace():
    ws = f"ws-{uuid.uuid4().hex[:8]}"
    reg.count_upload(ws, 10)
    reg.count_upload(ws, 0)  # a chunk that stored nothing adds no series of its own
    reg.count_upload(ws, 5)
    assert REGISTRY.get_sample_value("flightbase_upload_bytes_total", {"workspace": ws}) == 15

"""The chart's side of the services' Prometheus metrics (values ``metrics:``, docs/kubernetes.md "Metrics").

Rendered by the real Helm engine against the stub API server, as in
``test_chart.py``: the metrics token's Secret (random, kept across a
reinstall through ``lookup``, or the operator's own Secret), the token in
both Deployments (from the Secret, never a plain value), the prometheus.io
annotations, the ServiceMonitors and the Grafana dashboard's ConfigMap.
Core objects are validated against the official Kubernetes schemas
(kubernetes-validate, strict); a ServiceMonitor is a custom resource, so it is
validated against the Prometheus Operator's own CRD schema (fixtures/,
closed: a misspelt field fails) and checked against the Services it selects.
"""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from flightbase_server.service import metrics as service_metrics

from . import stubapi
from .chart import CHART, K8S_VERSION, chart_copy, lint, render

helm = pytest.importorskip("helm_sdkpy", reason="helm-sdkpy is not installed (pip install --ignore-requires-python helm-sdkpy)")
from helm_sdkpy.actions import Install  # noqa: E402

SERVICES = {"jobqueue": 8082, "registry": 8083}  # service -> its Service's http port
SECRET = "flightbase-metrics"
SECRET_PATH = f"/api/v1/namespaces/flightbase/secrets/{SECRET}"


def closed(node):
    """The CRD's schema with every object that lists its properties closed (additionalProperties: false),
    as the API server's strict field validation treats unknown fields."""
    if isinstance(node, dict):
        out = {k: closed(v) for k, v in node.items()}
        if "properties" in out and "additionalProperties" not in out and not out.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [closed(v) for v in node]
    return node


SERVICE_MONITOR_SCHEMA = closed(json.loads((Path(__file__).parent / "fixtures" / "servicemonitor-v1-schema.json").read_text()))


def objects(manifest: list[dict], kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in manifest if o["kind"] == kind}


def container(manifest: list[dict], service: str) -> dict:
    return objects(manifest, "Deployment")[f"flightbase-{service}"]["spec"]["template"]["spec"]["containers"][0]


def env(manifest: list[dict], service: str) -> dict[str, dict]:
    return {e["name"]: e for e in container(manifest, service)["env"]}


def validate(manifest: list[dict]) -> None:
    for obj in manifest:
        if obj["kind"] == "ServiceMonitor":
            jsonschema.validate(obj, SERVICE_MONITOR_SCHEMA)
        else:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def assert_no_plain_token(manifest: list[dict], token: str) -> None:
    """The token is in no environment value, no annotation, no ConfigMap: only in its Secret."""
    for obj in manifest:
        if obj["kind"] != "Secret":
            assert token not in json.dumps(obj), (obj["kind"], obj["metadata"]["name"])


def test_defaults_make_a_token_that_reaches_both_services_from_its_secret(tmp_path):
    manifest, created = render(tmp_path)
    validate(manifest)
    assert sorted((o["kind"], o["metadata"]["name"]) for o in manifest) == sorted(
        (o["kind"], o["metadata"]["name"]) for o in created)
    secret = objects(manifest, "Secret")[SECRET]
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    token = base64.b64decode(secret["data"]["token"]).decode()
    assert len(token) == 48 and token.isalnum()
    # what the services will make of it: accepted, not refused as too short
    assert service_metrics.MetricsSettings.from_env({service_metrics.TOKEN_ENV: token}).accepts(token)

    for service in SERVICES:
        entry = env(manifest, service)[service_metrics.TOKEN_ENV]
        assert "value" not in entry
        assert entry["valueFrom"] == {"secretKeyRef": {"name": SECRET, "key": "token"}}
        for e in container(manifest, service)["env"]:  # nothing else carries a token in plain text
            assert token not in (e.get("value") or "")
    assert_no_plain_token(manifest, token)
    assert "ServiceMonitor" not in {o["kind"] for o in manifest}  # off by default


def test_services_carry_scrape_annotations_that_point_at_the_metrics_page(tmp_path):
    manifest, _ = render(tmp_path)
    services = objects(manifest, "Service")
    for service, port in SERVICES.items():
        obj = services[f"flightbase-{service}"]
        prefix = env(manifest, service)["JUPYTERHUB_SERVICE_PREFIX"]["value"]
        assert obj["metadata"]["annotations"] == {
            "prometheus.io/scrape": "true", "prometheus.io/scheme": "http",
            "prometheus.io/path": service_metrics.path(prefix), "prometheus.io/port": str(port)}
        assert service_metrics.path(prefix) == f"/services/{service}/metrics"
        assert [p["port"] for p in obj["spec"]["ports"]] == [port]
        assert [p["containerPort"] for p in container(manifest, service)["ports"] if p["name"] == "http"] == [port]
    for name in ("flightbase-oci", "flightbase-postgresql"):  # nothing else is announced
        assert "annotations" not in services[name]["metadata"]

    manifest, _ = render(tmp_path / "off", {"metrics": {"scrapeAnnotations": False},
                                            "registry": {"dataEndpoint": {"enabled": True, "url": "https://u.example.org"}}})
    validate(manifest)
    assert all("annotations" not in s["metadata"] for s in objects(manifest, "Service").values())


def test_service_monitors_select_each_service_and_send_the_token(tmp_path):
    values = {"metrics": {"serviceMonitor": {"enabled": True, "interval": "15s", "scrapeTimeout": "5s",
                                             "labels": {"release": "kube-prometheus-stack"}},
                          "scrapeAnnotations": False},
              # a second Service on the registry's pods: its ServiceMonitor must still select one Service
              "registry": {"dataEndpoint": {"enabled": True, "url": "https://upload.example.org"}}}
    assert lint(tmp_path / "lint", values) == []
    manifest, created = render(tmp_path, values)
    validate(manifest)
    monitors = objects(manifest, "ServiceMonitor")
    assert sorted(monitors) == ["flightbase-jobqueue", "flightbase-registry"]
    assert {o["metadata"]["name"] for o in created if o["kind"] == "ServiceMonitor"} == set(monitors)
    services = objects(manifest, "Service")
    for service in SERVICES:
        monitor = monitors[f"flightbase-{service}"]
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        spec = monitor["spec"]
        assert spec["namespaceSelector"] == {"matchNames": ["flightbase"]}
        wanted = spec["selector"]["matchLabels"]
        selected = [name for name, s in services.items() if wanted.items() <= s["metadata"]["labels"].items()]
        assert selected == [f"flightbase-{service}"], selected
        [endpoint] = spec["endpoints"]
        port_names = [p["name"] for p in services[f"flightbase-{service}"]["spec"]["ports"]]
        assert endpoint["port"] in port_names
        prefix = env(manifest, service)["JUPYTERHUB_SERVICE_PREFIX"]["value"]
        assert endpoint["path"] == service_metrics.path(prefix)
        assert (endpoint["interval"], endpoint["scrapeTimeout"], endpoint["scheme"]) == ("15s", "5s", "http")
        # the metric's own `service` label (jobqueue, registry) must win over the target's
        assert endpoint["honorLabels"] is True
        # the same Secret and key the Deployment reads the token from
        credentials = endpoint["authorization"]["credentials"]
        assert endpoint["authorization"]["type"] == "Bearer"
        assert {"secretKeyRef": credentials} == env(manifest, service)[service_metrics.TOKEN_ENV]["valueFrom"]
        assert credentials["name"] in objects(manifest, "Secret")


def test_a_service_monitor_with_a_misspelt_field_fails_the_crd_schema():
    """The closed CRD schema catches what the operator would silently drop."""
    monitor = {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor", "metadata": {"name": "m"},
               "spec": {"selector": {"matchLabels": {"a": "b"}},
                        "endpoints": [{"port": "http", "bearerTokenSecret": {"name": "s", "key": "k"}}]}}
    jsonschema.validate(monitor, SERVICE_MONITOR_SCHEMA)
    monitor["spec"]["endpoints"][0]["intervall"] = "30s"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(monitor, SERVICE_MONITOR_SCHEMA)
    monitor["spec"]["endpoints"][0].pop("intervall")
    monitor["spec"]["endpoints"][0]["interval"] = "30 seconds"  # not a Prometheus duration
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(monitor, SERVICE_MONITOR_SCHEMA)


def test_an_existing_secret_is_used_and_none_is_made(tmp_path):
    values = {"metrics": {"token": {"existingSecret": "prometheus-scrape", "key": "flightbase"},
                          "serviceMonitor": {"enabled": True}, "dashboard": {"enabled": False}}}
    assert lint(tmp_path / "lint", values) == []
    manifest, _ = render(tmp_path, values)
    validate(manifest)
    assert SECRET not in objects(manifest, "Secret")
    for service in SERVICES:
        ref = {"secretKeyRef": {"name": "prometheus-scrape", "key": "flightbase"}}
        assert env(manifest, service)[service_metrics.TOKEN_ENV]["valueFrom"] == ref
        credentials = objects(manifest, "ServiceMonitor")[f"flightbase-{service}"]["spec"]["endpoints"][0][
            "authorization"]["credentials"]
        assert credentials == ref["secretKeyRef"]
    assert not [o for o in manifest if o["kind"] == "ConfigMap" and "dashboard" in o["metadata"]["name"]]

    # switching Secrets restarts the pods (a variable from a Secret is read when the container starts)
    default, _ = render(tmp_path / "default")
    for service in SERVICES:
        def annotation(m):
            return objects(m, "Deployment")[f"flightbase-{service}"]["spec"]["template"]["metadata"]["annotations"][
                "checksum/metrics-token"]
        assert annotation(manifest) != annotation(default)


def _install(tmp_path: Path, existing: dict[str, dict], overrides: dict | None = None):
    chart = chart_copy(tmp_path, {"jupyterhub": {"enabled": False}, **(overrides or {})})
    with stubapi.StubApi(existing=existing) as api:
        config = helm.Configuration(namespace="flightbase", kubeconfig=str(api.kubeconfig(tmp_path / "kubeconfig")))
        release = asyncio.run(Install(config).run("flightbase", str(chart), wait=False, timeout=60))
    return [d for d in yaml.safe_load_all(release["manifest"]) if d], api


def _kept_secret(data: dict[str, str]) -> dict:
    """The Secret as an earlier release of ours left it (helm.sh/resource-policy: keep survives an uninstall)."""
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "data": data, "metadata": {
        "name": SECRET, "namespace": "flightbase", "uid": "kept", "resourceVersion": "7",
        "labels": {"app.kubernetes.io/managed-by": "Helm"},
        "annotations": {"meta.helm.sh/release-name": "flightbase", "meta.helm.sh/release-namespace": "flightbase",
                        "helm.sh/resource-policy": "keep"}}}


def test_the_token_is_kept_when_the_secret_exists(tmp_path):
    """Reinstalled over the Secret a previous release kept: ``lookup`` finds it and the token stays (a Prometheus
    configured with it keeps scraping); Helm adopts the Secret, and its update leaves the data alone."""
    kept = base64.b64encode(b"k" * 48).decode()
    manifest, api = _install(tmp_path, {SECRET_PATH: _kept_secret({"token": kept})})
    assert objects(manifest, "Secret")[SECRET]["data"] == {"token": kept}
    assert ("GET", SECRET_PATH) in api.requests  # the lookup (and Helm's ownership check)
    assert all(b"token" not in body for _, _, body in api.patched)
    assert SECRET not in {o["metadata"]["name"] for o in api.created}  # adopted, not created anew

    # a Secret without the configured key (metrics.token.key changed): a new token under the new key
    manifest, _ = _install(tmp_path / "rekeyed", {SECRET_PATH: _kept_secret({"old": kept})},
                           {"metrics": {"token": {"key": "scrape"}}})
    data = objects(manifest, "Secret")[SECRET]["data"]
    assert list(data) == ["scrape"] and data["scrape"] != kept and len(base64.b64decode(data["scrape"])) == 48


def test_the_dashboard_configmap_holds_the_dashboard_file(tmp_path):
    values = {"metrics": {"dashboard": {"namespace": "monitoring", "labels": {"grafana_dashboard": "1"},
                                        "annotations": {"grafana_folder": "Flightbase"}}}}
    manifest, created = render(tmp_path, values)
    validate(manifest)
    config = objects(manifest, "ConfigMap")["flightbase-grafana-dashboard"]
    assert config["metadata"]["namespace"] == "monitoring"
    assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config["metadata"]["annotations"] == {"grafana_folder": "Flightbase"}
    source = (CHART / "dashboards" / "flightbase.json").read_text()
    assert json.loads(config["data"]["flightbase.json"]) == json.loads(source)
    assert config["data"]["flightbase.json"] == source.rstrip("\n")
    assert any(o["kind"] == "ConfigMap" and o["metadata"].get("namespace") == "monitoring" for o in created)

    manifest, _ = render(tmp_path / "default")  # on by default, in the release's namespace
    assert objects(manifest, "ConfigMap")["flightbase-grafana-dashboard"]["metadata"]["namespace"] == "flightbase"


def test_a_service_monitor_needs_the_operators_crd(tmp_path, monkeypatch):
    """Without the Prometheus Operator's CRD the install stops with Helm's own message, before anything is made."""
    monkeypatch.delitem(stubapi.RESOURCES, "monitoring.coreos.com/v1")
    with pytest.raises(Exception, match='no matches for kind "ServiceMonitor"') as refused:
        render(tmp_path, {"metrics": {"serviceMonitor": {"enabled": True}}})
    assert "ensure CRDs are installed first" in str(refused.value)


@pytest.mark.parametrize("bad", [
    {"metrics": {"serviceMonitor": {"interval": "30 seconds"}}},  # a Prometheus duration
    {"metrics": {"token": {"key": ""}}},
    {"metrics": {"serviceMonitor": {"enabeld": True}}},  # additionalProperties: false
    {"metrics": {"scrapeAnnotations": "yes"}},
])
def test_bad_metrics_values_are_errors(tmp_path, bad):
    assert lint(tmp_path, bad) != []

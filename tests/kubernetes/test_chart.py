"""The Helm chart, linted and rendered by the real Helm engine (helm-sdkpy's libhelm, Helm v4).

Lint renders every template and checks the values against values.schema.json
(severity 3 = error).  helm-sdkpy 0.1.32 has no template call and no dry-run
option, so the chart is rendered by a real ``install`` against a stub API
server (``stubapi.py``, a mock: no real API server can run here): Helm renders
the manifests, looks the kinds up through discovery and creates each object;
the stub keeps what it was sent.  Every rendered object is then validated
against the official Kubernetes schemas (kubernetes-validate, strict), for
the default values and for the GPU+RDMA values file.

The Zero to JupyterHub subchart cannot be fetched here; lint and install
refuse a chart whose dependency is missing, so the chart is used from a copy
without the dependency (its values are still checked by our schema).
"""

from __future__ import annotations

import kubernetes_validate
import pytest
import yaml

from flightbase_jobqueue.backends.kubernetes.settings import KubernetesSettings

from .chart import CHART, K8S_VERSION, lint, render

GPU_RDMA = yaml.safe_load((CHART / "ci" / "gpu-rdma-values.yaml").read_text())


@pytest.mark.parametrize("values", [None, GPU_RDMA], ids=["default", "gpu-rdma"])
def test_every_rendered_object_is_valid(tmp_path, values):
    manifest, created = render(tmp_path, values)
    names = sorted((o["kind"], o["metadata"]["name"]) for o in manifest)
    assert names == sorted((o["kind"], o["metadata"]["name"]) for o in created)  # all of it reached the API
    for obj in manifest:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    kinds = {kind for kind, _ in names}
    assert {"Deployment", "Service", "ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding",
            "ConfigMap", "PersistentVolumeClaim"} <= kinds
    config = next(o for o in manifest if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "flightbase-jobqueue")
    assert config["data"]["FLIGHTBASE_BACKEND"] == "kubernetes"
    settings = KubernetesSettings.from_env(config["data"])  # every FLIGHTBASE_K8S_* value parses
    if values is None:
        assert ("StatefulSet", "flightbase-postgresql") in names and ("Deployment", "flightbase-oci") in names
        assert (settings.rdma_resource, settings.shm_size, settings.mpi_operator) == ("rdma/hca", "16Gi", True)
    else:
        assert "StatefulSet" not in kinds and ("Deployment", "flightbase-oci") not in names
        assert (settings.rdma_resource, settings.nccl_ib_hca, settings.nccl_net_gdr_level, settings.shm_size) == (
            "rdma/rdma_shared_device_a", "mlx5_0,mlx5_1,mlx5_2,mlx5_3", "PIX", "64Gi")
        assert config["data"]["FLIGHTBASE_GPU_RDMA_AVAILABLE"] == "true"


def test_the_jobqueue_sees_its_data_on_the_workspaces_claim(tmp_path):
    manifest, _ = render(tmp_path)
    deployment = next(o for o in manifest if o["kind"] == "Deployment" and o["metadata"]["name"] == "flightbase-jobqueue")
    pod = deployment["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: (m["name"], m.get("subPath")) for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["/srv/flightbase/workspaces"] == ("workspaces", None)
    assert mounts["/srv/flightbase/jobs"] == ("workspaces", ".flightbase/jobs")
    assert mounts["/srv/flightbase/code"] == ("workspaces", ".flightbase/code")
    assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    assert "checksum/config" in deployment["spec"]["template"]["metadata"]["annotations"]


def _env(manifest: list[dict], deployment: str) -> dict:
    obj = next(o for o in manifest if o["kind"] == "Deployment" and o["metadata"]["name"] == deployment)
    return {e["name"]: e.get("value") for e in obj["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_services_listen_on_the_pod_address_and_the_data_endpoint_is_opt_in(tmp_path):
    """Both services bind the pod's addresses (a loopback bind would be unreachable from their
    Services and probes). The registry's data endpoint is off by default; on, it gets a port, a
    Service of the chosen type and the public URL it hands out."""
    manifest, _ = render(tmp_path)
    assert _env(manifest, "flightbase-jobqueue")["JUPYTERHUB_SERVICE_URL"] == "http://0.0.0.0:8082"
    env = _env(manifest, "flightbase-registry")
    assert env["JUPYTERHUB_SERVICE_URL"] == "http://0.0.0.0:8083" and "FLIGHTBASE_REGISTRY_DATA_PORT" not in env
    assert ("Service", "flightbase-registry-data") not in {(o["kind"], o["metadata"]["name"]) for o in manifest}

    on = {"registry": {"dataEndpoint": {"enabled": True, "url": "https://upload.example.org", "serviceType": "LoadBalancer"}}}
    manifest, _ = render(tmp_path / "on", on)
    for obj in manifest:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    env = _env(manifest, "flightbase-registry")
    assert (env["FLIGHTBASE_IP"], env["FLIGHTBASE_REGISTRY_DATA_PORT"], env["FLIGHTBASE_REGISTRY_DATA_URL"]) == (
        "0.0.0.0", "8084", "https://upload.example.org")
    service = next(o for o in manifest if o["kind"] == "Service" and o["metadata"]["name"] == "flightbase-registry-data")
    assert service["spec"]["type"] == "LoadBalancer" and service["spec"]["ports"][0]["targetPort"] == "data"
    assert lint(tmp_path / "no-url", {"registry": {"dataEndpoint": {"enabled": True}}}) != []


def test_default_values_lint_clean(tmp_path):
    assert lint(tmp_path) == []


def test_gpu_rdma_values_lint_clean(tmp_path):
    assert lint(tmp_path, yaml.safe_load((CHART / "ci" / "gpu-rdma-values.yaml").read_text())) == []


@pytest.mark.parametrize("bad", [
    {"jobqueue": {"schedulerPolicy": "bogus"}},
    {"storage": {"datasets": {"sizee": "1Gi"}}},  # additionalProperties: false
    {"gpu": {"rdma": "yes"}},  # a boolean
])
def test_bad_values_are_errors(tmp_path, bad):
    """(Lint turns `required` into a warning, so a missing database is not tested here.)"""
    assert lint(tmp_path, bad) != []


def test_every_schema_key_has_a_description():
    import json

    def walk(node, path):
        if node.get("type") == "object" or "properties" in node:
            assert "description" in node or path == "", path
            for key, child in (node.get("properties") or {}).items():
                assert "description" in child, f"{path}.{key}"
                walk(child, f"{path}.{key}")

    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["additionalProperties"] is False
    walk(schema, "")

"""The Kubernetes spawner as the hub runs it: ``FlightbaseKubeSpawner`` is instantiated and
kubespawner's own ``get_pod_manifest()`` builds the notebook's pod from Flightbase's overrides.

Real: kubespawner 7 (its pod builder and its serialisation through kubernetes_asyncio), our
subclass and ``spawn_overrides``, the official Kubernetes 1.33 schema (``kubernetes_validate``,
strict). Not real: the API server. KubeSpawner loads a client configuration when it is made,
so it is given the stub API server's kubeconfig (tests/kubernetes/stubapi.py); building the
manifest sends it no request. ``_mock=True`` is kubespawner's own switch for this (no
reflectors), with its mock user renamed.
"""

from __future__ import annotations

import kubernetes_validate

from flightbase_spawner.objects import NotebookOptions

from .kube_pods import kubeconfig, manifest  # noqa: F401 (kubeconfig: a fixture)


def test_a_gpu_notebooks_pod_is_valid_and_carries_the_overrides(kubeconfig):
    pod = manifest(NotebookOptions(workspace="vision", owner="alice", image="reg/notebook:1", image_pull_secret="pull",
                                   gpu_type="h100", datasets=(("cifar", "vision/cifar/3"),), lease_id="L1",
                                   public_url="http://proxy-public"))
    kubernetes_validate.validate(pod, "1.33.0", strict=True)
    spec = pod["spec"]
    (container,) = spec["containers"]
    assert container["image"] == "reg/notebook:1" and spec["imagePullSecrets"] == [{"name": "pull"}]
    assert container["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    assert spec["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    # never root, no escalation, the person's uid and group on the shared volumes
    assert container["securityContext"]["runAsUser"] == 1000 != 0
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert spec["securityContext"]["fsGroup"] == 1000
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/workspace"]["subPath"] == "vision/users/alice" and not mounts["/workspace"].get("readOnly")
    assert mounts["/datasets/cifar"] == {"mountPath": "/datasets/cifar", "name": "datasets", "readOnly": True,
                                         "subPath": "vision/cifar/3"}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["datasets"]["persistentVolumeClaim"] == {"claimName": "ds", "readOnly": True}
    assert pod["metadata"]["labels"]["flightbase.io/lease"] == "L1"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["FLIGHTBASE_WORKSPACE"] == "vision" and env["FLIGHTBASE_LEASE_ID"] == "L1"
    assert env["JUPYTERHUB_USER"] == "alice"


def test_a_notebook_without_gpu_asks_for_none_and_is_valid(kubeconfig):
    pod = manifest(NotebookOptions(workspace="w", owner="bob", image="reg/notebook:1", gpu_type="h100", gpus=0))
    kubernetes_validate.validate(pod, "1.33.0", strict=True)
    (container,) = pod["spec"]["containers"]
    assert "nvidia.com/gpu" not in (container.get("resources") or {}).get("limits", {})
    assert not pod["spec"].get("nodeSelector")
    assert "datasets" not in {v["name"] for v in pod["spec"]["volumes"]}

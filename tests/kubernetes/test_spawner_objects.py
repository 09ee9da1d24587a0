"""The Kubernetes spawner's pure part: literal output, and the pod kubespawner
builds from it validated against the official schemas (no cluster here)."""

from __future__ import annotations

import kubernetes_validate
import pytest
from kubernetes.client import ApiClient
from kubespawner.objects import make_pod

from flightbase_spawner.objects import GpuType, NotebookOptions, spawn_overrides

H100 = {"h100": GpuType(node_selector={"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
                        tolerations=({"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"},))}
KW = dict(gpu_resource="nvidia.com/gpu", gpu_types=H100, workspaces_pvc="ws", datasets_pvc="ds", shm_size="8Gi")
OPTS = NotebookOptions(workspace="vision", owner="alice", image="reg/notebook:1", image_pull_secret="pull",
                       gpu_type="h100", datasets=(("cifar", "vision/cifar/3"),), lease_id="L1")


def test_overrides_literal():
    assert spawn_overrides(OPTS, **KW) == {
        "image": "reg/notebook:1",
        "image_pull_secrets": ["pull"],
        "extra_resource_limits": {"nvidia.com/gpu": "1"},
        "extra_resource_guarantees": {"nvidia.com/gpu": "1"},
        "volumes": [
            {"name": "workspace", "persistentVolumeClaim": {"claimName": "ws"}},
            {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}},
            {"name": "datasets", "persistentVolumeClaim": {"claimName": "ds", "readOnly": True}},
        ],
        "volume_mounts": [
            {"name": "workspace", "mountPath": "/workspace", "subPath": "vision"},
            {"name": "shm", "mountPath": "/dev/shm"},
            {"name": "datasets", "mountPath": "/datasets/cifar", "subPath": "vision/cifar/3", "readOnly": True},
        ],
        "extra_labels": {"flightbase.io/workspace": "vision", "flightbase.io/owner": "alice", "flightbase.io/lease": "L1"},
        "node_selector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
                        {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}],
        "uid": 1000, "gid": 1000, "fs_gid": 1000,
        "allow_privilege_escalation": False,
        "working_dir": "/workspace",
    }


def test_unknown_gpu_type_is_an_error():
    with pytest.raises(ValueError, match="gpu_type: unknown GPU type 'a100'"):
        spawn_overrides(NotebookOptions(workspace="w", owner="o", image="i", gpu_type="a100"), **KW)


def drop_none(value):
    """kubespawner keeps the pod's metadata as ``V1ObjectMeta.to_dict()`` (unset fields are None)."""
    if isinstance(value, dict):
        return {k: drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_none(v) for v in value]
    return value


def test_kubespawner_pod_from_the_overrides_is_valid():
    o = spawn_overrides(OPTS, **KW)
    pod = make_pod(
        name="jupyter-alice", cmd=["jupyterhub-singleuser"], port=8888, image=o["image"],
        image_pull_secrets=o["image_pull_secrets"], node_selector=o["node_selector"], uid=o["uid"], gid=o["gid"],
        fs_gid=o["fs_gid"], allow_privilege_escalation=False, volumes=o["volumes"],
        volume_mounts=o["volume_mounts"], labels=o["extra_labels"], tolerations=o["tolerations"],
        extra_resource_limits=o["extra_resource_limits"], extra_resource_guarantees=o["extra_resource_guarantees"],
        working_dir=o["working_dir"],
    )
    data = {"apiVersion": "v1", "kind": "Pod", **drop_none(ApiClient().sanitize_for_serialization(pod))}
    kubernetes_validate.validate(data, "1.33.0", strict=True)
    container = data["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert data["spec"]["securityContext"]["runAsUser"] == 1000

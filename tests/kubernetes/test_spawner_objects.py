"""The Kubernetes spawner's pure part: literal output, and the pod kubespawner
builds from it validated against the official schemas (no cluster here)."""

from __future__ import annotations

import kubernetes_validate
import pytest

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


def test_the_overrides_make_a_valid_pod():
    """Validated as the pod fields they become (kubespawner's make_pod output, serialised
    with kubernetes 37's ApiClient, mixes snake_case port fields in; not ours to check)."""
    o = spawn_overrides(OPTS, **KW)
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "jupyter-alice", "labels": o["extra_labels"]},
           "spec": {
               "securityContext": {"runAsUser": o["uid"], "runAsGroup": o["gid"], "fsGroup": o["fs_gid"], "runAsNonRoot": True},
               "imagePullSecrets": [{"name": n} for n in o["image_pull_secrets"]],
               "nodeSelector": o["node_selector"], "tolerations": o["tolerations"], "volumes": o["volumes"],
               "containers": [{"name": "notebook", "image": o["image"], "workingDir": o["working_dir"],
                               "volumeMounts": o["volume_mounts"],
                               "securityContext": {"allowPrivilegeEscalation": o["allow_privilege_escalation"]},
                               "resources": {"limits": o["extra_resource_limits"], "requests": o["extra_resource_guarantees"]}}]}}
    kubernetes_validate.validate(pod, "1.33.0", strict=True)

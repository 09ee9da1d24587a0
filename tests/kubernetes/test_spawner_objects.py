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
                       gpu_type="h100", datasets=(("cifar", "vision/cifar/3"),), lease_id="L1",
                       public_url="http://proxy-public")


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
            {"name": "workspace", "mountPath": "/workspace", "subPath": "vision/users/alice"},
            {"name": "shm", "mountPath": "/dev/shm"},
            {"name": "datasets", "mountPath": "/datasets/cifar", "subPath": "vision/cifar/3", "readOnly": True},
        ],
        "extra_labels": {"flightbase.io/workspace": "vision", "flightbase.io/owner": "alice", "flightbase.io/lease": "L1"},
        "environment": {"FLIGHTBASE_WORKSPACE": "vision", "FLIGHTBASE_NUM_GPUS": "1", "FLIGHTBASE_URL": "http://proxy-public",
                        "FLIGHTBASE_DATASETS_DIR": "/datasets", "FLIGHTBASE_LEASE_ID": "L1"},
        "node_selector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
                        {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}],
        "uid": 1000, "gid": 1000, "fs_gid": 1000,
        "allow_privilege_escalation": False,
        "working_dir": "/workspace",
    }


def test_a_server_without_gpu_asks_for_none_and_goes_anywhere():
    o = spawn_overrides(NotebookOptions(workspace="w", owner="o", image="i", gpu_type="h100", gpus=0), **KW)
    assert o["extra_resource_limits"] == {} and o["extra_resource_guarantees"] == {}
    assert o["node_selector"] == {} and o["tolerations"] == []
    assert o["extra_labels"] == {"flightbase.io/workspace": "w", "flightbase.io/owner": "o"}
    assert o["environment"] == {"FLIGHTBASE_WORKSPACE": "w", "FLIGHTBASE_NUM_GPUS": "0"}


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
                               "env": [{"name": k, "value": v} for k, v in o["environment"].items()],
                               "volumeMounts": o["volume_mounts"],
                               "securityContext": {"allowPrivilegeEscalation": o["allow_privilege_escalation"]},
                               "resources": {"limits": o["extra_resource_limits"], "requests": o["extra_resource_guarantees"]}}]}}
    kubernetes_validate.validate(pod, "1.33.0", strict=True)

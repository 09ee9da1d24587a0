"""What a Jupyter training's pod needs, as pure functions of the resolved options.

The spawner (``kube.py``) resolves the user's options (workspace, image, GPU
type, datasets) and applies the dict :func:`spawn_overrides` returns to its
KubeSpawner traits; kubespawner's own ``make_pod`` builds the pod.  Tested with
literal output in tests/kubernetes/test_spawner_objects.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

LABEL_PREFIX = "flightbase.io/"


@dataclass(frozen=True)
class NotebookOptions:
    workspace: str
    owner: str
    image: str
    image_pull_secret: str | None = None
    gpu_type: str | None = None
    datasets: Sequence[tuple[str, str]] = ()  # (name, subPath in the datasets PVC)
    lease_id: str | None = None
    gpus: int = 1  # 0: a server without a GPU (no lease, no GPU node needed)
    public_url: str = ""  # the hub as the notebook's Flightbase client reaches it


@dataclass(frozen=True)
class GpuType:
    """How to reach one GPU model: a node selector (GPU Feature Discovery's product label) and tolerations."""

    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: Sequence[Mapping[str, str]] = ()


def spawn_overrides(opts: NotebookOptions, *, gpu_resource: str, gpu_types: Mapping[str, GpuType],
                    workspaces_pvc: str, datasets_pvc: str, shm_size: str, uid: int = 1000) -> dict:
    """KubeSpawner trait values for one Jupyter training (one GPU, or none).

    The person's files of the workspace are ``<workspace>/users/<owner>`` of the
    workspaces volume (as ``~/<workspace>`` on one machine), mounted at /workspace.
    """
    if opts.gpu_type is not None and opts.gpu_type not in gpu_types:
        raise ValueError(f"gpu_type: unknown GPU type {opts.gpu_type!r}; known: {', '.join(sorted(gpu_types)) or 'none'}")
    gpu = gpu_types.get(opts.gpu_type) if opts.gpu_type and opts.gpus else GpuType()
    volumes = [
        {"name": "workspace", "persistentVolumeClaim": {"claimName": workspaces_pvc}},
        {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": shm_size}},
    ]
    mounts = [
        {"name": "workspace", "mountPath": "/workspace", "subPath": f"{opts.workspace}/users/{opts.owner}"},
        {"name": "shm", "mountPath": "/dev/shm"},
    ]
    if opts.datasets:
        volumes.append({"name": "datasets", "persistentVolumeClaim": {"claimName": datasets_pvc, "readOnly": True}})
        mounts += [{"name": "datasets", "mountPath": f"/datasets/{name}", "subPath": sub, "readOnly": True}
                   for name, sub in opts.datasets]
    labels = {LABEL_PREFIX + "workspace": opts.workspace, LABEL_PREFIX + "owner": opts.owner}
    env = {"FLIGHTBASE_WORKSPACE": opts.workspace, "FLIGHTBASE_NUM_GPUS": str(opts.gpus)}
    if opts.public_url:
        env["FLIGHTBASE_URL"] = opts.public_url
    if opts.datasets:
        env["FLIGHTBASE_DATASETS_DIR"] = "/datasets"
    if opts.lease_id:
        labels[LABEL_PREFIX + "lease"] = opts.lease_id
        env["FLIGHTBASE_LEASE_ID"] = opts.lease_id
    gpu_limits = {gpu_resource: str(opts.gpus)} if opts.gpus else {}
    tolerations = [{"key": gpu_resource, "operator": "Exists", "effect": "NoSchedule"}] if opts.gpus else []
    return {
        "image": opts.image,
        "image_pull_secrets": [opts.image_pull_secret] if opts.image_pull_secret else [],
        "extra_resource_limits": gpu_limits,
        "extra_resource_guarantees": dict(gpu_limits),
        "volumes": volumes,
        "volume_mounts": mounts,
        "extra_labels": labels,
        "environment": env,
        "node_selector": dict(gpu.node_selector),
        "tolerations": [*tolerations, *map(dict, gpu.tolerations)],
        "uid": uid,
        "gid": uid,
        "fs_gid": uid,
        "allow_privilege_escalation": False,
        "working_dir": "/workspace",
    }

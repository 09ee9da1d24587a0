"""Settings of the Kubernetes backend, read once at start-up.

One frozen dataclass, filled from ``FLIGHTBASE_K8S_*`` environment variables
(the Helm chart sets them on the jobqueue Deployment, see
``helm/flightbase/templates/jobqueue/deployment.yaml``).  Nothing here is read
inside a loop: the backend receives the object when it is built.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

ENV_PREFIX = "FLIGHTBASE_K8S_"


@dataclass(frozen=True)
class KubernetesSettings:
    # Where training objects are created (the jobqueue's RBAC covers this namespace only).
    namespace: str = "flightbase"
    # PVCs holding every workspace's files and every dataset version (one subPath each).
    workspaces_pvc: str = "flightbase-workspaces"
    datasets_pvc: str = "flightbase-datasets"
    # Extended resources: the NVIDIA device plugin's GPUs and the RDMA device plugin's HCAs.
    gpu_resource: str = "nvidia.com/gpu"
    rdma_resource: str = "rdma/hca"
    rdma_per_pod: int = 1
    # NCCL over InfiniBand: the HCAs NCCL may use (NCCL_IB_HCA) and how close a NIC must be
    # to the GPU for GPUDirect RDMA (NCCL_NET_GDR_LEVEL); UCX transports for MPI.
    nccl_ib_hca: str = "mlx5"
    nccl_net_gdr_level: str = "PHB"
    ucx_tls_rdma: str = "rc,sm,cuda_copy,cuda_ipc,gdr_copy"
    # /dev/shm per pod: NCCL's intra-node transport and PyTorch's DataLoader live there.
    shm_size: str = "16Gi"
    # The uid/gid trainings run as (never root); fsGroup makes the volumes writable.
    run_as_user: int = 1000
    run_as_group: int = 1000
    # Upper bound of a pod's grace period; Backend.stop's own grace wins when shorter.
    termination_grace_seconds: int = 60
    # Each watch lasts at most this long, then a full list reconciles (a dead watch
    # cannot freeze job state for longer); after an error the watch backs off.
    resync_seconds: int = 60
    backoff_max_seconds: int = 30
    # CPU and memory asked for by the MPI launcher pod (it only runs mpirun).
    launcher_cpu: str = "500m"
    launcher_memory: str = "512Mi"
    # Ports: torchrun's rendezvous.
    rendezvous_port: int = 29500
    # A training's image without a registry (e.g. "training-base:1") is pulled from here
    # (e.g. "registry.example.org/flightbase"), with this pull secret (none when empty).
    image_prefix: str = ""
    image_pull_secret: str = ""
    # Where the platform's built-in images are (the chart's images.registry, e.g.
    # "ghcr.io/flightbase"): the registry names them "flightbase/<name>:<tag>" (its
    # builtin.py), pulled from "<this>/<name>:<tag>"; empty: as named.
    builtin_image_registry: str = ""
    # Whether the Kubeflow MPI Operator is installed: without it horovod and mpi trainings are refused.
    mpi_operator: bool = True

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "KubernetesSettings":
        environ = os.environ if environ is None else environ
        kwargs: dict = {}
        for f in fields(cls):
            raw = environ.get(ENV_PREFIX + f.name.upper())
            if raw is None:
                continue
            if isinstance(f.default, bool):
                if raw.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(f"{ENV_PREFIX}{f.name.upper()}: {raw!r} is not true or false")
                kwargs[f.name] = raw.lower() in ("true", "1")
                continue
            try:
                kwargs[f.name] = int(raw) if isinstance(f.default, int) else raw
            except ValueError:
                raise ValueError(f"{ENV_PREFIX}{f.name.upper()}: {raw!r} is not an integer") from None
        return cls(**kwargs)

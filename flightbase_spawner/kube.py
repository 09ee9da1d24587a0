"""The spawner of the Kubernetes deployment: a thin KubeSpawner subclass.

It resolves the user's options into :class:`~flightbase_spawner.objects.NotebookOptions`,
asks :attr:`FlightbaseKubeSpawner.gpu_lease_hook` for the GPU lease (the
jobqueue's; it may wait in the queue), applies
:func:`~flightbase_spawner.objects.spawn_overrides` to its traits, and lets
kubespawner build and start the pod.
"""

from __future__ import annotations

from kubespawner import KubeSpawner
from traitlets import Callable, Dict, Unicode

from flightbase_spawner.objects import GpuType, NotebookOptions, spawn_overrides


class FlightbaseKubeSpawner(KubeSpawner):
    gpu_resource = Unicode("nvidia.com/gpu", config=True, help="Extended resource of one GPU (the NVIDIA device plugin's).")
    gpu_types = Dict(
        config=True,
        help="""GPU type name -> {"node_selector": {...}, "tolerations": [...]}, e.g.
        {"h100": {"node_selector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}}}
        (GPU Feature Discovery's product label). A workspace's `gpu_type` must be one of them.""",
    )
    workspaces_pvc = Unicode("flightbase-workspaces", config=True, help="PVC of the workspaces' files (subPath per workspace).")
    datasets_pvc = Unicode("flightbase-datasets", config=True, help="PVC of the dataset versions (mounted read-only).")
    shm_size = Unicode("8Gi", config=True, help="Size of /dev/shm (memory-backed) in the notebook pod.")
    gpu_lease_hook = Callable(
        None,
        allow_none=True,
        config=True,
        help="""async hook(spawner, options) -> lease id, called before the pod is made: it
        asks the jobqueue for the GPU lease (and waits while it is queued). None: no lease
        (only for trials; the jobqueue then does not account the notebook's GPU).""",
    )

    def flightbase_options(self) -> NotebookOptions:
        opts = self.user_options or {}
        return NotebookOptions(
            workspace=opts.get("workspace") or "default",
            owner=self.user.name,
            image=opts.get("image") or self.image,
            image_pull_secret=opts.get("image_pull_secret"),
            gpu_type=opts.get("gpu_type"),
            datasets=tuple((d["name"], d["sub_path"]) for d in opts.get("datasets") or ()),
        )

    async def start(self):
        options = self.flightbase_options()
        if self.gpu_lease_hook is not None:
            lease_id = await self.gpu_lease_hook(self, options)
            options = NotebookOptions(**{**options.__dict__, "lease_id": lease_id})
        overrides = spawn_overrides(
            options, gpu_resource=self.gpu_resource,
            gpu_types={name: GpuType(**spec) for name, spec in self.gpu_types.items()},
            workspaces_pvc=self.workspaces_pvc, datasets_pvc=self.datasets_pvc, shm_size=self.shm_size,
        )
        for trait, value in overrides.items():
            setattr(self, trait, value)
        return await super().start()

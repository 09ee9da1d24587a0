"""The spawner of the Kubernetes deployment: a thin KubeSpawner subclass.

It shares the options form, the option checks and the GPU lease with the
local spawner (:class:`~flightbase_spawner.base.FlightbaseSpawnerMixin`): the
lease is asked of the jobqueue (and waited for in its queue) before the pod
is made, so the scheduler accounts every GPU in use. It then applies
:func:`~flightbase_spawner.objects.spawn_overrides` (a pure function, tested
with literal output) to its traits and lets kubespawner build and start the
pod. The lease id is a label of the pod.
"""

from __future__ import annotations

from kubespawner import KubeSpawner
from traitlets import Dict, Unicode, default

from flightbase_spawner import options as fbopts
from flightbase_spawner.base import FlightbaseSpawnerMixin
from flightbase_spawner.objects import GpuType, NotebookOptions, spawn_overrides


def dataset_sub_path(workspace: str, dataset: dict) -> str:
    """Where a dataset version lies in the datasets volume (the registry's storage layout)."""
    return f"{workspace}/{dataset['name']}/{int(dataset['version'])}"


class FlightbaseKubeSpawner(FlightbaseSpawnerMixin, KubeSpawner):
    gpu_resource = Unicode("nvidia.com/gpu", config=True, help="Extended resource of one GPU (the NVIDIA device plugin's).")
    gpu_types = Dict(
        config=True,
        help="""GPU type name -> {"node_selector": {...}, "tolerations": [...]}, e.g.
        {"h100": {"node_selector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}}}
        (GPU Feature Discovery's product label). A workspace's `gpu_type` must be one of them.""",
    )
    workspace_gpu_types = Dict(config=True, help="Workspace name -> GPU type its notebooks need (from gpu_types).")
    workspaces_pvc = Unicode("flightbase-workspaces", config=True, help="PVC of the workspaces' files (subPath per workspace and person).")
    datasets_pvc = Unicode("flightbase-datasets", config=True, help="PVC of the dataset versions (mounted read-only).")
    image_pull_secret = Unicode("", config=True, help="Pull secret of the platform's registry, for uploaded images.")
    shm_size = Unicode("8Gi", config=True, help="Size of /dev/shm (memory-backed) in the notebook pod.")

    @default("start_timeout")
    def _start_timeout_default(self):
        return 24 * 3600  # includes the wait for a GPU in the queue; the user may cancel it

    def notebook_options(self, opts: fbopts.JupyterOptions, lease: dict | None, image: str) -> NotebookOptions:
        return NotebookOptions(
            workspace=opts.workspace,
            owner=self.user.name,
            image=image,
            image_pull_secret=self.image_pull_secret or None,
            gpu_type=self.workspace_gpu_types.get(opts.workspace),
            datasets=tuple((d["name"], dataset_sub_path(opts.workspace, d)) for d in (lease or {}).get("datasets", ())),
            lease_id=(lease or {}).get("id"),
            gpus=opts.gpus,
            public_url=self.public_url,
        )

    async def start(self):
        opts, choices = await self.checked_options()
        lease = await self.acquire_lease(opts)
        try:
            overrides = spawn_overrides(
                self.notebook_options(opts, lease, choices.references.get(opts.image, self.image)), gpu_resource=self.gpu_resource,
                gpu_types={name: GpuType(**spec) for name, spec in self.gpu_types.items()},
                workspaces_pvc=self.workspaces_pvc, datasets_pvc=self.datasets_pvc, shm_size=self.shm_size,
            )
            for trait, value in overrides.items():
                setattr(self, trait, value)
            return await super().start()
        except BaseException:
            await self.release_lease()
            raise

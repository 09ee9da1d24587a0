"""The images Flightbase ships (built from ``images/``), visible in every workspace."""

from __future__ import annotations

from flightbase_registry.schemas import ImageOut

BUILTIN_IMAGES: tuple[ImageOut, ...] = (
    ImageOut(
        id="builtin-training-base", workspace=None, name="training-base",
        reference="flightbase/training-base:0.1.0",
        description="CUDA, cuDNN, NCCL, OpenMPI, UCX, rdma-core, Python, PyTorch, Horovod",
        frameworks=["pytorch", "horovod"], builtin=True, created_by="flightbase", created_at=None, runs_as="", source="builtin",
    ),
    ImageOut(
        id="builtin-notebook", workspace=None, name="notebook",
        reference="flightbase/notebook:0.1.0",
        description="The training base plus JupyterLab and the Flightbase extension and client",
        frameworks=["pytorch", "horovod", "jupyterlab"], builtin=True, created_by="flightbase", created_at=None, runs_as="", source="builtin",
    ),
)


def runs_as(backend: str) -> str:
    """How an image runs where work runs (the platform's ``backend`` setting: docker, local or kubernetes)."""
    if backend == "docker":
        return "a container of the image (Docker, on this machine)"
    if backend == "local":
        return "host Python environment (jobs and notebooks run as local processes; the image is a name only)"
    return "container image of the pod"

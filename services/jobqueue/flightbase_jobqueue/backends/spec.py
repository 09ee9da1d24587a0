"""What a backend needs to run one job: :class:`LaunchSpec`, the part every backend shares.

``runtime.resolve(job_id)`` builds it from the job and its training; each
backend adds its own part on top (:meth:`launch_spec` of the backend):

- the local backend (:class:`~flightbase_jobqueue.backends.local.LocalLaunchSpec`):
  the artifacts folder on this machine;
- the Kubernetes backend
  (:class:`~flightbase_jobqueue.backends.kubernetes.objects.KubeLaunchSpec`): the
  image reference and its pull secret, and where the code lies on the
  workspaces volume.

Both lay a job's files out the same way inside its workspace
(:func:`artifacts_sub_path`), and both find a dataset version by the
registry's layout (:meth:`DatasetVersion.sub_path`), so the same training
reads and writes the same relative paths on either.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Mapping, NamedTuple


@dataclass(frozen=True)
class DatasetVersion:
    """One immutable dataset version a job reads, mounted at ``/datasets/<name>``.

    ``path``: the folder on the machine the jobqueue runs on (the registry's
    ``datasets/<workspace>/<name>/<version>``); a cluster mounts the same
    folder from the datasets volume (:meth:`sub_path`)."""

    name: str
    version: int
    path: Path | None = None

    def sub_path(self, workspace: str) -> str:
        """Where the version lies inside the datasets volume (``flightbase_registry.storage``'s layout)."""
        return f"{workspace}/{self.name}/{int(self.version)}"


@dataclass(frozen=True)
class LaunchSpec:
    """Everything about one job that does not depend on where it runs."""

    job_id: str
    training_id: str
    workspace: str
    user: str
    launcher: str
    entrypoint: str
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    # The training's secret values (TrainingCreate.secret_env): every backend passes them as
    # environment variables of the job's processes, never on a command line (a command line is
    # readable by every account of the machine, `ps`), never inline in an object others can read
    # (Kubernetes: a Secret and secretKeyRef), and never logs them (hence repr=False).
    secret_env: Mapping[str, str] = field(default_factory=dict, repr=False)
    params: Mapping[str, object] = field(default_factory=dict)
    # The folder whose copy is the job's working directory (uploaded code or a built-in model).
    code_dir: Path | None = None
    datasets: tuple[DatasetVersion, ...] = ()
    # The training's image: its name in the workspace, and the reference the registry resolved it to
    # at submission (the docker backend runs that; the local backend runs on the host's environment).
    image: str = "training-base"
    image_reference: str = ""
    # The container's memory limit per GPU (or CPU slot) held: the workspace's memory_gb_per_gpu.
    memory_gb_per_gpu: float = 8.0
    # How many times the job was restarted (preempted and queued again) before this run.
    restarts: int = 0
    gpudirect_p2p: bool = False
    gpudirect_rdma: bool = False

    def common(self) -> dict:
        """The shared fields, to build a backend's spec on top: ``Sub(**base.common(), ...)``."""
        return {f.name: getattr(self, f.name) for f in fields(LaunchSpec)}


class JobRef(NamedTuple):
    """A job as the API names it to a backend when it reads the job's output."""

    job_id: str
    workspace: str
    training_id: str


def artifacts_sub_path(training_id: str, job_id: str) -> str:
    """A job's artifacts, checkpoints and metrics inside its workspace's folder."""
    return f"trainings/{training_id}/{job_id}"


def code_sub_path(training_id: str) -> str:
    """Where a cluster job's code is staged inside its workspace's folder."""
    return f"trainings/{training_id}/code"


def job_environment(spec: LaunchSpec, *, job_id: str, restarts: int, gpus: list[int], gpu_kind: str,
                    checkpoints: str, metrics_file: str, datasets_dir: str | None,
                    nccl_dir: str | None = None) -> dict[str, str]:
    """The environment every backend gives a job's processes on top of its base environment.

    The training's own variables, then its secret values (in the environment
    only, never on a command line), then the platform's, which win. Paths are
    as the job sees them (the host's for local processes, the container's).
    """
    from flightbase_jobqueue.backends.launchers import communication_env

    env = dict(communication_env(spec.gpudirect_p2p, spec.gpudirect_rdma))
    env.update({k: str(v) for k, v in spec.env.items()})
    env.update({k: str(v) for k, v in spec.secret_env.items()})
    env.update({
        "FLIGHTBASE_JOB_ID": job_id,
        "FLIGHTBASE_TRAINING_ID": spec.training_id,
        "FLIGHTBASE_WORKSPACE": spec.workspace,
        "CUDA_VISIBLE_DEVICES": ",".join(str(g) for g in gpus),
        "FLIGHTBASE_GPU_KIND": gpu_kind,
        "FLIGHTBASE_NUM_GPUS": str(len(gpus)),
        "FLIGHTBASE_ARTIFACTS_DIR": checkpoints,
        "FLIGHTBASE_CHECKPOINT_DIR": checkpoints,
        "FLIGHTBASE_METRICS_FILE": metrics_file,
        "FLIGHTBASE_RESTARTS": str(restarts),
        "PYTHONUNBUFFERED": "1",
    })
    if datasets_dir is not None:
        env["FLIGHTBASE_DATASETS_DIR"] = datasets_dir
    if nccl_dir is not None:  # NCCL's initialisation log, per rank, apart from output.log (comms.py)
        from flightbase_jobqueue.comms import nccl_environment

        env.update(nccl_environment(nccl_dir, spec.env))
    for key, value in spec.params.items():
        env[f"FLIGHTBASE_PARAM_{key.upper()}"] = str(value)
    if gpu_kind == "cpu-slot":
        # CPU slots are accounting units: keep frameworks off any GPU and on a
        # share of the cores that matches the slots the job holds.
        env["CUDA_VISIBLE_DEVICES"] = ""
        env["FLIGHTBASE_CPU_SLOTS"] = ",".join(str(g) for g in gpus)
        env.setdefault("OMP_NUM_THREADS", "1")
    return env

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
    # The training's image (the local backend runs on the host's environment whatever it names).
    image: str = "training-base"
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

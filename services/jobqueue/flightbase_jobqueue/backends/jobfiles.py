"""A job's files on this machine, as both on-machine backends (local processes, docker) lay them out.

``<data_dir>/jobs/<job id>/`` is the platform's (root:<owner's group>, 0750),
so the job's owner can read it but change nothing in it but their own files:

    output.log     everything the job prints, every rank (root, 0600): the local backend gives
                   the job a descriptor on it, the docker backend copies the container's log
    exit_code      the local backend's runner writes it through a descriptor (root, 0600)
    metrics.jsonl  the job's to write (made by the platform, then the owner's); read back
                   bounded and without following links
    datasets/      the platform's links to the dataset versions the job asked for
    work/          the owner's (0700): a copy of the training's code and the working directory
                   of a local job; a container's writable home (its code is mounted read-only)

Checkpoints go to ``<data_dir>/workspaces/<ws>/trainings/<training>/<job>/``
(the owner's, 0700, under folders of the workspace's group). Nothing a job can
write is opened, chowned, listed or removed here as root
(:mod:`flightbase.hostfs`).
"""

from __future__ import annotations

import os
import queue
import shutil
import threading
from pathlib import Path
from typing import Callable

from flightbase import hostfs, metrics
from flightbase_jobqueue.backends import launchers
from flightbase_jobqueue.backends.spec import DatasetVersion, JobRef, LaunchSpec, artifacts_sub_path
from flightbase_jobqueue.ports import BackendEvent, drain


class JobFiles:
    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir)
        self.jobs_dir = hostfs.ensure_dir(self.data_dir / "jobs", 0o711)

    # -- paths -------------------------------------------------------------------
    def job_dir(self, job_id: str) -> Path:
        return self.jobs_dir / job_id

    def log_path(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "output.log"

    def metrics_path(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "metrics.jsonl"

    def exit_code_path(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "exit_code"

    # -- making them ---------------------------------------------------------------
    def make_job_dir(self, job_id: str, gid: int) -> Path:
        """The job's folder: root's, readable by the owner's group (``gid``; -1 without root: 0700)."""
        as_root = hostfs.running_as_root()
        return hostfs.ensure_dir(self.job_dir(job_id), 0o750 if as_root else 0o700, 0 if as_root else -1, gid)

    def make_metrics_file(self, job_id: str, uid: int, gid: int) -> Path:
        """``metrics.jsonl``, made by the platform and given to the owner (kept as it is on a restart)."""
        path = self.metrics_path(job_id)
        if not os.path.lexists(path):
            fd = hostfs.create_file(path)
            try:
                if hostfs.running_as_root():
                    os.fchown(fd, uid, gid)
            finally:
                os.close(fd)
        return path

    def link_datasets(self, jdir: Path, datasets: tuple[DatasetVersion, ...], gid: int) -> Path | None:
        """``<job>/datasets/<name>``: the platform's links to the versions the job asked for (root's folder)."""
        links = jdir / "datasets"
        if not datasets and not os.path.lexists(links):
            return None
        as_root = hostfs.running_as_root()
        hostfs.ensure_dir(links, 0o750 if as_root else 0o700, 0 if as_root else -1, gid)
        wanted = {d.name: str(d.path) for d in datasets}
        for name in os.listdir(links):
            if name not in wanted:
                os.unlink(links / name)
        for name, target in wanted.items():
            link = links / name
            if os.path.lexists(link):
                os.unlink(link)
            os.symlink(target, link, target_is_directory=True)
        return links

    def make_work(self, jdir: Path, code_dir: Path | None, uid: int, gid: int, *, datasets_link: bool = False) -> Path:
        """The job's work folder (kept as it is when it exists: a restarted job resumes in it).

        Made by the platform where nobody else can enter, with a copy of
        ``code_dir`` when given, then handed over whole and renamed into place.
        """
        staging, work = jdir / "work.new", jdir / "work"
        if os.path.lexists(work):
            return work
        if os.path.lexists(staging):  # a start interrupted half-way
            if os.lstat(staging).st_uid == os.geteuid():  # still the platform's: nobody could reach into it
                shutil.rmtree(staging)
            else:  # already handed over: only the rename was missing
                os.rename(staging, work)
                return work
        if code_dir is not None:
            shutil.copytree(code_dir, staging, symlinks=False)
            os.chmod(staging, 0o700)
        else:
            os.mkdir(staging, 0o700)
        if datasets_link and not os.path.lexists(staging / "datasets"):
            os.symlink("../datasets", staging / "datasets", target_is_directory=True)
        hostfs.hand_over(staging, uid, gid)
        os.rename(staging, work)
        return work

    def make_artifacts(self, workspace: str, artifacts_dir: Path, uid: int, gid: int) -> Path:
        """The job's checkpoint folder (the owner's), under folders of the workspace's group (root's)."""
        workspaces = hostfs.ensure_dir(self.data_dir / "workspaces", 0o711)
        folder = hostfs.workspace_dir(workspaces, workspace)
        parts = Path(artifacts_dir).relative_to(folder).parts
        for part in parts[:-1]:
            folder = hostfs.ensure_dir(folder / part, 0o750, 0, gid)
        return hostfs.ensure_dir(folder / parts[-1], 0o700, uid, gid)

    # -- the platform's records ------------------------------------------------------
    def append_log(self, job_id: str, data: bytes | str) -> None:
        jdir = self.job_dir(job_id)
        if not os.path.lexists(jdir):  # the job failed before its folder was made
            hostfs.ensure_dir(jdir, 0o700)
        fd = hostfs.create_file(self.log_path(job_id), append=True)
        try:
            os.write(fd, data.encode() if isinstance(data, str) else data)
        finally:
            os.close(fd)

    # -- what the API reads --------------------------------------------------------
    def log_tail(self, job: JobRef, limit: int) -> bytes:
        """The last ``limit`` bytes of the job's output (every rank)."""
        return hostfs.read_tail(self.log_path(job.job_id), limit)

    def log_from(self, job: JobRef, offset: int, limit: int = 1 << 20) -> bytes:
        """At most ``limit`` bytes of output after the first ``offset`` (for following a job)."""
        return hostfs.read_from(self.log_path(job.job_id), offset, limit)

    def metric_records(self, job: JobRef, log_lines: list[str]) -> list[dict[str, float]]:
        """Every metric record: the job's metrics file, then ``key=value`` lines of ``log_lines``."""
        return metrics.read(self.metrics_path(job.job_id), log_lines)


class OnThisMachine:
    """What both on-machine backends share: their state's set-up, the launch spec (the shared
    spec plus the job's artifacts folder in its workspace, as ``spec_class``), a job's output
    from its files here, and their events through a queue that ``on_event`` announces."""

    spec_class: type  # the backend's LaunchSpec, with an ``artifacts_dir``

    def _setup(self, data_dir: Path, resolve: "Callable[[str], LaunchSpec]", gpu_kind: str, accounts) -> None:
        self.data_dir = Path(data_dir)
        self.files = JobFiles(self.data_dir)
        self.resolve = resolve
        self.gpu_kind = gpu_kind
        self.accounts = accounts
        self.on_event: Callable[[], None] = lambda: None
        self._events: queue.SimpleQueue[BackendEvent] = queue.SimpleQueue()
        self._stopping: dict[str, str] = {}
        self._watched: set[str] = set()
        self._lock = threading.Lock()

    def launch_spec(self, spec: LaunchSpec) -> LaunchSpec:
        if isinstance(spec, self.spec_class):
            return spec
        artifacts = self.data_dir / "workspaces" / spec.workspace / artifacts_sub_path(spec.training_id, spec.job_id)
        return self.spec_class(**spec.common(), artifacts_dir=artifacts)

    def rank_prefix(self, launcher: str) -> str | None:
        """The pattern that tags each output line with its rank (``launchers.RANK_PREFIXES``)."""
        return launchers.RANK_PREFIXES.get(launcher)

    def log_tail(self, job: JobRef, limit: int) -> bytes:
        return self.files.log_tail(job, limit)

    def log_from(self, job: JobRef, offset: int, limit: int = 1 << 20) -> bytes:
        return self.files.log_from(job, offset, limit)

    def metric_records(self, job: JobRef, log_lines: list[str]) -> list[dict[str, float]]:
        return self.files.metric_records(job, log_lines)

    def poll_events(self) -> list[BackendEvent]:
        return drain(self._events)

    def _emit(self, event: BackendEvent) -> None:
        self._events.put(event)
        self.on_event()

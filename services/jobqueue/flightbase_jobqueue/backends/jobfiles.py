"""A job's files on this machine, as both on-machine backends (local processes, docker) lay them out.

``<data_dir>/jobs/<job id>/`` is the platform's (root:<owner's group>, 0750),
so the job's owner can read it but change nothing in it but their own files:

    output.log     everything the job prints, every rank (root, 0600): the local backend gives
                   the job a descriptor on it, the docker backend copies the container's log
    exit_code      the local backend's runner writes it through a descriptor (root, 0600)
    metrics.jsonl  the job's to write (made by the platform, then the owner's); read back
                   bounded and without following links
    datasets/      the platform's links to the dataset versions the job asked for
    nccl/<run>/    NCCL's initialisation log, one file per rank (NCCL_DEBUG_FILE): ``nccl/`` is the
                   platform's, each run's folder the owner's; read back through the folder's
                   descriptor, bounded, without following links (:mod:`flightbase_jobqueue.comms`)
    work/          the owner's (0700): a copy of the training's code and the working directory
                   of a local job; a container's writable home (its code is mounted read-only)

Checkpoints go to ``<data_dir>/workspaces/<ws>/trainings/<training>/<job>/``
(the owner's, 0700, under folders of the workspace's group). Nothing a job can
write is opened, chowned, listed or removed here as root
(:mod:`flightbase_server.hostfs`).
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import threading
from pathlib import Path
from typing import Callable

from flightbase_jobqueue import job_metrics as metrics
from flightbase_server import hostfs
from flightbase_jobqueue.backends import launchers
from flightbase_jobqueue.backends.spec import DatasetVersion, JobRef, LaunchSpec, artifacts_sub_path
from flightbase_jobqueue.ports import BackendEvent, drain


# What is read back of a run's NCCL logs: NCCL names them <host>.<pid>.log (comms.LOG_NAME);
# the initialisation lines come first, so the head of each file is what counts.
NCCL_LOG_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.log")
NCCL_LOG_FILES = 64
NCCL_LOG_BYTES = 256 << 10


def read_nccl_logs(parent: Path) -> dict[str, str]:
    """The NCCL logs of the latest run under a job's ``nccl/`` folder (``nccl/<run>/``), ``{file name:
    text}``: each file's first ``NCCL_LOG_BYTES``, read without following links (``hostfs.read_folder``).
    Shared by the backends that keep a job's folder (``JobFiles``, and the Kubernetes backend's
    ``<data_dir>/jobs/<id>/nccl/``, which the pods write through a sub-path mount)."""
    try:  # the platform's own folder: its entries are runs the platform made
        runs = sorted(int(n) for n in os.listdir(parent) if n.isdigit()) if not os.path.islink(parent) else []
    except OSError:
        return {}
    if not runs:
        return {}
    found = hostfs.read_folder(parent / str(runs[-1]), NCCL_LOG_NAME, max_files=NCCL_LOG_FILES,
                               max_bytes=NCCL_LOG_BYTES)
    return {name: data.decode(errors="replace") for name, data in found.items()}


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

    def nccl_dir(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "nccl"

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

    def make_nccl_dir(self, job_id: str, run: int, uid: int, gid: int) -> Path:
        """``nccl/<run>/``: where this run's ranks write NCCL's log (the owner's, in the platform's ``nccl/``)."""
        as_root = hostfs.running_as_root()
        parent = hostfs.ensure_dir(self.nccl_dir(job_id), 0o750 if as_root else 0o700, 0 if as_root else -1, gid)
        return hostfs.ensure_dir(parent / str(int(run)), 0o700, uid, gid)

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

    def nccl_logs(self, job: JobRef) -> dict[str, str]:
        """The latest run's NCCL logs, ``{file name: text}`` (each file's first ``NCCL_LOG_BYTES``)."""
        return read_nccl_logs(self.nccl_dir(job.job_id))


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

    def nccl_logs(self, job: JobRef) -> dict[str, str]:
        return self.files.nccl_logs(job)

    def _begin_stop(self, job_id: str, grace_seconds: float, reason: str) -> bool:
        """Mark the job as stopping (once) and say so in its log; False for a job this backend does
        not run or is already stopping (``ports.Backend.stop`` is idempotent)."""
        with self._lock:
            if job_id not in self._watched or job_id in self._stopping:
                return False
            self._stopping[job_id] = reason
        self.files.append_log(job_id, f"flightbase: stopping ({reason}); {grace_seconds:g} s to finish\n")
        return True

    def poll_events(self) -> list[BackendEvent]:
        return drain(self._events)

    def _emit(self, event: BackendEvent) -> None:
        self._events.put(event)
        self.on_event()

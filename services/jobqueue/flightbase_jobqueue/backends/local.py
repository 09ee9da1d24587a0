"""The local backend: each job is a group of processes on this machine.

For each job it makes ``<data_dir>/jobs/<job id>/`` (``work/``: a copy of the
training's code and the working directory; ``output.log``: everything the job
prints, every rank, rank-tagged by its launcher; ``exit_code``; ``metrics.jsonl``)
and starts ``runner`` (which records the exit code) around the launcher's
command, as the job owner's own system account, with ``CUDA_VISIBLE_DEVICES``
set to the job's GPUs (or CPU slots) and the workspace's datasets linked in
read-only under ``datasets/``.

Every process of a job carries ``FLIGHTBASE_JOB_ID`` in its environment, so a
stop finds all of them (launchers start workers in their own sessions), and a
restarted service finds the jobs that outlived it.
"""

from __future__ import annotations

import logging
import os
import queue
import resource
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from flightbase import metrics
from flightbase.accounts import AccountError, ensure_account, ensure_home, running_as_root
from flightbase_jobqueue.backends import launchers
from flightbase_jobqueue.backends.spec import JobRef, LaunchSpec, artifacts_sub_path
from flightbase_jobqueue.ports import BackendEvent, Exited, Started, Stopped, drain
from flightbase_jobqueue.scheduling.types import Job, Node, Placement

log = logging.getLogger("flightbase.jobqueue.local")

MARKER = "FLIGHTBASE_JOB_ID"


@dataclass(frozen=True)
class LocalLaunchSpec(LaunchSpec):
    """The shared :class:`LaunchSpec` plus where the job's artifacts go on this machine."""

    artifacts_dir: Path | None = None


def job_pids(job_id: str) -> list[int]:
    """Every live process whose environment names this job."""
    marker = f"{MARKER}={job_id}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = f.read()
            with open(f"/proc/{entry}/stat", "rb") as f:
                if f.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                    continue  # a zombie is gone already
        except OSError:
            continue
        if marker in env.split(b"\0"):
            found.append(int(entry))
    return found


def signal_job(job_id: str, signum: int) -> int:
    count = 0
    for pid in job_pids(job_id):
        try:
            os.kill(pid, signum)
            count += 1
        except ProcessLookupError:
            pass
    return count


class LocalBackend:
    def __init__(self, data_dir: Path, resolve: Callable[[str], LaunchSpec], *, gpu_kind: str = "gpu",
                 home_root: Path | None = None, python: str | None = None, nofile_limit: int = 65536):
        self.data_dir = Path(data_dir)
        self.jobs_dir = self.data_dir / "jobs"
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self.resolve = resolve
        self.gpu_kind = gpu_kind
        self.home_root = str(home_root or Path(data_dir) / "home")
        self.python = python or sys.executable
        self.bindir = str(Path(self.python).parent)
        self.nofile_limit = nofile_limit
        self.on_event: Callable[[], None] = lambda: None
        self._events: queue.SimpleQueue[BackendEvent] = queue.SimpleQueue()
        self._stopping: dict[str, str] = {}
        self._watched: set[str] = set()
        self._lock = threading.Lock()

    # -- paths -------------------------------------------------------------------
    def job_dir(self, job_id: str) -> Path:
        return self.jobs_dir / job_id

    def log_path(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "output.log"

    def metrics_path(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "metrics.jsonl"

    def launch_spec(self, spec: LaunchSpec) -> LocalLaunchSpec:
        """The shared spec plus this backend's part: the artifacts folder in the workspace."""
        if isinstance(spec, LocalLaunchSpec):
            return spec
        artifacts = self.data_dir / "workspaces" / spec.workspace / artifacts_sub_path(spec.training_id, spec.job_id)
        return LocalLaunchSpec(**spec.common(), artifacts_dir=artifacts)

    def missing_tool(self, launcher: str) -> str | None:
        """Why ``launcher`` cannot run here, or None."""
        return launchers.missing_tool(launcher, self.bindir)

    # -- a job's output (what the API reads) ---------------------------------------
    def rank_prefix(self, launcher: str) -> str | None:
        """The pattern that tags each output line with its rank (``launchers.RANK_PREFIXES``)."""
        return launchers.RANK_PREFIXES.get(launcher)

    def log_tail(self, job: JobRef, limit: int) -> bytes:
        """The last ``limit`` bytes of the job's output (every rank)."""
        path = self.log_path(job.job_id)
        if not path.exists():
            return b""
        with open(path, "rb") as f:
            size = f.seek(0, 2)
            f.seek(max(0, size - limit))
            return f.read()

    def log_from(self, job: JobRef, offset: int, limit: int = 1 << 20) -> bytes:
        """At most ``limit`` bytes of output after the first ``offset`` (for following a job)."""
        path = self.log_path(job.job_id)
        if not path.exists():
            return b""
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read(limit)

    def metric_records(self, job: JobRef, log_lines: list[str]) -> list[dict[str, float]]:
        """Every metric record: the job's metrics file, then ``key=value`` lines of ``log_lines``."""
        return metrics.read(self.metrics_path(job.job_id), log_lines)

    def _emit(self, event: BackendEvent) -> None:
        self._events.put(event)
        self.on_event()

    # -- the Backend port --------------------------------------------------------
    def start(self, job: Job, placement: Placement) -> None:
        with self._lock:
            if job.id in self._watched:
                return
            self._watched.add(job.id)
        try:
            spec = self.launch_spec(self.resolve(job.id))
            proc = self._launch(job, spec, placement)
        except Exception as exc:  # anything that prevents the start fails the job, with the reason in its log
            log.warning("job %s could not start: %s", job.id, exc)
            self._append_log(job.id, f"flightbase: the job could not start: {exc}\n")
            self._emit(Exited(job.id, time.time(), 127))
            return
        self._emit(Started(job.id, time.time()))
        threading.Thread(target=self._wait_child, args=(job.id, proc), daemon=True, name=f"job-{job.id}").start()

    def stop(self, job_id: str, grace_seconds: float, reason: str) -> None:
        with self._lock:
            if job_id not in self._watched or job_id in self._stopping:
                return
            self._stopping[job_id] = reason
        self._append_log(job_id, f"flightbase: stopping ({reason}); {grace_seconds:g} s to finish\n")
        signal_job(job_id, signal.SIGTERM)

        def kill_later():
            deadline = time.monotonic() + grace_seconds
            while time.monotonic() < deadline:
                if not job_pids(job_id):
                    return
                time.sleep(0.2)
            signal_job(job_id, signal.SIGKILL)

        threading.Thread(target=kill_later, daemon=True, name=f"stop-{job_id}").start()

    def poll_events(self) -> list[BackendEvent]:
        return drain(self._events)

    # -- after a restart ---------------------------------------------------------
    def reattach(self, job_id: str, stopping: bool = False) -> str | None:
        """Watch a job started by an earlier run of the service.

        Returns None when its processes are still alive (they are watched from
        now on), else how it ended: "exited" (its exit code was recorded and an
        event is queued) or "lost" (no process and no exit code).
        """
        with self._lock:
            self._watched.add(job_id)
            if stopping:
                self._stopping.setdefault(job_id, "stopped before a restart")
        if job_pids(job_id):
            threading.Thread(target=self._wait_orphan, args=(job_id,), daemon=True, name=f"job-{job_id}").start()
            return None
        code = self._exit_code(job_id)
        self._finish(job_id, code if code is not None else 255)
        return "exited" if code is not None else "lost"

    # -- internals ---------------------------------------------------------------
    def _launch(self, job: Job, spec: LocalLaunchSpec, placement: Placement):
        import subprocess

        why = launchers.missing_tool(spec.launcher, self.bindir)
        if why:
            raise RuntimeError(why)
        jdir = self.job_dir(job.id)
        work = jdir / "work"
        jdir.mkdir(parents=True, exist_ok=True)
        jdir.chmod(0o700)  # its owner's (and root's) only: logs and code stay in the job
        if not work.exists():  # a restarted (preempted) job keeps its working directory
            if spec.code_dir is not None:
                shutil.copytree(spec.code_dir, work, symlinks=False)
            else:
                work.mkdir()
        links = work / "datasets"
        if spec.datasets:
            links.mkdir(exist_ok=True)
            for d in spec.datasets:
                link = links / d.name
                if link.is_symlink() or link.exists():
                    link.unlink()
                link.symlink_to(d.path, target_is_directory=True)
        artifacts = spec.artifacts_dir or (jdir / "artifacts")
        artifacts.mkdir(parents=True, exist_ok=True)
        artifacts.chmod(0o700)
        (jdir / "exit_code").unlink(missing_ok=True)

        gpus = sorted(g for node in placement.values() for g in node)
        nprocs = max(1, len(gpus))
        cmd = launchers.command(spec.launcher, launchers.Program(spec.entrypoint, tuple(spec.args)), nprocs,
                                python=self.python, bindir=self.bindir)
        env = self._environment(job, spec, gpus, jdir, artifacts)

        user = None
        if running_as_root():
            try:
                user = ensure_account(spec.user, self.home_root)
            except AccountError as exc:
                raise RuntimeError(str(exc)) from None
            for path in (jdir, work, artifacts, *(p for p in work.rglob("*"))):
                os.lchown(path, user.pw_uid, user.pw_gid)
            env["HOME"] = ensure_home(user, self.home_root)
            env["USER"] = env["LOGNAME"] = user.pw_name

        logf = open(self.log_path(job.id), "ab")
        try:
            return subprocess.Popen(
                [self.python, "-m", "flightbase_jobqueue.backends.runner", str(jdir / "exit_code"), "--", *cmd],
                cwd=work,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                user=user.pw_uid if user else None,
                group=user.pw_gid if user else None,
                extra_groups=[] if user else None,
                preexec_fn=self._limits,
            )
        finally:
            logf.close()

    def _limits(self) -> None:  # runs in the child before exec
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        limit = min(self.nofile_limit, hard) if hard != resource.RLIM_INFINITY else self.nofile_limit
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    def _environment(self, job: Job, spec: LocalLaunchSpec, gpus: list[int], jdir: Path, artifacts: Path) -> dict[str, str]:
        # PYTHONPATH: where the platform itself was found (the runner and flightbase.metrics come from there)
        keep = ("PATH", "PYTHONPATH", "LANG", "LC_ALL", "TZ", "PIP_FIND_LINKS", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
        env = {k: os.environ[k] for k in keep if k in os.environ}
        env["PATH"] = f"{self.bindir}:{env.get('PATH', '/usr/bin:/bin')}"
        env.update(launchers.communication_env(spec.gpudirect_p2p, spec.gpudirect_rdma))
        env.update({k: str(v) for k, v in spec.env.items()})
        env.update(
            {
                MARKER: job.id,
                "FLIGHTBASE_TRAINING_ID": spec.training_id,
                "FLIGHTBASE_WORKSPACE": spec.workspace,
                "CUDA_VISIBLE_DEVICES": ",".join(str(g) for g in gpus),
                "FLIGHTBASE_GPU_KIND": self.gpu_kind,
                "FLIGHTBASE_NUM_GPUS": str(len(gpus)),
                "FLIGHTBASE_ARTIFACTS_DIR": str(artifacts),
                "FLIGHTBASE_CHECKPOINT_DIR": str(artifacts),
                "FLIGHTBASE_METRICS_FILE": str(jdir / "metrics.jsonl"),
                "FLIGHTBASE_RESTARTS": str(job.restarts),
                "PYTHONUNBUFFERED": "1",
            }
        )
        if spec.datasets:
            env["FLIGHTBASE_DATASETS_DIR"] = str(jdir / "work" / "datasets")
        for key, value in spec.params.items():
            env[f"FLIGHTBASE_PARAM_{key.upper()}"] = str(value)
        if self.gpu_kind == "cpu-slot":
            # CPU slots are accounting units: keep frameworks off any GPU and on a
            # share of the cores that matches the slots the job holds.
            env["CUDA_VISIBLE_DEVICES"] = ""
            env["FLIGHTBASE_CPU_SLOTS"] = ",".join(str(g) for g in gpus)
            env.setdefault("OMP_NUM_THREADS", "1")
        return env

    def _append_log(self, job_id: str, text: str) -> None:
        path = self.log_path(job_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as f:
            f.write(text)

    def _exit_code(self, job_id: str) -> int | None:
        try:
            return int((self.job_dir(job_id) / "exit_code").read_text().strip())
        except (OSError, ValueError):
            return None

    def _finish(self, job_id: str, code: int) -> None:
        # whatever the launcher left behind goes too: nothing of a finished job keeps running
        if signal_job(job_id, signal.SIGKILL):
            log.info("job %s: killed processes left behind after it ended", job_id)
        with self._lock:
            reason = self._stopping.pop(job_id, None)
            self._watched.discard(job_id)
        now = time.time()
        self._emit(Stopped(job_id, now) if reason is not None else Exited(job_id, now, code))

    def _wait_child(self, job_id: str, proc) -> None:
        returncode = proc.wait()
        code = self._exit_code(job_id)
        self._finish(job_id, code if code is not None else (128 - returncode if returncode < 0 else returncode))

    def _wait_orphan(self, job_id: str) -> None:
        while job_pids(job_id):
            time.sleep(0.5)
        code = self._exit_code(job_id)
        self._finish(job_id, code if code is not None else 255)


LOCAL_NODE = "local"


class LocalNodes:
    """The embedded deployment's inventory: this machine, with its GPUs or CPU slots."""

    def __init__(self, gpus: Sequence[dict]):
        self._node = Node(name=LOCAL_NODE, total=len(gpus), free=tuple(g["index"] for g in gpus))

    def nodes(self) -> Sequence[Node]:
        return (self._node,) if self._node.total else ()

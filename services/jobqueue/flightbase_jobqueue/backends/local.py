"""The local backend: each job is a group of processes on this machine.

Each job runs ``runner`` (which records the exit code) around the launcher's
command, as the job owner's own system account (:mod:`flightbase.accounts`),
with the system group of the job's workspace as its one extra group
(:func:`flightbase.hostfs.workspace_group`: the workspace's dataset versions and
checkpoints are readable through it), ``CUDA_VISIBLE_DEVICES`` set to the job's
GPUs (or CPU slots), and its datasets linked in read-only.

A job's folder, ``<data_dir>/jobs/<job id>/``, is the platform's
(root:<owner's group>, 0750), so the job can read it but change nothing in it
but its own files:

    output.log     everything the job prints, every rank: the platform opens it and
                   gives the job the descriptor (root, 0600)
    exit_code      written by ``runner`` through a descriptor the platform opened (root, 0600)
    metrics.jsonl  the job's to write (made by the platform, then the owner's); read back
                   bounded and without following links
    datasets/      the platform's links to the dataset versions the job asked for
    work/          a copy of the training's code and the working directory (the owner's, 0700),
                   with ``datasets`` linking to ``../datasets``

Checkpoints go to ``<data_dir>/workspaces/<ws>/trainings/<training>/<job>/``
(the owner's, 0700, under folders of the workspace's group). Nothing the job can
write is ever opened, chowned, listed or removed by the platform as root
(:mod:`flightbase.hostfs`).

Every process of a job carries ``FLIGHTBASE_JOB_ID`` in its environment, so a
stop finds all of them (launchers start workers in their own sessions), and a
restarted service finds the jobs that outlived it. Only processes of the job
owner's account count: another account cannot pose as someone's job.
"""

from __future__ import annotations

import logging
import os
import pwd
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

from flightbase import hostfs, metrics
from flightbase.accounts import AccountError, AccountPolicy, account_for, ensure_home
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


def job_pids(job_id: str, uid: int | None = None) -> list[int]:
    """Every live process whose environment names this job (of account ``uid`` only, when given)."""
    marker = f"{MARKER}={job_id}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if uid is not None and os.stat(f"/proc/{entry}").st_uid != uid:
                continue
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


def signal_job(job_id: str, signum: int, uid: int | None = None) -> int:
    count = 0
    for pid in job_pids(job_id, uid):
        try:
            os.kill(pid, signum)
            count += 1
        except ProcessLookupError:
            pass
    return count


# How much of a job's exit-code file is read back (the job could write into it through ptrace).
_EXIT_CODE_BYTES = 32


class LocalBackend:
    def __init__(self, data_dir: Path, resolve: Callable[[str], LaunchSpec], *, gpu_kind: str = "gpu",
                 home_root: Path | None = None, python: str | None = None, nofile_limit: int = 65536,
                 accounts: AccountPolicy | None = None):
        self.data_dir = Path(data_dir)
        self.jobs_dir = hostfs.ensure_dir(self.data_dir / "jobs", 0o711)
        self.resolve = resolve
        self.gpu_kind = gpu_kind
        self.accounts = accounts or AccountPolicy(home_root=str(home_root or Path(data_dir) / "home"))
        self.python = python or sys.executable
        self.bindir = str(Path(self.python).parent)
        self.nofile_limit = nofile_limit
        self.on_event: Callable[[], None] = lambda: None
        self._events: queue.SimpleQueue[BackendEvent] = queue.SimpleQueue()
        self._stopping: dict[str, str] = {}
        self._watched: set[str] = set()
        self._uids: dict[str, int | None] = {}
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
        return hostfs.read_tail(self.log_path(job.job_id), limit)

    def log_from(self, job: JobRef, offset: int, limit: int = 1 << 20) -> bytes:
        """At most ``limit`` bytes of output after the first ``offset`` (for following a job)."""
        return hostfs.read_from(self.log_path(job.job_id), offset, limit)

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
        uid = self._uid_of(job_id)
        signal_job(job_id, signal.SIGTERM, uid)

        def kill_later():
            deadline = time.monotonic() + grace_seconds
            while time.monotonic() < deadline:
                if not job_pids(job_id, uid):
                    return
                time.sleep(0.2)
            signal_job(job_id, signal.SIGKILL, uid)

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
        if job_pids(job_id, self._uid_of(job_id)):
            threading.Thread(target=self._wait_orphan, args=(job_id,), daemon=True, name=f"job-{job_id}").start()
            return None
        code = self._exit_code(job_id)
        self._finish(job_id, code if code is not None else 255)
        return "exited" if code is not None else "lost"

    # -- internals ---------------------------------------------------------------
    def _uid_of(self, job_id: str) -> int | None:
        """The account a job's processes run as (None: unknown, any account's processes count)."""
        if job_id not in self._uids:
            try:
                user = self.resolve(job_id).user
                self._uids[job_id] = (pwd.getpwnam(user).pw_uid if hostfs.running_as_root() else os.geteuid())
            except Exception:  # a job whose training is gone, or an account that is gone
                return None
        return self._uids[job_id]

    def _launch(self, job: Job, spec: LocalLaunchSpec, placement: Placement):
        import subprocess

        why = launchers.missing_tool(spec.launcher, self.bindir)
        if why:
            raise RuntimeError(why)
        try:
            account = account_for(spec.user, self.accounts)
        except AccountError as exc:
            raise RuntimeError(str(exc)) from None
        as_root = hostfs.running_as_root()
        uid, gid = (account.pw_uid, account.pw_gid) if as_root else (-1, -1)
        ws_gid = hostfs.workspace_group(spec.workspace)
        self._uids[job.id] = account.pw_uid

        jdir = hostfs.ensure_dir(self.job_dir(job.id), 0o750 if as_root else 0o700, 0 if as_root else -1, gid)
        self._link_datasets(jdir, spec, gid)
        if not os.path.lexists(jdir / "work"):  # a restarted (preempted) job keeps its working directory
            self._make_work(jdir, spec, uid, gid)
        artifacts = self._artifacts(spec, uid, ws_gid if ws_gid is not None else gid)
        if not os.path.lexists(self.metrics_path(job.id)):
            fd = hostfs.create_file(self.metrics_path(job.id))
            try:
                if as_root:
                    os.fchown(fd, uid, gid)
            finally:
                os.close(fd)

        gpus = sorted(g for node in placement.values() for g in node)
        nprocs = max(1, len(gpus))
        cmd = launchers.command(spec.launcher, launchers.Program(spec.entrypoint, tuple(spec.args)), nprocs,
                                python=self.python, bindir=self.bindir)
        env = self._environment(job, spec, gpus, jdir, artifacts)
        env["HOME"] = ensure_home(account, self.accounts.home_root)
        env["USER"] = env["LOGNAME"] = account.pw_name

        exit_fd = hostfs.create_file(jdir / "exit_code", truncate=True)
        log_fd = hostfs.create_file(self.log_path(job.id), append=True)
        try:
            return subprocess.Popen(
                [self.python, "-m", "flightbase_jobqueue.backends.runner", "--exit-fd", str(exit_fd), "--", *cmd],
                cwd=jdir / "work",
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_fd,
                stderr=subprocess.STDOUT,
                pass_fds=(exit_fd,),
                start_new_session=True,
                user=uid if as_root else None,
                group=gid if as_root else None,
                extra_groups=([ws_gid] if ws_gid is not None else []) if as_root else None,
                umask=0o077,
                preexec_fn=self._limits,
            )
        finally:
            os.close(exit_fd)
            os.close(log_fd)

    def _link_datasets(self, jdir: Path, spec: LocalLaunchSpec, gid: int) -> None:
        """``<job>/datasets/<name>``: the platform's links to the versions the job asked for (root's folder)."""
        links = jdir / "datasets"
        if not spec.datasets and not os.path.lexists(links):
            return
        hostfs.ensure_dir(links, 0o750 if hostfs.running_as_root() else 0o700, 0 if gid != -1 else -1, gid)
        wanted = {d.name: str(d.path) for d in spec.datasets}
        for name in os.listdir(links):
            if name not in wanted:
                os.unlink(links / name)
        for name, target in wanted.items():
            link = links / name
            if os.path.lexists(link):
                os.unlink(link)
            os.symlink(target, link, target_is_directory=True)

    def _make_work(self, jdir: Path, spec: LocalLaunchSpec, uid: int, gid: int) -> None:
        """The job's working directory: made by the platform where nobody else can enter, then handed over whole."""
        staging, work = jdir / "work.new", jdir / "work"
        if os.path.lexists(staging):  # a start interrupted half-way
            if os.lstat(staging).st_uid == os.geteuid():  # still the platform's: nobody could reach into it
                shutil.rmtree(staging)
            else:  # already handed over: only the rename was missing
                os.rename(staging, work)
                return
        if spec.code_dir is not None:
            shutil.copytree(spec.code_dir, staging, symlinks=False)
            os.chmod(staging, 0o700)
        else:
            os.mkdir(staging, 0o700)
        if spec.datasets and not os.path.lexists(staging / "datasets"):
            os.symlink("../datasets", staging / "datasets", target_is_directory=True)
        hostfs.hand_over(staging, uid, gid)
        os.rename(staging, work)

    def _artifacts(self, spec: LocalLaunchSpec, uid: int, gid: int) -> Path:
        """The job's checkpoint folder (the owner's), under folders of the workspace's group (root's)."""
        if spec.artifacts_dir is None:
            raise RuntimeError("the job has no artifacts folder")
        workspaces = hostfs.ensure_dir(self.data_dir / "workspaces", 0o711)
        folder = hostfs.workspace_dir(workspaces, spec.workspace)
        parts = spec.artifacts_dir.relative_to(folder).parts
        for part in parts[:-1]:
            folder = hostfs.ensure_dir(folder / part, 0o750, 0, gid)
        return hostfs.ensure_dir(folder / parts[-1], 0o700, uid, gid)

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
        env.update({k: str(v) for k, v in spec.secret_env.items()})  # in the environment only, never in argv
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
                "FLIGHTBASE_METRICS_FILE": str(self.metrics_path(job.id)),
                "FLIGHTBASE_RESTARTS": str(job.restarts),
                "PYTHONUNBUFFERED": "1",
            }
        )
        if spec.datasets:
            env["FLIGHTBASE_DATASETS_DIR"] = str(jdir / "datasets")
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
        jdir = self.job_dir(job_id)
        if not os.path.lexists(jdir):  # the job failed before its folder was made
            hostfs.ensure_dir(jdir, 0o700)
        fd = hostfs.create_file(self.log_path(job_id), append=True)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)

    def _exit_code(self, job_id: str) -> int | None:
        try:
            return int(hostfs.read_from(self.job_dir(job_id) / "exit_code", 0, _EXIT_CODE_BYTES).strip())
        except ValueError:
            return None

    def _finish(self, job_id: str, code: int) -> None:
        # whatever the launcher left behind goes too: nothing of a finished job keeps running
        if signal_job(job_id, signal.SIGKILL, self._uid_of(job_id)):
            log.info("job %s: killed processes left behind after it ended", job_id)
        with self._lock:
            reason = self._stopping.pop(job_id, None)
            self._watched.discard(job_id)
            self._uids.pop(job_id, None)
        now = time.time()
        self._emit(Stopped(job_id, now) if reason is not None else Exited(job_id, now, code))

    def _wait_child(self, job_id: str, proc) -> None:
        returncode = proc.wait()
        code = self._exit_code(job_id)
        self._finish(job_id, code if code is not None else (128 - returncode if returncode < 0 else returncode))

    def _wait_orphan(self, job_id: str) -> None:
        uid = self._uid_of(job_id)
        while job_pids(job_id, uid):
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

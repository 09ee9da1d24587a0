"""The local backend: each job is a group of processes on this machine.

Each job runs ``runner`` (which records the exit code) around the launcher's
command, as the job owner's own system account (:mod:`flightbase_server.accounts`),
with the system group of the job's workspace as its one extra group
(:func:`flightbase_server.hostfs.workspace_group`: the workspace's dataset versions and
checkpoints are readable through it), ``CUDA_VISIBLE_DEVICES`` set to the job's
GPUs (or CPU slots), and its datasets linked in read-only. Its files are laid
out as :mod:`~flightbase_jobqueue.backends.jobfiles` says: the job gets a
descriptor on its ``output.log`` and the runner one on its ``exit_code``, in a
folder the job cannot change, and ``work/`` (a copy of the training's code) is
its working directory.

Every process of a job carries ``FLIGHTBASE_JOB_ID`` in its environment, so a
stop finds all of them (launchers start workers in their own sessions), and a
restarted service finds the jobs that outlived it. Only processes of the job
owner's account count: another account cannot pose as someone's job.
"""

from __future__ import annotations

import logging
import os
import pwd
import resource
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from flightbase_server import hostfs
from flightbase_server.accounts import AccountError, AccountPolicy, account_for, ensure_home
from flightbase_jobqueue.backends import launchers
from flightbase_jobqueue.backends.jobfiles import OnThisMachine
from flightbase_jobqueue.backends.spec import LaunchSpec, job_environment
from flightbase_jobqueue.ports import Exited, Started, Stopped
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


class LocalBackend(OnThisMachine):
    spec_class = LocalLaunchSpec

    def __init__(self, data_dir: Path, resolve: Callable[[str], LaunchSpec], *, gpu_kind: str = "gpu",
                 home_root: Path | None = None, python: str | None = None, nofile_limit: int = 65536,
                 accounts: AccountPolicy | None = None):
        self._setup(data_dir, resolve, gpu_kind, accounts or AccountPolicy(home_root=str(home_root or Path(data_dir) / "home")))
        self.python = python or sys.executable
        self.bindir = str(Path(self.python).parent)
        self.nofile_limit = nofile_limit
        self._uids: dict[str, int | None] = {}

    def missing_tool(self, launcher: str) -> str | None:
        """Why ``launcher`` cannot run here, or None."""
        return launchers.missing_tool(launcher, self.bindir)

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
            self.files.append_log(job.id, f"flightbase: the job could not start: {exc}\n")
            self._emit(Exited(job.id, time.time(), 127, reason=f"could not start: {exc}"))
            return
        self._emit(Started(job.id, time.time()))
        threading.Thread(target=self._wait_child, args=(job.id, proc), daemon=True, name=f"job-{job.id}").start()

    def stop(self, job_id: str, grace_seconds: float, reason: str) -> None:
        if not self._begin_stop(job_id, grace_seconds, reason):
            return
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

        jdir = self.files.make_job_dir(job.id, gid)
        self.files.link_datasets(jdir, spec.datasets, gid)
        work = self.files.make_work(jdir, spec.code_dir, uid, gid, datasets_link=bool(spec.datasets))
        artifacts = self.files.make_artifacts(spec.workspace, spec.artifacts_dir, uid,
                                              ws_gid if ws_gid is not None else gid)
        metrics_file = self.files.make_metrics_file(job.id, uid, gid)
        nccl_dir = self.files.make_nccl_dir(job.id, job.restarts, uid, gid)

        gpus = sorted(g for node in placement.values() for g in node)
        nprocs = max(1, len(gpus))
        cmd = launchers.command(spec.launcher, launchers.Program(spec.entrypoint, tuple(spec.args)), nprocs,
                                python=self.python, bindir=self.bindir)
        env = self._base_environment()
        env.update(job_environment(spec, job_id=job.id, restarts=job.restarts, gpus=gpus, gpu_kind=self.gpu_kind,
                                   checkpoints=str(artifacts), metrics_file=str(metrics_file),
                                   datasets_dir=str(jdir / "datasets") if spec.datasets else None,
                                   nccl_dir=str(nccl_dir)))
        env["HOME"] = ensure_home(account, self.accounts.home_root)
        env["USER"] = env["LOGNAME"] = account.pw_name

        exit_fd = hostfs.create_file(self.files.exit_code_path(job.id), truncate=True)
        log_fd = hostfs.create_file(self.files.log_path(job.id), append=True)
        try:
            return subprocess.Popen(
                [self.python, "-m", "flightbase_jobqueue.backends.runner", "--exit-fd", str(exit_fd), "--", *cmd],
                cwd=work,
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

    def _limits(self) -> None:  # runs in the child before exec
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        limit = min(self.nofile_limit, hard) if hard != resource.RLIM_INFINITY else self.nofile_limit
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    def _base_environment(self) -> dict[str, str]:
        # PYTHONPATH: where the platform itself was found (the runner and flightbase.metrics come from
        # there); nothing else of the service's own environment (its hub token) reaches a job
        keep = ("PATH", "PYTHONPATH", "LANG", "LC_ALL", "TZ", "PIP_FIND_LINKS", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
        env = {k: os.environ[k] for k in keep if k in os.environ}
        env["PATH"] = f"{self.bindir}:{env.get('PATH', '/usr/bin:/bin')}"
        return env

    def _exit_code(self, job_id: str) -> int | None:
        try:
            return int(hostfs.read_from(self.files.exit_code_path(job_id), 0, _EXIT_CODE_BYTES).strip())
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

    def __init__(self, gpus: Sequence[dict], labels: dict[str, str] | None = None):
        if labels is None and gpus and gpus[0].get("kind") == "gpu":
            # which GPUs NVLink or one PCIe switch joins: the placement prefers them (gpu_choice.py)
            from flightbase_server import topology

            labels = topology.placement_labels(topology.cached())
        self._node = Node(name=LOCAL_NODE, total=len(gpus), free=tuple(g["index"] for g in gpus), labels=labels or {})

    def nodes(self) -> Sequence[Node]:
        return (self._node,) if self._node.total else ()

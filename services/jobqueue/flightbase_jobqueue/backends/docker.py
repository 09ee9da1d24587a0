"""The docker backend: each job is a container of its training's image, on this machine.

What a job's container gets (docs/security.md has the rules it follows):

- the image its training names, as the registry resolved it at submission
  (:class:`ImageAccess`): a built-in image from the local engine, or one of
  the workspace's own from the platform's OCI registry, pulled with the
  services' account (handed to the engine for the pull, never to the job), and
  only from under the job's own workspace;
- the person's uid:gid (:mod:`flightbase_server.accounts`) with the workspace's group
  as its one extra group, no capability, ``no-new-privileges``, a pids limit,
  a memory limit (the workspace's ``memory_gb_per_gpu`` times its GPUs, no
  swap beyond it), an init process that passes signals on, and exactly its
  GPUs: a device request per GPU, or on CPU slots the cores of its slots
  (``cpuset``);
- its code read-only at ``/code`` (the working directory), a writable home at
  ``/workspace`` (``jobs/<id>/work``, kept across a preemption), its
  checkpoints at ``/checkpoints``, each dataset version read-only at
  ``/datasets/<name>``, and its metrics file; every mount source is checked
  first (:func:`flightbase_server.hostfs.mount_source`);
- the host's network, as local jobs have: the hub's API and a notebook's
  ipyparallel controller are on loopback;
- labels: ``flightbase.job``, ``flightbase.workspace``, ``flightbase.training``,
  ``flightbase.user``, ``flightbase.rank``, ``flightbase.run`` (its restarts).

Multi-GPU launchers run inside the one container. A thread per job follows the
container's log into ``jobs/<id>/output.log`` (the platform's file,
:mod:`~flightbase_jobqueue.backends.jobfiles`) and waits for its exit code from
the Docker API; an out-of-memory kill is reported as such. The container is
removed once its log is kept. A restarted jobqueue finds running containers by
their labels and follows them again.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence
from urllib.parse import urlsplit

from flightbase_server import hostfs, secrets
from flightbase_server.accounts import AccountError, AccountPolicy, account_for
from flightbase_jobqueue.backends import launchers
from flightbase_jobqueue.backends.jobfiles import OnThisMachine
from flightbase_jobqueue.backends.spec import LaunchSpec, job_environment
from flightbase_jobqueue.ports import Exited, Started, Stopped
from flightbase_jobqueue.scheduling.types import Job, Placement

log = logging.getLogger("flightbase.jobqueue.docker")

# Where a job finds its things inside its container.
CODE, HOME, CHECKPOINTS, DATASETS, METRICS = "/code", "/workspace", "/checkpoints", "/datasets", "/flightbase/metrics.jsonl"
NCCL_LOGS = "/flightbase/nccl"  # the run's folder for NCCL's logs (jobfiles.make_nccl_dir)
LABEL = "flightbase"
PIDS_LIMIT = 4096
SHM_BYTES = 1 << 30
GB = 1 << 30
# What each launcher needs in the image, and how the probe names it.
NEEDS = {
    "none": ("python3",),
    "horovod": ("python3", "horovodrun", "flightbase"),
    "torchrun": ("python3", "torchrun"),
    "mpi": ("mpirun",),
}
PROBE = ("for t in python3 horovodrun torchrun mpirun; do command -v $t >/dev/null 2>&1 && echo $t; done; "
         "python3 -c 'import flightbase.quiet_horovodrun' >/dev/null 2>&1 && echo flightbase; true")


class StartError(RuntimeError):
    """Why a job's container could not start: its log and its reason say so."""


@dataclass(frozen=True)
class DockerLaunchSpec(LaunchSpec):
    """The shared :class:`LaunchSpec` plus where the job's checkpoints go on this machine."""

    artifacts_dir: Path | None = None


def cpuset(slots: Sequence[int], cores: int) -> str:
    """The cores a job on CPU slots may use: slot i runs on core i mod the number of cores."""
    return ",".join(str(c) for c in sorted({s % cores for s in slots}))


def container_options(spec: LaunchSpec, *, job_id: str, restarts: int, uid: int, gid: int, groups: Sequence[int],
                      gpus: Sequence[int], gpu_kind: str, cores: int, memory_gb_per_gpu: float,
                      mounts: dict[str, tuple[str, bool]], command: list[str], env: dict[str, str]) -> dict:
    """The Docker SDK's ``containers.create`` arguments of one job's run (pure: table-tested).

    ``mounts``: path in the container -> (source on the host, read-only).
    """
    from docker.types import DeviceRequest, Mount

    memory = int(memory_gb_per_gpu * max(1, len(gpus)) * GB)
    options = {
        "command": command,
        "entrypoint": [""],  # the image's own ENTRYPOINT would wrap the launcher's command: reset it
        "name": f"flightbase-job-{job_id}-{restarts}",
        "labels": {f"{LABEL}.job": job_id, f"{LABEL}.workspace": spec.workspace,
                   f"{LABEL}.training": spec.training_id, f"{LABEL}.user": spec.user,
                   f"{LABEL}.rank": "0", f"{LABEL}.run": str(restarts)},
        "user": f"{uid}:{gid}",
        "group_add": [str(g) for g in groups],
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "pids_limit": PIDS_LIMIT,
        "mem_limit": memory,
        "memswap_limit": memory,
        "shm_size": min(SHM_BYTES, memory // 2),
        "init": True,
        "network_mode": "host",
        "working_dir": CODE,
        "environment": env,
        "mounts": [Mount(target, source, type="bind", read_only=ro) for target, (source, ro) in sorted(mounts.items())],
        "detach": True,
    }
    if gpu_kind == "gpu" and gpus:
        options["device_requests"] = [DeviceRequest(device_ids=[str(g) for g in gpus], capabilities=[["gpu"]])]
    elif gpus:
        options["cpuset_cpus"] = cpuset(gpus, cores)
    return options


class ImageAccess:
    """Makes a job's image available in the local engine, only from where its workspace may take it."""

    def __init__(self, client, data_dir: Path, oci_registry_url: str = ""):
        self.client = client
        self.data_dir = Path(data_dir)
        self.registry_host = urlsplit(oci_registry_url).netloc if oci_registry_url else ""
        self._probed: dict[str, frozenset[str]] = {}
        self._lock = threading.Lock()

    def ensure(self, reference: str, workspace: str) -> str:
        """The id of the local image for ``reference``, pulled when it is the platform registry's."""
        import docker.errors

        host = reference.split("/", 1)[0] if "/" in reference else ""
        ours = bool(self.registry_host) and host == self.registry_host
        if ours:
            repository = reference.split("/", 1)[1].split("@", 1)[0].rsplit(":", 1)[0]
            if not repository.startswith(f"{workspace}/"):
                raise StartError(f"image {reference!r} is not one of workspace {workspace!r}")
        try:
            return self.client.images.get(reference).id
        except docker.errors.ImageNotFound:
            pass
        except docker.errors.APIError as exc:
            raise StartError(f"the container engine cannot read image {reference!r}: {exc.explanation}") from None
        if not ours and ("." not in host and ":" not in host and host != "localhost"):
            raise StartError(f"image {reference!r} is not on this machine (the built-in images are made by "
                             "`make run`; others are uploaded with `flightbase images upload`)")
        auth = None
        if ours:
            auth = {"username": secrets.OCI_REGISTRY_USER,
                    "password": secrets.read(self.data_dir)["oci_registry_password"]}
        name, _, digest = reference.partition("@")
        try:
            repo, tag = (name, None) if digest else name.rsplit(":", 1) if ":" in name.rsplit("/", 1)[-1] else (name, "latest")
            image = self.client.images.pull(repo, tag=digest or tag, auth_config=auth)
        except docker.errors.APIError as exc:
            raise StartError(f"cannot pull image {reference!r}: {exc.explanation}") from None
        return image.id

    def missing(self, image_id: str, launcher: str, uid: int, gid: int) -> list[str]:
        """What the launcher needs that the image lacks (probed once per image, as the person)."""
        with self._lock:
            found = self._probed.get(image_id)
        if found is None:
            try:
                out = self.client.containers.run(image_id, [PROBE], entrypoint=["/bin/sh", "-c"], user=f"{uid}:{gid}",
                                                 network_disabled=True, cap_drop=["ALL"], remove=True,
                                                 security_opt=["no-new-privileges"], mem_limit=256 << 20)
                found = frozenset(out.decode(errors="replace").split())
            except Exception as exc:  # no shell, or a broken image: nothing can be started in it
                raise StartError(f"the image cannot run a shell as uid {uid} ({exc.__class__.__name__}); "
                                 "Flightbase runs images that have /bin/sh and Python") from None
            with self._lock:
                self._probed[image_id] = found
        return [need for need in NEEDS.get(launcher, ()) if need not in found]


class DockerBackend(OnThisMachine):
    spec_class = DockerLaunchSpec

    def __init__(self, data_dir: Path, resolve: Callable[[str], LaunchSpec], *, gpu_kind: str = "gpu",
                 accounts: AccountPolicy | None = None, client=None, oci_registry_url: str = "",
                 cores: int | None = None, stop_grace_seconds: float = 30.0):
        import docker

        self._setup(data_dir, resolve, gpu_kind, accounts or AccountPolicy(home_root=str(Path(data_dir) / "home")))
        # a log stream per running job holds a connection of the pool
        self.client = client or docker.from_env(timeout=300, max_pool_size=256)
        self.images = ImageAccess(self.client, self.data_dir, oci_registry_url)
        self.cores = cores or os.cpu_count() or 1

    # -- what the API reads --------------------------------------------------------

    def missing_tool(self, launcher: str) -> str | None:
        """Launchers are the image's: checked when a job starts (:meth:`ImageAccess.missing`)."""
        return None

    # -- the Backend port --------------------------------------------------------
    def start(self, job: Job, placement: Placement) -> None:
        with self._lock:
            if job.id in self._watched:
                return
            self._watched.add(job.id)
        # pulling an image and probing it take a while: never on the coordinator's thread
        threading.Thread(target=self._start, args=(job, placement), daemon=True, name=f"start-{job.id}").start()

    def stop(self, job_id: str, grace_seconds: float, reason: str) -> None:
        if not self._begin_stop(job_id, grace_seconds, reason):
            return

        def stop_it():
            for container in self._containers(job_id):
                try:
                    container.stop(timeout=max(1, int(grace_seconds)))
                except Exception as exc:  # gone already
                    log.debug("stopping %s: %s", container.name, exc)

        threading.Thread(target=stop_it, daemon=True, name=f"stop-{job_id}").start()

    def reattach(self, job_id: str, stopping: bool = False) -> str | None:
        """Follow a job's container started by an earlier run of the service (found by its label).

        None when it still runs (followed from now on); "exited" when it ended
        meanwhile (its exit code is reported); "lost" when there is no container.
        """
        with self._lock:
            self._watched.add(job_id)
            if stopping:
                self._stopping.setdefault(job_id, "stopped before a restart")
        found = self._containers(job_id)
        if not found:
            self._finish(job_id, 255, "the job's container was gone when the jobqueue restarted")
            return "lost"
        container = max(found, key=lambda c: int(c.labels.get(f"{LABEL}.run", "0")))
        running = container.status in ("running", "created", "restarting", "paused")
        threading.Thread(target=self._follow, args=(job_id, container, True), daemon=True,
                         name=f"job-{job_id}").start()
        return None if running else "exited"

    # -- internals ---------------------------------------------------------------
    def _containers(self, job_id: str) -> list:
        return self.client.containers.list(all=True, filters={"label": f"{LABEL}.job={job_id}"})

    def _start(self, job: Job, placement: Placement) -> None:
        try:
            container = self._launch(job, placement)
        except (StartError, AccountError, hostfs.UnsafePath, OSError) as exc:
            self._refuse(job.id, str(exc))
            return
        except Exception as exc:  # the engine refused: say what it said
            log.warning("job %s could not start", job.id, exc_info=True)
            self._refuse(job.id, getattr(exc, "explanation", None) or str(exc))
            return
        if container is None:  # stopped while it was starting
            self._finish(job.id, 143, None)
            return
        self._emit(Started(job.id, time.time()))
        self._follow(job.id, container, False)

    def _refuse(self, job_id: str, why: str) -> None:
        self.files.append_log(job_id, f"flightbase: the job could not start: {why}\n")
        self._finish(job_id, 127, f"could not start: {why}")

    def _launch(self, job: Job, placement: Placement):
        spec = self.launch_spec(self.resolve(job.id))
        account = account_for(spec.user, self.accounts)
        uid, gid = account.pw_uid, account.pw_gid
        ws_gid = hostfs.workspace_group(spec.workspace)
        image = self.images.ensure(spec.image_reference or spec.image, spec.workspace)
        missing = self.images.missing(image, spec.launcher, uid, gid)
        if missing:
            raise StartError(f"image {spec.image_reference or spec.image!r} lacks what the {spec.launcher!r} launcher "
                             f"needs: {', '.join(missing)}")

        jdir = self.files.make_job_dir(job.id, gid)
        work = self.files.make_work(jdir, None, uid, gid)
        checkpoints = self.files.make_artifacts(spec.workspace, spec.artifacts_dir, uid,
                                                ws_gid if ws_gid is not None else gid)
        metrics_file = self.files.make_metrics_file(job.id, uid, gid)
        mounts = {HOME: (hostfs.mount_source(work), False), CHECKPOINTS: (hostfs.mount_source(checkpoints), False),
                  METRICS: (hostfs.mount_source(metrics_file), False),
                  NCCL_LOGS: (hostfs.mount_source(self.files.make_nccl_dir(job.id, job.restarts, uid, gid)), False)}
        if spec.code_dir is not None:
            mounts[CODE] = (hostfs.mount_source(spec.code_dir), True)
        for d in spec.datasets:
            mounts[f"{DATASETS}/{d.name}"] = (hostfs.mount_source(d.path), True)

        gpus = sorted(g for node in placement.values() for g in node)
        command = launchers.command(spec.launcher, launchers.Program(spec.entrypoint, tuple(spec.args)),
                                    max(1, len(gpus)), python="python3", bindir="")
        env = job_environment(spec, job_id=job.id, restarts=job.restarts, gpus=gpus, gpu_kind=self.gpu_kind,
                              checkpoints=CHECKPOINTS, metrics_file=METRICS,
                              datasets_dir=DATASETS if spec.datasets else None, nccl_dir=NCCL_LOGS)
        if self.gpu_kind == "gpu":  # the container sees its GPUs only, numbered from 0
            env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in range(len(gpus)))
        # what the NVIDIA runtime exposes, whatever a CUDA image says (its NVIDIA_VISIBLE_DEVICES=all would
        # hand every GPU of the machine to a job that holds none, where that runtime is the default)
        env["NVIDIA_VISIBLE_DEVICES"] = ",".join(str(g) for g in gpus) if self.gpu_kind == "gpu" and gpus else "void"
        env.update({"HOME": HOME, "USER": account.pw_name, "LOGNAME": account.pw_name})
        options = container_options(spec, job_id=job.id, restarts=job.restarts, uid=uid, gid=gid,
                                    groups=[ws_gid] if ws_gid is not None else [], gpus=gpus,
                                    gpu_kind=self.gpu_kind, cores=self.cores,
                                    memory_gb_per_gpu=spec.memory_gb_per_gpu, mounts=mounts, command=command,
                                    env=env)
        self._remove_leftover(options["name"])
        self._mark_run(job.id, job.restarts)
        container = self.client.containers.create(image, **options)
        with self._lock:
            if job.id in self._stopping:
                container.remove(force=True)
                return None
        container.start()
        with self._lock:
            stopping = job.id in self._stopping
        if stopping:  # stopped between the check and the start: its stop found it not running yet
            container.stop(timeout=1)
        return container

    def _remove_leftover(self, name: str) -> None:
        """A container of this very run left by a start that was interrupted: it never ran."""
        import docker.errors

        try:
            self.client.containers.get(name).remove(force=True)
        except docker.errors.NotFound:
            pass

    def _mark_run(self, job_id: str, run: int) -> None:
        """Where this run's output begins in the job's log (a restarted service copies the run again from there)."""
        path = self.files.job_dir(job_id) / "runs.json"
        runs = self._runs(job_id)
        runs[str(run)] = _size(self.files.log_path(job_id))
        fd = hostfs.create_file(path, truncate=True)
        try:
            os.write(fd, json.dumps(runs).encode())
        finally:
            os.close(fd)

    def _runs(self, job_id: str) -> dict[str, int]:
        try:
            return json.loads(hostfs.read_from(self.files.job_dir(job_id) / "runs.json", 0, 1 << 16) or b"{}")
        except ValueError:
            return {}

    def _follow(self, job_id: str, container, again: bool) -> None:
        """Copy the container's output into the job's log until it ends, then report how it ended."""
        run = container.labels.get(f"{LABEL}.run", "0")
        if again:  # the service restarted: this run's output is copied again from its beginning
            start = self._runs(job_id).get(run)
            if start is not None:
                fd = hostfs.create_file(self.files.log_path(job_id))
                try:
                    os.ftruncate(fd, start)
                finally:
                    os.close(fd)
        try:
            for chunk in container.logs(stream=True, follow=True, stdout=True, stderr=True):
                self.files.append_log(job_id, chunk)
        except Exception as exc:  # the engine went away; the exit code still tells
            log.warning("job %s: following its log stopped: %s", job_id, exc)
        code, reason = 255, None
        try:
            code = int(container.wait().get("StatusCode", 255))
            container.reload()
            state = container.attrs.get("State", {})
            if state.get("OOMKilled"):
                limit = int(container.attrs.get("HostConfig", {}).get("Memory") or 0)
                reason = (f"out of memory: the job used all of its {limit / GB:g} GB (the workspace's "
                          "memory_gb_per_gpu times its GPUs)")
                self.files.append_log(job_id, f"flightbase: {reason}\n")
        except Exception as exc:
            log.warning("job %s: reading how its container ended failed: %s", job_id, exc)
        self._finish(job_id, code, reason)  # the job's GPUs are free from here; the container goes after
        try:
            container.remove(force=True)
        except Exception as exc:
            log.warning("job %s: removing its container failed: %s", job_id, exc)

    def _finish(self, job_id: str, code: int, reason: str | None) -> None:
        with self._lock:
            stopping = self._stopping.pop(job_id, None)
            self._watched.discard(job_id)
        now = time.time()
        self._emit(Stopped(job_id, now) if stopping is not None else Exited(job_id, now, code, reason=reason))


def _size(path: Path) -> int:
    try:
        return os.lstat(path).st_size
    except FileNotFoundError:
        return 0

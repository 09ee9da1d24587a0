"""The Kubernetes backend: each job is a Job, an indexed Job + Service, or an MPIJob.

Map of this module:

- :meth:`KubernetesBackend.start` builds the job's objects
  (:mod:`.objects`) and creates all of them or none: when one create fails,
  the ones already created are deleted and the job exits with 127, like a
  local job that could not start.
- State follows the pods.  A watch on the backend's pods (label
  ``app.kubernetes.io/managed-by=flightbase-jobqueue``) feeds a cache; every
  change reconciles the job it belongs to (:meth:`_reconcile`): all expected
  pods running -> :class:`Started`; the main pods (the single pod, the MPI
  launcher, every torchrun node) ended -> :class:`Exited` with the exit code
  of the training container; a stopped job whose pods are gone ->
  :class:`Stopped`.
- Each watch lasts at most ``resync_seconds``; before each one a full list
  replaces the cache and reconciles every job (:meth:`resync`), so a watch
  that dies silently delays a change by one resync at most.  Errors back off
  exponentially up to ``backoff_max_seconds``.
- After a restart, :meth:`adopt` finds the backend's objects by label and
  tracks them again; :meth:`reattach` answers the runtime's recovery.
- :meth:`stop` deletes the pods with the caller's grace period first (the
  training gets SIGTERM and that long to checkpoint), then the owning
  objects; a finished job's objects are deleted once its end is reported.
- Runs: a restarted (preempted) job's objects are named and labelled with its
  restart count (``objects.object_name``, ``flightbase.io/run``), so a new run
  never collides with the objects of the run before, and pods of an old run
  still terminating are not mistaken for the new run's.
- Output: before a run's objects are deleted, the main pods' logs are
  appended to ``<data_dir>/jobs/<job id>/output.log``; while it runs, its logs
  are read from the API (:meth:`log_tail`, :meth:`log_from`).  Metrics are the
  job's metrics file on the workspaces volume, seen by the jobqueue at
  ``<data_dir>/workspaces``, and ``key=value`` lines of its output.
- Secrets: a training with secret values gets a ``Secret`` per run, created
  first and deleted with the run's other objects (it owns no pod, so it
  neither keeps a run alive nor counts as the run being there).
- Code: before the objects are created, the training's code is copied to
  ``<workspace>/trainings/<training id>/code`` on the workspaces volume (once
  per training; a restarted job finds it there).
- NCCL's logs: before the objects are created, the run's folder
  ``<data_dir>/jobs/<job id>/nccl/<run>`` is made (on the claim: the
  sub-path the pods mount at ``/flightbase/nccl``, ``objects.nccl_sub_path``);
  :meth:`nccl_logs` reads the latest run's files back, bounded and without
  following links (``jobfiles.read_nccl_logs``), for the job's
  ``communication`` record.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import queue
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from flightbase_jobqueue import job_metrics as metrics
from flightbase_server import hostfs
from flightbase_jobqueue.backends import launchers
from flightbase_jobqueue.backends.jobfiles import read_nccl_logs
from flightbase_jobqueue.backends.spec import JobRef, LaunchSpec, artifacts_sub_path, code_sub_path
from flightbase_jobqueue.ports import BackendEvent, Exited, Started, Stopped, drain
from flightbase_jobqueue.scheduling.types import Job, Placement

from .client import KubeClient, KubeError
from .objects import (
    CONTAINER, EXPECTED_PODS, JOB_LABEL, KIND_LABEL, ROLE_LABEL, RUN_LABEL, SELECTOR, KubeLaunchSpec, label_value,
    make_objects,
)
from .settings import KubernetesSettings

log = logging.getLogger("flightbase.jobqueue.kubernetes")

TOP_KINDS = ("MPIJob", "Job", "Service", "Secret")
# Kinds of a run that own no pods: the run is gone when only these are left.
PODLESS_KINDS = ("Service", "Secret")
MAIN_ROLES = ("main", "launcher", "node")
# Waiting reasons that will not fix themselves: the job fails instead of waiting forever.
FATAL_WAITING = ("InvalidImageName", "ErrImageNeverPull", "CreateContainerConfigError", "CreateContainerError")
NOT_STARTED = 127
LOST = 255


@dataclass
class Tracked:
    job_id: str
    objects: list[tuple[str, str]]  # (kind, name) of the top-level objects
    expected_pods: int
    expected_main: int
    run: int = 0  # the restart count: pods of other runs are not this run's
    started: bool = False
    stopping: str | None = None
    stop_grace: float = 0.0
    done: bool = False
    archived: bool = False  # the run's output is in the job's log file
    pods: dict[str, dict] = field(default_factory=dict)  # name -> pod, from the watch/list


def _exit_code(pod: dict) -> int | None:
    for cs in pod.get("status", {}).get("containerStatuses") or ():
        if cs.get("name") == CONTAINER:
            terminated = (cs.get("state") or {}).get("terminated")
            if terminated is not None:
                return int(terminated.get("exitCode", LOST))
    return None


def _fatal_waiting(pod: dict) -> str | None:
    for cs in pod.get("status", {}).get("containerStatuses") or ():
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in FATAL_WAITING:
            return f"{waiting['reason']}: {waiting.get('message', '')}".strip(": ")
    return None


def _labels(obj: dict) -> dict:
    return obj.get("metadata", {}).get("labels") or {}


def _run(obj: dict) -> int:
    try:
        return int(_labels(obj).get(RUN_LABEL, 0))
    except ValueError:
        return 0


def _main_pods(pods) -> list[dict]:
    """The pods whose output is the job's output, in a stable order (torchrun: by index)."""
    return sorted((p for p in pods if _labels(p).get(ROLE_LABEL) in MAIN_ROLES), key=lambda p: p["metadata"]["name"])


BUILTIN_NAMESPACE = "flightbase/"  # the registry's names of the built-in images (its builtin.py)


def cluster_image(image: str, settings: KubernetesSettings) -> str:
    """The reference a pod pulls for a training's ``image``.

    A built-in image (``flightbase/<name>:<tag>``) comes from ``builtin_image_registry``;
    a name without a registry (``training-base:1``) gets ``image_prefix``; any other
    reference is used as it is.
    """
    repository = image.split(":", 1)[0]
    if settings.builtin_image_registry and image.startswith(BUILTIN_NAMESPACE) and repository.count("/") == 1:
        return settings.builtin_image_registry.rstrip("/") + "/" + image[len(BUILTIN_NAMESPACE):]
    if settings.image_prefix and "/" not in repository:
        return settings.image_prefix.rstrip("/") + "/" + image
    return image


class KubernetesBackend:
    gpu_kind = "gpu"

    def __init__(self, client: KubeClient, resolve: Callable[[str], LaunchSpec], settings: KubernetesSettings,
                 *, data_dir: Path | None = None, clock: Callable[[], float] = time.time):
        """``data_dir``: the jobqueue's data folder; ``workspaces/`` in it is the workspaces
        volume (code staging, metrics) and ``jobs/`` keeps each job's output.  None: no
        code is staged and only live output is read (the tests of the reconcile logic)."""
        self.client = client
        self.resolve = resolve
        self.settings = settings
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.clock = clock
        self.on_event: Callable[[], None] = lambda: None
        self._events: queue.SimpleQueue[BackendEvent] = queue.SimpleQueue()
        self._jobs: dict[str, Tracked] = {}
        self._by_label: dict[str, str] = {}  # job label value -> job id
        self._lock = threading.RLock()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the Backend port --------------------------------------------------------------
    def start(self, job: Job, placement: Placement) -> None:
        with self._lock:
            if job.id in self._jobs:
                return
        try:
            spec = dataclasses.replace(self.launch_spec(self.resolve(job.id)), restarts=job.restarts)
            objs = make_objects(spec, self.settings, placement)
            self._stage_code(spec)
        except Exception as exc:
            log.warning("job %s could not start: %s", job.id, exc)
            self._emit(Exited(job.id, self.clock(), NOT_STARTED))
            return
        try:
            self._make_nccl_dir(job.id, job.restarts)
        except (OSError, hostfs.UnsafePath) as exc:  # the job runs without its NCCL record rather than not at all
            log.warning("job %s: no folder for NCCL's log (%s); its communication record stays empty", job.id, exc)
        created: list[dict] = []
        try:
            for obj in objs:
                self.client.create(obj)
                created.append(obj)
        except Exception as exc:  # gang semantics: all of the job's objects or none
            log.warning("job %s: creating %s %s failed (%s); deleting the %d created before",
                        job.id, obj["kind"], obj["metadata"]["name"], exc, len(created))
            for done in reversed(created):
                self._delete_quietly(done["kind"], done["metadata"]["name"])
            self._emit(Exited(job.id, self.clock(), NOT_STARTED))
            return
        top = objs[-1]
        self._track(job.id, [(o["kind"], o["metadata"]["name"]) for o in objs],
                    int(top["metadata"]["annotations"][EXPECTED_PODS]), top["metadata"]["labels"][KIND_LABEL],
                    run=job.restarts)

    def launch_spec(self, spec: LaunchSpec) -> KubeLaunchSpec:
        """The shared spec plus this backend's part: the full image reference and its pull secret."""
        if isinstance(spec, KubeLaunchSpec):
            return spec
        # the reference the registry resolved the image's name to (the built-in "training-base" is
        # flightbase/training-base:<tag>), as the docker backend pulls it; the name when there is none
        image = cluster_image(spec.image_reference or spec.image, self.settings)
        return KubeLaunchSpec(**{**spec.common(), "image": image},
                              image_pull_secret=self.settings.image_pull_secret or None)

    def missing_tool(self, launcher: str) -> str | None:
        """Why ``launcher`` cannot run in this cluster, or None."""
        if launcher in ("horovod", "mpi") and not self.settings.mpi_operator:
            return f"{launcher} trainings need the MPI Operator, which this cluster does not have (gpu.mpiOperator)"
        return None

    def stop(self, job_id: str, grace_seconds: float, reason: str) -> None:
        with self._lock:
            t = self._jobs.get(job_id)
            if t is None or t.done or t.stopping is not None:
                return
        try:
            pods, _ = self.client.list("Pod", f"{JOB_LABEL}={label_value(job_id)}")
        except KubeError as exc:
            log.warning("job %s: listing its pods to stop them failed (%s); the resync retries", job_id, exc)
            pods = list(t.pods.values())
        with self._lock:
            t.pods = {p["metadata"]["name"]: p for p in pods}
            self._reconcile(t)  # it may have ended already: then it reports Exited, not Stopped
            if t.done:
                return
            t.stopping = reason
            t.stop_grace = grace_seconds
        log.info("job %s: stopping (%s), %g s grace", job_id, reason, grace_seconds)
        self._delete_job(t, grace_seconds)
        with self._lock:
            self._reconcile(t)

    def poll_events(self) -> list[BackendEvent]:
        return drain(self._events)

    # -- restart ------------------------------------------------------------------------
    def adopt(self) -> list[str]:
        """Track every job whose objects carry this backend's labels (after a restart).

        Of a job with objects of several runs, the latest run is tracked and the
        objects of the runs before it are deleted."""
        found: dict[tuple[str, int], tuple[list[tuple[str, str]], int, str]] = {}
        for kind in TOP_KINDS:
            for obj in self._list_quietly(kind):
                meta = obj["metadata"]
                job_id = (meta.get("annotations") or {}).get("flightbase.io/job-id") or _labels(obj).get(JOB_LABEL)
                objects, pods, k = found.get((job_id, _run(obj)), ([], 0, ""))
                objects.append((kind, meta["name"]))
                if kind not in PODLESS_KINDS:
                    pods, k = int(meta["annotations"].get(EXPECTED_PODS, 1)), _labels(obj).get(KIND_LABEL, "job")
                found[(job_id, _run(obj))] = (objects, pods, k)
        latest: dict[str, int] = {}
        for job_id, run in found:
            latest[job_id] = max(run, latest.get(job_id, run))
        for (job_id, run), (objects, pods, kind) in sorted(found.items()):
            if run != latest[job_id]:
                log.info("job %s: deleting the objects of its earlier run %d", job_id, run)
                for kind_, name in objects:
                    self._delete_quietly(kind_, name)
                continue
            with self._lock:
                if job_id not in self._jobs:
                    self._track(job_id, objects, pods, kind, reconcile=False, run=run)
        self.resync()
        return sorted(latest)

    def reattach(self, job_id: str, stopping: bool = False) -> str | None:
        """For the runtime's recovery: None if the job's objects are there (it is
        tracked from now on), else "lost" (an Exited event with 255 is queued)."""
        with self._lock:
            t = self._jobs.get(job_id)
        if t is None:
            self.adopt()
            with self._lock:
                t = self._jobs.get(job_id)
        if t is None:
            self._emit(Exited(job_id, self.clock(), LOST))
            return "lost"
        if stopping:
            self.stop(job_id, 0, "stopped before a restart")
        return None

    # -- watch and resync -------------------------------------------------------------------
    def start_watching(self) -> None:
        self._thread = threading.Thread(target=self.watch_forever, daemon=True, name="kube-watch")
        self._thread.start()

    def close(self) -> None:
        self._closing.set()

    def watch_forever(self) -> None:
        delay = 1.0
        while not self._closing.is_set():
            try:
                self.watch_once()
                delay = 1.0
            except Exception as exc:  # a broken watch or list must not stop state from following the cluster
                log.warning("watching pods failed (%s); retrying in %g s", exc, delay)
                if self._closing.wait(delay):
                    return
                delay = min(delay * 2, float(self.settings.backoff_max_seconds))

    def watch_once(self) -> None:
        """One cycle: a full resync, then a watch of at most ``resync_seconds``."""
        version = self.resync()
        for kind, pod in self.client.watch("Pod", SELECTOR, version, self.settings.resync_seconds):
            self.apply(kind, pod)
            if self._closing.is_set():
                return

    def resync(self) -> str:
        """List the pods and objects, replace the cache, reconcile every job, retry deletions."""
        pods, version = self.client.list("Pod", SELECTOR)
        present = {(kind, o["metadata"]["name"]) for kind in TOP_KINDS for o in self._list_quietly(kind)}
        cleanup: list[Tracked] = []
        leftovers: list[tuple[str, str]] = []
        with self._lock:
            for t in self._jobs.values():
                t.pods = {}
            for pod in pods:
                t = self._owner(pod)
                if t is not None:
                    t.pods[pod["metadata"]["name"]] = pod
            for t in list(self._jobs.values()):
                mine = [o for o in t.objects if o in present and o[0] != "Secret"]
                if not mine and not t.pods:
                    if not t.done and t.stopping is None:
                        log.warning("job %s: its objects are gone", t.job_id)
                        self._finish(t, LOST)
                    self._reconcile(t)
                    if t.done or t.stopping is None:
                        leftovers += [o for o in t.objects if o in present]  # its Secret
                        self._forget(t)
                    continue
                self._reconcile(t)
                if t.done or t.stopping is not None:
                    cleanup.append(t)
        for t in cleanup:  # a stop or a clean-up that an API error interrupted
            self._delete_job(t, t.stop_grace if t.stopping is not None else None)
        for kind, name in leftovers:
            self._delete_quietly(kind, name)
        return version

    def apply(self, kind: str, pod: dict) -> None:
        """One watch event."""
        with self._lock:
            t = self._owner(pod)
            if t is None:
                return
            name = pod["metadata"]["name"]
            if kind == "DELETED":
                t.pods.pop(name, None)
            else:
                t.pods[name] = pod
            finished = self._reconcile(t)
        if finished:
            self._delete_job(t, None)

    # -- internals --------------------------------------------------------------------------
    def _track(self, job_id: str, objects, expected_pods: int, kind: str, reconcile: bool = True, run: int = 0) -> None:
        t = Tracked(job_id, objects, expected_pods, 1 if kind == "mpijob" else expected_pods, run=run)
        with self._lock:
            self._jobs[job_id] = t
            self._by_label[label_value(job_id)] = job_id

    def _forget(self, t: Tracked) -> None:
        self._jobs.pop(t.job_id, None)
        self._by_label.pop(label_value(t.job_id), None)

    def _owner(self, pod: dict) -> Tracked | None:
        job_id = self._by_label.get(_labels(pod).get(JOB_LABEL, ""))
        t = self._jobs.get(job_id) if job_id else None
        return t if t is not None and _run(pod) == t.run else None

    def _emit(self, event: BackendEvent) -> None:
        self._events.put(event)
        self.on_event()

    def _finish(self, t: Tracked, code: int) -> None:
        if not t.started:  # a job that ended before anyone saw it run still ran
            t.started = True
            self._emit(Started(t.job_id, self.clock()))
        t.done = True
        self._emit(Exited(t.job_id, self.clock(), code))

    def _reconcile(self, t: Tracked) -> bool:
        """Advance one job from its pods (lock held).  True when it has just ended."""
        if t.done:
            return False
        pods = list(t.pods.values())
        if t.stopping is not None:
            if not pods:
                t.done = True
                self._emit(Stopped(t.job_id, self.clock()))
                self._forget(t)
            return False
        for pod in pods:
            why = _fatal_waiting(pod)
            if why:
                log.warning("job %s: pod %s cannot start: %s", t.job_id, pod["metadata"]["name"], why)
                self._finish(t, NOT_STARTED)
                return True
        phases = [p.get("status", {}).get("phase") for p in pods]
        if not t.started and len(pods) >= t.expected_pods and all(ph in ("Running", "Succeeded", "Failed") for ph in phases):
            t.started = True
            self._emit(Started(t.job_id, self.clock()))
        main = [p for p in pods if _labels(p).get(ROLE_LABEL) in MAIN_ROLES]
        failed = [p for p in main if p.get("status", {}).get("phase") == "Failed"]
        if failed:
            code = _exit_code(failed[0])
            self._finish(t, LOST if code is None or code == 0 else code)
            return True
        if len(main) >= t.expected_main and all(p.get("status", {}).get("phase") == "Succeeded" for p in main):
            self._finish(t, 0)
            return True
        return False

    def _delete_job(self, t: Tracked, grace_seconds: float | None) -> None:
        """The run's output kept, then pods (with the grace period), then the objects that own them."""
        self._archive(t)
        if grace_seconds is not None:
            grace = max(0, math.ceil(grace_seconds))
            for name in list(t.pods):
                self._delete_quietly("Pod", name, grace)
        for kind, name in t.objects:
            self._delete_quietly(kind, name)

    def _delete_quietly(self, kind: str, name: str, grace: int | None = None) -> None:
        try:
            self.client.delete(kind, name, grace_seconds=grace, propagation="Background")
        except KubeError as exc:
            log.warning("deleting %s %s failed (%s); the next resync retries", kind, name, exc)

    def _list_quietly(self, kind: str) -> list[dict]:
        try:
            return self.client.list(kind, SELECTOR)[0]
        except KubeError as exc:
            if exc.status == 404:  # e.g. the MPI Operator (its CRD) is not installed
                return []
            raise

    # -- code and output ----------------------------------------------------------------------
    def _stage_code(self, spec: KubeLaunchSpec) -> None:
        """Copy the training's code where its pods' working directory is, once per training."""
        if self.data_dir is None or spec.code_dir is None or spec.code_sub_path:
            return
        target = self.data_dir / "workspaces" / spec.workspace / code_sub_path(spec.training_id)
        if target.exists():
            return
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(spec.code_dir, partial, symlinks=False)
        partial.rename(target)  # all of it or nothing, for a job started while another copies

    def nccl_dir(self, job_id: str) -> Path | None:
        """``<data_dir>/jobs/<id>/nccl``: each run's NCCL logs, in ``<run>/`` (None: not kept)."""
        return self.data_dir / "jobs" / job_id / "nccl" if self.data_dir is not None else None

    def _make_nccl_dir(self, job_id: str, run: int) -> None:
        """The run's folder that its pods mount at ``/flightbase/nccl`` (``objects.nccl_sub_path``).

        ``jobs/<id>/`` and ``nccl/`` are the jobqueue's alone (0700); the run's folder belongs to
        the pods' uid (the jobqueue's own in the chart: both run as 1000), or, where the jobqueue
        runs as another uid without root, is shared with the pods' group.  A pod sees only
        this folder, never ``output.log`` or another run's folder."""
        parent = self.nccl_dir(job_id)
        if parent is None:
            return
        parent.parent.parent.mkdir(parents=True, exist_ok=True)  # jobs/: the chart's mount point, left as it is
        hostfs.ensure_dir(parent.parent, 0o700)
        hostfs.ensure_dir(parent, 0o700)
        own = hostfs.running_as_root() or os.geteuid() == self.settings.run_as_user
        hostfs.ensure_dir(parent / str(int(run)), 0o700 if own else 0o770,
                          self.settings.run_as_user, self.settings.run_as_group)

    def nccl_logs(self, job: JobRef) -> dict[str, str]:
        """The latest run's NCCL logs, ``{file name: text}``, as the pods' ranks wrote them (for the
        job's ``communication`` record; bounded, never through a link: ``jobfiles.read_nccl_logs``)."""
        folder = self.nccl_dir(job.job_id)
        return read_nccl_logs(folder) if folder is not None else {}

    def log_path(self, job_id: str) -> Path | None:
        """Where the output of the job's finished runs is kept (None: not kept)."""
        return self.data_dir / "jobs" / job_id / "output.log" if self.data_dir is not None else None

    def _pod_logs(self, pods) -> bytes:
        out = b""
        for pod in _main_pods(pods):
            try:
                out += self.client.pod_log(pod["metadata"]["name"], CONTAINER)
            except KubeError as exc:  # not started yet, or gone
                log.debug("logs of pod %s: %s", pod["metadata"]["name"], exc)
        return out

    def _archive(self, t: Tracked) -> None:
        """Append the run's output to the job's log file, once per run."""
        path = self.log_path(t.job_id)
        if t.archived or path is None:
            return
        t.archived = True
        data = self._pod_logs(list(t.pods.values()))
        if data:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "ab") as f:
                f.write(data if data.endswith(b"\n") else data + b"\n")

    def _output(self, job_id: str) -> bytes:
        """Everything the job printed: finished runs from the log file, then the live run's pods."""
        path = self.log_path(job_id)
        kept = path.read_bytes() if path is not None and path.exists() else b""
        with self._lock:
            t = self._jobs.get(job_id)
            pods = list(t.pods.values()) if t is not None and not t.archived else []
        return kept + self._pod_logs(pods)

    def rank_prefix(self, launcher: str) -> str | None:
        """Output lines' rank tags: mpirun's ``--tag-output`` for the MPIJob launchers, torchrun's
        with the global rank (``objects.make_torchrun``)."""
        return launchers.RANK_PREFIXES.get("mpi" if launcher in ("horovod", "mpi") else launcher)

    def log_tail(self, job: JobRef, limit: int) -> bytes:
        """The last ``limit`` bytes of the job's output."""
        return self._output(job.job_id)[-limit:]

    def log_from(self, job: JobRef, offset: int, limit: int = 1 << 20) -> bytes:
        """At most ``limit`` bytes of output after the first ``offset`` (for following a job)."""
        return self._output(job.job_id)[offset:offset + limit]

    def metric_records(self, job: JobRef, log_lines: list[str]) -> list[dict[str, float]]:
        """The job's metrics file on the workspaces volume, then ``key=value`` lines of ``log_lines``."""
        path = None
        if self.data_dir is not None:
            path = self.data_dir / "workspaces" / job.workspace / artifacts_sub_path(job.training_id, job.job_id) / "metrics.jsonl"
        return metrics.read(path, log_lines)

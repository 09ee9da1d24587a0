"""The simulated backend (``backend = "sim"``): for benchmarking and testing the live service only.

No process runs. A job "runs" for its declared duration, the ``SIM_SECONDS``
of its environment (a training's ``env``; 60 s without it), divided by the
``sim_speed`` setting, and then ends with exit code 0. Only the operator's
settings choose this backend (``FLIGHTBASE_BACKEND=sim`` for ``flightbase up``);
nothing in a request can.

**The run log.** Every start and every end is appended to
``<data_dir>/sim/runs.log`` and fsync'd *before* the coordinator hears of it
(the ``Started``/``Exited``/``Stopped`` event), one line per record::

    start <job id> <run> <at> <ends at>    a run began (run: 0, 1, ... per job)
    end <job id> <run> <at> <exit code>    it ran to its end
    stop <job id> <run> <at>               it was stopped on request (preemption, cancellation)

so a SIGKILL of the jobqueue can never hide a start, and a job started twice
shows two ``start`` lines. The records of one moment are written together
with one fsync (a group commit, on this backend's one thread).

**After a restart** the backend reads the log back and :meth:`reattach`
does what the local backend does with processes: a run with a ``start`` and
no end is still running (its end stays the one recorded; if that time passed
while the service was down, it ends at once); a run that ended is reported
again (the coordinator ignores repeats); a job the store has in STARTING
whose ``start`` never reached the disk is started now (nothing of it ran).

:func:`audit` reads a run log back and says, for every job, how many times it
ran to completion and whether a run was started while another was open
(``benchmarks/scale_bench.py``).
"""

from __future__ import annotations

import heapq
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from flightbase_jobqueue.backends.spec import JobRef, LaunchSpec
from flightbase_jobqueue.ports import BackendEvent, Exited, Started, Stopped, drain
from flightbase_jobqueue.scheduling.types import Job, Placement

log = logging.getLogger("flightbase.jobqueue.sim")

DURATION_ENV = "SIM_SECONDS"
DEFAULT_SECONDS = 60.0


def _or_error(resolve: Callable, job_id: str):
    """``resolve(job_id)``, or the error it raised (the form ``resolve_many`` answers in)."""
    try:
        return resolve(job_id)
    except Exception as exc:
        return exc


def log_path(data_dir: Path) -> Path:
    return Path(data_dir) / "sim" / "runs.log"


@dataclass
class JobRuns:
    """What the run log says of one job."""

    starts: int = 0                 # start records
    ends: int = 0                   # end records (ran to completion)
    stops: int = 0                  # stop records
    open_run: int | None = None     # the run started and not ended, if any
    ends_at: float = 0.0            # when the open run ends
    last: tuple = ()                # the last terminal record: ("end", code) or ("stop",)
    overlaps: int = 0               # starts while a run was open (a job run twice at once)
    orphan_ends: int = 0            # end/stop records of no open run
    runs: list = field(default_factory=list)  # (run, start, end or None)


def read_log(path: Path, only: str | None = None) -> dict[str, JobRuns]:
    """Every job of a run log (or the one job ``only``); a torn last line (a kill mid-write,
    never fsync'd) is ignored."""
    jobs: dict[str, JobRuns] = {}
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return jobs
    for line in data.decode(errors="replace").split("\n")[:-1]:  # the last piece: "" or torn
        if only is not None and only not in line:
            continue
        parts = line.split()
        if len(parts) < 4 or parts[0] not in ("start", "end", "stop"):
            continue
        kind, job_id = parts[0], parts[1]
        if only is not None and job_id != only:
            continue
        try:
            run, at = int(parts[2]), float(parts[3])
            extra = float(parts[4]) if len(parts) > 4 else None
        except ValueError:
            continue
        j = jobs.setdefault(job_id, JobRuns())
        if kind == "start":
            if j.open_run is not None:
                j.overlaps += 1
            j.starts += 1
            j.open_run, j.ends_at = run, extra or at
            j.runs.append([run, at, None])
            continue
        if j.open_run != run:
            j.orphan_ends += 1
            continue
        j.open_run = None
        if j.runs:
            j.runs[-1][2] = at
        if kind == "end":
            j.ends += 1
            j.last = ("end", int(extra or 0))
        else:
            j.stops += 1
            j.last = ("stop",)
    return jobs


def audit(path: Path, job_ids: Iterable[str]) -> dict:
    """For the jobs ``job_ids`` (the accepted workloads): how many ran to completion exactly once,
    how many never did (lost), how many more than once or with overlapping runs (run twice), and
    which runs are still open. A run interrupted by a kill of the jobqueue and carried on after its
    restart is one start and one end: it counts once."""
    jobs = read_log(path)
    wanted = list(job_ids)
    lost = [j for j in wanted if jobs.get(j, JobRuns()).ends == 0]
    twice = [j for j in wanted if jobs.get(j, JobRuns()).ends > 1 or jobs.get(j, JobRuns()).overlaps]
    still_open = [j for j in wanted if jobs.get(j, JobRuns()).open_run is not None]
    orphans = sum(r.orphan_ends for r in jobs.values())
    return {
        "workloads": len(wanted),
        "completed_once": sum(1 for j in wanted if jobs.get(j, JobRuns()).ends == 1 and not jobs[j].overlaps),
        "lost": len(lost),
        "run_twice": len(twice),
        "still_running": len(still_open),
        "stopped_runs": sum(jobs.get(j, JobRuns()).stops for j in wanted),
        "orphan_records": orphans,
        "unknown_jobs": len(set(jobs) - set(wanted)),
        "examples": {"lost": lost[:5], "run_twice": twice[:5]},
    }


class SimulatedBackend:
    """The :class:`~flightbase_jobqueue.ports.Backend` port, with no process: see the module docstring."""

    def __init__(self, data_dir: Path, resolve: Callable[[str], LaunchSpec], *, speed: float = 1.0,
                 gpu_kind: str = "cpu-slot", clock: Callable[[], float] = time.time,
                 resolve_many: Callable[[list[str]], dict] | None = None):
        if not speed > 0:
            raise ValueError(f"sim_speed: {speed!r} is not a positive number")
        self.path = log_path(data_dir)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.resolve = resolve
        # many jobs' specs in one read (JobRuntime.resolve_many); else one resolve() each
        self.resolve_many = resolve_many or (lambda ids: {i: _or_error(resolve, i) for i in ids})
        self.speed = speed
        self.gpu_kind = gpu_kind
        self.clock = clock
        self.on_event: Callable[[], None] = lambda: None
        self._events: queue.SimpleQueue[BackendEvent] = queue.SimpleQueue()
        self._cond = threading.Condition()
        self._pending: list[tuple] = []            # ("start", job id, seconds) / ("stop", job id)
        # What the log says, kept up to date: each job whose run is open, was stopped or ended
        # otherwise, in full; a job whose last run ended with exit code 0 (as every run here
        # ends) as the number of its runs alone, in _ended. Nothing of such a job is needed but
        # that number (a repeat of its end after a restart; its log is read from the file), and
        # its full record, kept for every job ever run, was most of what the service's memory
        # grew by over Kueue's 15,000 workloads (docs/benchmarks.md, "Scale of the live service").
        self._known = read_log(self.path)
        self._ended: dict[str, int] = {}
        for job_id in [k for k, j in self._known.items() if self._finished(j)]:
            self._ended[job_id] = self._known.pop(job_id).starts
        self._accepted: set[str] = set()           # jobs start() took (until their run ends)
        self._heap: list[tuple[float, str, int]] = []  # (ends at, job id, run) of armed runs
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._closed = False
        self._thread = threading.Thread(target=self._loop, daemon=True, name="sim-backend")
        self._thread.start()

    # -- the Backend port --------------------------------------------------------
    def start(self, job: Job, placement: Placement) -> None:
        with self._cond:
            known = self._known.get(job.id)
            if job.id in self._accepted or (known is not None and known.open_run is not None):
                return  # idempotent: it runs already
            self._accepted.add(job.id)
            self._pending.append(("start", job.id, None))  # its duration is read on the backend's thread
            self._cond.notify()

    def stop(self, job_id: str, grace_seconds: float, reason: str) -> None:
        with self._cond:
            self._pending.append(("stop", job_id))
            self._cond.notify()

    def poll_events(self) -> list[BackendEvent]:
        return drain(self._events)

    # -- after a restart ---------------------------------------------------------
    def reattach(self, job_id: str, stopping: bool = False) -> str | None:
        """As the local backend's: None while the job's run goes on (it ends at its recorded time),
        "exited" when it ended before the restart (its end is reported again)."""
        with self._cond:
            j = self._known.get(job_id)
            if j is not None and j.open_run is not None:
                self._accepted.add(job_id)
                if stopping:
                    self._pending.append(("stop", job_id))
                else:
                    heapq.heappush(self._heap, (j.ends_at, job_id, j.open_run))
                self._cond.notify()
                return None
            if j is None and job_id in self._ended:
                self._emit(Exited(job_id, self.clock(), 0))
                return "exited"
            if j is not None and j.last:
                now = self.clock()
                self._emit(Exited(job_id, now, j.last[1]) if j.last[0] == "end" else Stopped(job_id, now))
                return "exited"
            if stopping:  # asked to stop before its start was recorded: nothing ran
                self._emit(Stopped(job_id, self.clock()))
                return "exited"
            self._accepted.add(job_id)
            self._pending.append(("start", job_id, None))
            self._cond.notify()
        return None

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(5)
        os.close(self._fd)

    # -- what the API reads (no job writes anything) ---------------------------------
    def missing_tool(self, launcher: str) -> str | None:
        return None

    def launch_spec(self, spec: LaunchSpec) -> LaunchSpec:
        return spec

    def rank_prefix(self, launcher: str) -> str | None:
        return None

    def log_tail(self, job: JobRef, limit: int) -> bytes:
        return self._log_text(job.job_id)[-limit:]

    def log_from(self, job: JobRef, offset: int, limit: int = 1 << 20) -> bytes:
        return self._log_text(job.job_id)[offset:offset + limit]

    def metric_records(self, job: JobRef, log_lines: list[str]) -> list[dict[str, float]]:
        return []

    def nccl_logs(self, job: JobRef) -> dict[str, str]:
        return {}

    # -- internals ---------------------------------------------------------------
    def _log_text(self, job_id: str) -> bytes:
        with self._cond:
            j = self._known.get(job_id)
            runs = [list(r) for r in j.runs] if j else []
            ended = j is None and job_id in self._ended
        if ended:  # a job that ran to its end: its runs are read back from the log
            j = read_log(self.path, only=job_id).get(job_id)
            runs = j.runs if j else []
        return "".join(f"flightbase sim: run {r} started at {s:.3f}" + (f", ended at {e:.3f}\n" if e else "\n")
                       for r, s, e in runs).encode()

    def _seconds(self, job_ids: list[str]) -> dict[str, float]:
        """Each job's run time from its spec (``SIM_SECONDS``), read for all of them at once."""
        try:
            specs = self.resolve_many(job_ids)
        except Exception:  # the database could not be read: the default, as for a job with no value
            log.exception("could not read the specs of %d starting job(s)", len(job_ids))
            specs = {}
        out = {}
        for job_id in job_ids:
            spec = specs.get(job_id)  # the job's spec, or the error that kept it from being read
            try:
                raw = None if spec is None or isinstance(spec, Exception) else spec.env.get(DURATION_ENV)
                seconds = float(raw) if raw is not None else DEFAULT_SECONDS
            except ValueError:  # a value that is not a number
                seconds = DEFAULT_SECONDS
            out[job_id] = max(0.0, seconds) / self.speed
        return out

    def _emit(self, event: BackendEvent) -> None:
        self._events.put(event)
        self.on_event()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._closed:
                        return
                    now = self.clock()
                    if self._pending or (self._heap and self._heap[0][0] <= now):
                        break
                    self._cond.wait(None if not self._heap else max(0.001, self._heap[0][0] - now))
                batch, self._pending = self._pending, []
            # the starts' durations (a read of the job's spec) here, off the event loop and the lock
            unknown = [item[1] for item in batch if item[0] == "start" and item[2] is None]
            seconds = self._seconds(unknown) if unknown else {}
            batch = [("start", item[1], seconds[item[1]]) if item[0] == "start" and item[2] is None else item
                     for item in batch]
            with self._cond:
                lines: list[str] = []
                events: list[BackendEvent] = []
                now = self.clock()
                for item in batch:
                    job_id = item[1]
                    j = self._known.get(job_id)
                    if j is None:
                        if item[0] != "start":
                            continue  # a stop of a job with no run going on
                        # a start of a job with no record, or of one that ran to its end (its runs
                        # go on being numbered)
                        runs = self._ended.pop(job_id, 0)
                        j = self._known[job_id] = JobRuns(starts=runs)
                    if item[0] == "start":
                        if j.open_run is not None:
                            continue
                        run, ends = j.starts, now + item[2]
                        j.starts += 1
                        j.open_run, j.ends_at = run, ends
                        j.runs.append([run, now, None])
                        heapq.heappush(self._heap, (ends, job_id, run))
                        lines.append(f"start {job_id} {run} {now:.6f} {ends:.6f}\n")
                        events.append(Started(job_id, now))
                    elif j.open_run is not None:  # a stop of a run going on
                        lines.append(f"stop {job_id} {j.open_run} {now:.6f}\n")
                        self._close_run(j, now, ("stop",))
                        self._accepted.discard(job_id)
                        events.append(Stopped(job_id, now))
                while self._heap and self._heap[0][0] <= now:
                    ends, job_id, run = heapq.heappop(self._heap)
                    j = self._known.get(job_id)
                    if j is None or j.open_run != run:
                        continue  # stopped meanwhile
                    lines.append(f"end {job_id} {run} {now:.6f} 0\n")
                    self._close_run(j, now, ("end", 0))
                    self._accepted.discard(job_id)
                    del self._known[job_id]
                    self._ended[job_id] = j.starts
                    events.append(Exited(job_id, now, 0))
            if lines:
                self._write("".join(lines))
            for event in events:  # only once the records are on disk
                self._events.put(event)
            if events:
                self.on_event()

    @staticmethod
    def _finished(j: JobRuns) -> bool:
        """Whether ``j`` is of a job whose last run ran to its end with exit code 0."""
        return j.open_run is None and j.last == ("end", 0)

    @staticmethod
    def _close_run(j: JobRuns, at: float, last: tuple) -> None:
        j.open_run = None
        j.last = last
        if last[0] == "end":
            j.ends += 1
        else:
            j.stops += 1
        if j.runs:
            j.runs[-1][2] = at

    def _write(self, text: str) -> None:
        data = text.encode()
        while data:
            n = os.write(self._fd, data)
            data = data[n:]
        os.fsync(self._fd)


class SimNodes:
    """The inventory of a simulated machine: its ``gpus`` setting (``flightbase up --gpus N``), as one node."""

    def __init__(self, gpus):
        from flightbase_jobqueue.backends.local import LocalNodes

        self._inner = LocalNodes(gpus, labels={})

    def nodes(self):
        return self._inner.nodes()

"""Trace replay: the real core and coordinator against a simulated cluster.

:func:`replay` wires the composition the service uses (a store, a backend,
a policy from :func:`make_policy`, the :class:`Coordinator`) with the
in-memory store, the simulated backend and a virtual clock, then jumps the
clock from event to event (next arrival, next job end or stop, or the
policy's ``wake_at``).  The scheduler sees requests, never durations, unless
the policy is an explicitly named oracle (``sjf-oracle``, ``las-oracle``: the
true duration is declared as each job's ``max_runtime``; ``las-oracle`` is the
``las`` policy, its rules unchanged, ranking jobs by their true remaining work
instead of their attained service, see :func:`remaining_level`).

Interactive sessions (``notebooks_per_hour`` > 0): Jupyter trainings' GPU
leases arrive at random (Poisson, seeded, so a replay is reproducible) over
the trace's span, in a workspace of the trace drawn at random.  Each lease
is what the service submits (one GPU, non-preemptible, no declared end); its
person works for an exponentially distributed time (mean
``notebook_minutes``), then leaves it idle until the culler stops it
``idle_timeout_minutes`` later.  The scheduler never sees that length.  The
report then gives notebook waits and training waits side by side
(``waits``); the headline figures stay those of the trace's jobs.

Start estimates (``estimates`` in the report): after every step the
:class:`EstimateRecorder` notes, for each trace job still waiting for its
first start, the estimated start and range the queue would show
(:func:`~..scheduling.insight.estimate_starts`, the service's own
projection, with the replay's policy) when the job first appears in the queue and each time
its queue position changes.  Once the replay is over each recorded estimate
is compared with the job's actual first start (:func:`estimate_errors`).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from functools import partial
import random
import statistics
import time
from dataclasses import dataclass, replace
from typing import Callable, Iterable, Sequence

from ..coordinator import Coordinator
from ..scheduling.bursts import Bursts
from ..scheduling.core import PassState
from ..scheduling.insight import estimate_starts, project
from ..scheduling.placement import check_admissible
from ..scheduling.policies import POLICIES, LasPolicy, Policy, UnknownPolicy, make_policy
from ..scheduling.types import Job, Node, WorkspaceLimits
from ..states import JobState
from .backend import SimBackend, VirtualClock
from .memstore import MemStore
from .reference import srtf_reference
from .trace import Trace, TraceJob, read_trace, window

ORACLES = {"sjf-oracle": "sjf", "las-oracle": "las"}
QUOTA_MODES = ("none", "proportional", "equal")
RACK_KEY = "topology.flightbase.io/rack"


def policy_names() -> list[str]:
    return sorted([*POLICIES, *ORACLES])


def remaining_level(job: Job, attained: float, thresholds: Sequence[float] = LasPolicy.thresholds) -> int:
    """``las-oracle``'s level of a job from its true remaining work (its declared
    ``max_runtime``, which an oracle replay sets to the true duration): 0 up to one
    GPU-hour left, then one level per doubling (1 up to 2 GPU-hours, 2 up to 4, ...).
    ``las`` preempts only for a job of a strictly lower level, so a job is stopped only
    for one with less than half its remaining work.  A job with no declared end (a
    notebook lease: nobody knows its length) is ranked by attained service as in ``las``,
    by the policy's ``thresholds``."""
    if job.max_runtime is None:
        return bisect_right(thresholds, attained)
    left = job.max_runtime * job.gpus - attained
    return 0 if left <= 3600.0 else 1 + int(math.log2(left / 3600.0))


def make_replay_policy(policy: str, options: dict | None = None) -> Policy:
    """The policy a replay of ``policy`` runs, with ``options``: an oracle's (``ORACLES``)
    is its policy, ``las-oracle``'s with its levels (:func:`remaining_level`)."""
    pol = make_policy(ORACLES.get(policy, policy), **(options or {}))
    if policy == "las-oracle":
        pol = replace(pol, level_fn=partial(remaining_level, thresholds=pol.thresholds))
    return pol


def trace_bursts(tjobs: Iterable[TraceJob]) -> dict[str, str]:
    """Each trace job's burst (id -> name), as the service names it at submission (bursts.py):
    in submission order, whatever the trace's order."""
    bursts = Bursts()
    return {j.id: bursts.name(j.group, j.gpus, "training", j.submit_time)
            for j in sorted(tjobs, key=lambda j: j.submit_time)}


def replay_jobs(tjobs: Sequence[TraceJob], policy: str) -> list[Job]:
    """The trace's jobs as a replay of ``policy`` submits them: an oracle's declare their
    true durations as ``max_runtime``; the others declare none."""
    oracle = policy in ORACLES
    burst = trace_bursts(tjobs)
    return [Job(id=j.id, workspace=j.group, gpus=j.gpus, submitted_at=j.submit_time,
                max_runtime=j.duration if oracle else None, burst=burst[j.id]) for j in tjobs]


@dataclass
class StaticInventory:
    node_list: Sequence[Node]

    def nodes(self) -> Sequence[Node]:
        return self.node_list


def make_nodes(count: int, gpus_per_node: int, per_rack: int = 8) -> list[Node]:
    return [Node(f"node-{i:04d}", gpus_per_node, tuple(range(gpus_per_node)),
                 {RACK_KEY: f"rack-{i // per_rack:03d}"}) for i in range(count)]


def make_quotas(jobs: Sequence[TraceJob], total_gpus: int, mode: str,
                borrowing: bool = True) -> dict[str, WorkspaceLimits]:
    """Per-workspace limits: ``proportional`` to each group's demand (GPU
    seconds), ``equal`` shares, or ``none``.  Largest-remainder rounding,
    so quotas add up to the cluster."""
    if mode not in QUOTA_MODES:
        raise ValueError(f"unknown quota mode {mode!r}; known: {', '.join(QUOTA_MODES)}")
    groups = sorted({j.group for j in jobs})
    if mode == "none":
        return {}
    if mode == "equal":
        demand = {g: 1.0 for g in groups}
    else:
        demand = {g: 0.0 for g in groups}
        for j in jobs:
            demand[j.group] += j.gpus * max(j.duration, 1.0)
    total = sum(demand.values())
    exact = {g: total_gpus * d / total for g, d in demand.items()}
    quota = {g: int(math.floor(v)) for g, v in exact.items()}
    left = total_gpus - sum(quota.values())
    for g in sorted(groups, key=lambda g: (-(exact[g] - quota[g]), g))[:left]:
        quota[g] += 1
    return {g: WorkspaceLimits(quota=quota[g], weight=max(demand[g] / total, 1e-6),
                               allow_borrowing=borrowing) for g in groups}


def notebook_sessions(tjobs: Sequence[TraceJob], per_hour: float, mean_minutes: float,
                      idle_timeout_minutes: float, seed: int = 0) -> tuple[list[Job], dict[str, float]]:
    """Lease arrivals over the span of ``tjobs`` (see the module docstring):
    the core's jobs and their true lengths (use, then the idle timeout)."""
    if per_hour < 0 or mean_minutes <= 0 or idle_timeout_minutes < 0:
        raise ValueError("--notebooks-per-hour must be >= 0, --notebook-minutes > 0 and "
                         "--idle-timeout-minutes >= 0")
    if per_hour == 0 or not tjobs:
        return [], {}
    rng = random.Random(seed)
    groups = sorted({j.group for j in tjobs})
    t, end = tjobs[0].submit_time, tjobs[-1].submit_time
    jobs: list[Job] = []
    lengths: dict[str, float] = {}
    while True:
        t += rng.expovariate(per_hour / 3600.0)
        if t > end:
            break
        jid = f"notebook-{len(jobs):06d}"
        jobs.append(Job(id=jid, workspace=rng.choice(groups), gpus=1, submitted_at=round(t, 3),
                        preemptible=False, kind="lease"))
        lengths[jid] = round(rng.expovariate(1.0 / (60.0 * mean_minutes)) + 60.0 * idle_timeout_minutes, 3)
    return jobs, lengths


def _waits(delays: list[float]) -> dict:
    d = sorted(delays)
    return {"count": len(d), "mean": statistics.fmean(d) if d else 0.0, "p50": _pct(d, 50),
            "p95": _pct(d, 95), "p99": _pct(d, 99), "max": d[-1] if d else 0.0}


def _pct(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return 0.0
    k = max(0, math.ceil(p / 100.0 * len(sorted_values)) - 1)
    return sorted_values[k]


#: Jobs that wait longer than this are the ones a start estimate is for.
LONG_WAIT = 300.0
#: An estimate is "within" when its error is at most this share of the wait.
WITHIN = 0.25


class EstimateRecorder:
    """Records the estimates the queue shows (see the module docstring):
    ``samples`` holds (job id, time shown, position, estimated start or
    None, earliest, latest).  ``jobs``: the ids to follow (the trace's)."""

    def __init__(self, policy, jobs: set[str], ranges: bool = True, baseline: bool = False):
        self.policy = None if baseline else policy
        self.jobs = jobs
        self.ranges = ranges and not baseline  # the previous estimator had no range
        self.baseline = baseline
        self.samples: list[tuple[str, float, int, float | None, float | None, float | None]] = []
        self._pos: dict[str, int] = {}

    def __call__(self, sim: "Simulation", now: float) -> None:
        queue = sim.store.queued_jobs()
        if not len(queue):
            return
        started = sim.backend.first_start
        follow = self.jobs
        last = self._pos
        changed: dict[str, int] = {}
        for pos, job in enumerate(queue, start=1):
            jid = job.id
            if jid in started or jid not in follow:
                continue
            if last.get(jid) != pos:
                last[jid] = pos
                changed[jid] = pos
        if not changed:
            return
        snap = sim.coordinator.snapshot(now)
        if self.baseline:
            snap = replace(snap, estimates=_TotalOnly(snap.estimates))
        free = PassState(snap).free
        if self.ranges:
            got = estimate_starts(snap, free, self.policy, only=changed)
        else:
            got = {jid: (t, label, t, t) for jid, (t, label)
                   in project(snap, free, 0.5, self.policy, only=changed).items()}
        for jid, pos in changed.items():
            m = got.get(jid)
            if m is None:
                self.samples.append((jid, now, pos, None, None, None))
            else:
                self.samples.append((jid, now, pos, m[0], m[2], m[3]))


class _TotalOnly:
    """The previous estimator, for comparison (``--baseline`` of
    benchmarks/estimate_bench.py): the unconditional running median of a
    job's runtime, a job past it expected to run as long again, and the
    FIFO projection (``EstimateRecorder(baseline=True)``)."""

    def __init__(self, est):
        self.estimate = est.estimate


def _rel(err: float, wait: float) -> float:
    return err / wait if wait > 0 else (0.0 if err < 1e-6 else math.inf)


def _median_within(rel: Iterable[float]) -> tuple[float, float]:
    """(median, share at most ``WITHIN``) of relative errors (at least one)."""
    r = sorted(rel)
    return _pct(r, 50), sum(1 for x in r if x <= WITHIN) / len(r)


def _error_stats(rows: list[tuple[float, float, float, float, float, float]]) -> dict:
    """rows: (estimate, actual start, time shown, earliest, latest, submitted)."""
    if not rows:
        return {"count": 0, "median_abs_error": None, "p90_abs_error": None,
                "median_rel_error": None, "within_25pct": None,
                "median_rel_to_wait": None, "within_25pct_of_wait": None, "in_range": None}
    abs_err = sorted(abs(e - a) for e, a, _, _, _, _ in rows)
    rel, within = _median_within(_rel(abs(e - a), a - t) for e, a, t, _, _, _ in rows)
    whole, within_whole = _median_within(_rel(abs(e - a), a - sub) for e, a, _, _, _, sub in rows)
    hit = sum(1 for _, a, _, lo, hi, _ in rows if lo - 1e-6 <= a <= hi + 1e-6)
    return {"count": len(rows), "median_abs_error": _pct(abs_err, 50), "p90_abs_error": _pct(abs_err, 90),
            "median_rel_error": rel, "within_25pct": within,
            "median_rel_to_wait": whole, "within_25pct_of_wait": within_whole,
            "in_range": hit / len(rows)}


def estimate_errors(samples, first_start: dict[str, float], submitted: dict[str, float]) -> dict:
    """Start-estimate accuracy from recorded ``samples`` (see
    :class:`EstimateRecorder`) against the actual first starts.  Errors are
    absolute seconds between the estimated and the actual start; the
    relative error divides by the wait still ahead when the estimate was
    shown; ``within_25pct``: share of estimates whose error is at most 25% of
    that wait; ``median_rel_to_wait`` and ``within_25pct_of_wait``: the same
    against the job's whole wait (submission to first start), the issue's
    "25% of the actual wait"; ``in_range``: share whose actual start fell in
    the range.
    Groups: every estimate shown (``all``) and those of jobs that waited
    more than 5 min in all (``waited_over_5min``).  Jobs that never started
    are left out; ``no_estimate`` counts estimates the queue could not
    give."""
    rows_all, rows_long = [], []
    none = 0
    jobs: set[str] = set()
    for jid, t, _pos, est, lo, hi in samples:
        actual = first_start.get(jid)
        if actual is None:
            continue
        if est is None:
            none += 1
            continue
        jobs.add(jid)
        row = (est, actual, t, lo, hi, submitted[jid])
        rows_all.append(row)
        if actual - submitted[jid] > LONG_WAIT:
            rows_long.append(row)
    return {"shown": len(rows_all) + none, "jobs": len(jobs), "no_estimate": none,
            "all": _error_stats(rows_all), "waited_over_5min": _error_stats(rows_long)}


class SimulationStuck(RuntimeError):
    """The clock stopped advancing: decisions keep undoing each other at one
    instant (a preemption ping-pong).  A scheduler bug, reported instead of
    spinning forever."""


#: Steps allowed at one instant before :class:`SimulationStuck`.  A real
#: instant needs a handful (arrivals, stops, restarts); thousands mean a loop.
STUCK_STEPS = 10_000


@dataclass
class Simulation:
    store: MemStore
    backend: SimBackend
    coordinator: Coordinator
    rejected: list[tuple[str, str]]
    steps: int


def simulate(jobs: Sequence[Job], durations: dict[str, float], node_list: Sequence[Node], policy,
             limits: dict[str, WorkspaceLimits], *, restart_cost: float = 0.0,
             grace_seconds: float = 0.0, observe: Callable[[Simulation, float], None] | None = None,
             max_steps: int | None = None) -> Simulation:
    """Run ``jobs`` (sorted by submission) to completion on a simulated
    cluster through the real coordinator.  The clock jumps to the next
    arrival, the next backend event, or the policy's ``wake_at``.
    ``observe(sim, now)`` is called after every step (progress reports,
    invariant checks)."""
    store = MemStore(limits)
    clock = VirtualClock(jobs[0].submitted_at if jobs else 0.0)
    backend = SimBackend(durations, clock, restart_cost)
    coord = Coordinator(store, backend, policy, StaticInventory(node_list), grace_seconds=grace_seconds)
    sim = Simulation(store, backend, coord, [], 0)
    i, n = 0, len(jobs)
    wake: float | None = None
    last_t, same_t = None, 0
    admissible: dict = {}
    while max_steps is None or sim.steps < max_steps:
        now = clock.now
        t = backend.next_event_time()
        if i < n and (t is None or jobs[i].submitted_at < t):
            t = jobs[i].submitted_at
        if wake is not None and wake > now and (t is None or wake < t):
            t = wake
        if t is None:
            break
        clock.now = now = max(now, t)
        if now == last_t:
            same_t += 1
            if same_t >= STUCK_STEPS:
                raise SimulationStuck(
                    f"the replay made {same_t} steps at t={now:g} without the clock advancing "
                    f"({len(store.preemptions)} preemptions so far): decisions undo each other")
        else:
            last_t, same_t = now, 0
        while i < n and jobs[i].submitted_at <= now:
            job = jobs[i]
            i += 1
            # The verdict depends only on these (and the fixed cluster and limits).
            key = (job.workspace, job.gpus, job.gpus_per_node, job.preemptible)
            why = admissible.get(key, admissible)
            if why is admissible:
                why = admissible[key] = check_admissible(job, node_list, limits.get(job.workspace))
            if why is not None:
                sim.rejected.append((job.id, why))
                continue
            store.submit(job)
        wake = coord.step(now).wake_at
        sim.steps += 1
        if observe is not None:
            observe(sim, now)
    coord.step(clock.now)  # drain the last events
    return sim


def exactness_replay(policy: str, seed: int, quotas: str) -> tuple[int, list[tuple[str, float, float | None, float]], int]:
    """The all-at-once replay with declared runtimes (``benchmarks/exact_estimates_bench.py``,
    ``tests/scheduling``): 60 jobs of 1, 2, 4 or 8 GPUs (1 twice as likely) in three
    workspaces, all submitted at 0, each declaring its true runtime (100-5,000 s), on 2 x 8
    GPUs under ``policy`` and ``quotas`` (``make_quotas``' modes), through the real
    coordinator. With every runtime known and no job arriving later, every estimate shown is
    the job's actual first start when the queue's projection makes the passes that follow.
    Returns (estimates shown, those that are not: ``(job, shown at, estimate, actual)``,
    preemptions)."""
    rng = random.Random(seed)
    tjobs = [TraceJob(f"j{i}", 0.0, rng.choice([1, 1, 2, 4, 8]), float(rng.randint(100, 5000)), rng.choice("abc"))
             for i in range(60)]
    durations = {j.id: j.duration for j in tjobs}
    jobs = [Job(id=j.id, workspace=j.group, gpus=j.gpus, submitted_at=j.submit_time, max_runtime=j.duration)
            for j in tjobs]
    pol = make_replay_policy(policy, None)
    rec = EstimateRecorder(pol, set(durations))
    sim = simulate(jobs, durations, make_nodes(2, 8), pol, make_quotas(tjobs, 16, quotas, True), observe=rec)
    first = sim.backend.first_start
    shown = [(jid, at, est) for jid, at, _pos, est, _lo, _hi in rec.samples if jid in first]
    wrong = [(jid, at, est, first[jid]) for jid, at, est in shown if est is None or abs(est - first[jid]) > 1e-6]
    return len(shown), wrong, len(sim.store.preemptions)


def replay(trace_path: str, nodes: int, gpus_per_node: int, policy: str, quotas: str = "none",
           restart_cost: float = 0.0, *, borrowing: bool = True, limit_jobs: int | None = None,
           grace_seconds: float = 0.0, policy_options: dict | None = None,
           trace: Trace | None = None, notebooks_per_hour: float = 0.0,
           notebook_minutes: float = 60.0, idle_timeout_minutes: float = 60.0,
           seed: int = 0, record_estimates: bool = False, baseline_estimates: bool = False,
           start_day: float | None = None, days: float = 14.0, with_reference: bool = False) -> dict:
    """Replay a trace CSV; returns the figures (see :func:`format_report`).

    ``start_day``: replay only the jobs submitted in ``days`` days from that day of the trace
    (:func:`.trace.window`), then the first ``limit_jobs`` of them.  ``with_reference``: also
    replay the preemptive SRTF reference (``reference.py``: every duration known, the cluster's
    GPUs pooled, free restarts) on the same jobs, and report the ratio to it."""
    wall0, cpu0 = time.perf_counter(), time.process_time()
    if nodes < 1 or gpus_per_node < 1:
        raise ValueError("--nodes and --gpus-per-node must be at least 1")
    if restart_cost < 0:
        raise ValueError("--restart-cost must be >= 0")
    if start_day is not None and not (math.isfinite(start_day) and start_day >= 0):
        raise ValueError("--start-day must be a number of days >= 0")
    if not (math.isfinite(days) and days > 0):
        raise ValueError("--days must be a number of days > 0")
    pol = make_replay_policy(policy, policy_options)
    if trace is None:
        if start_day is None:
            trace = read_trace(trace_path, limit_jobs)
        else:
            trace = window(read_trace(trace_path), start_day, days)
            if not trace.jobs:
                raise ValueError(f"--start-day {start_day:g} --days {days:g}: no job of {trace_path} "
                                 f"was submitted in that window")
            if limit_jobs is not None:
                trace = Trace(trace.jobs[:limit_jobs], trace.rounded_up)
    tjobs = trace.jobs
    node_list = make_nodes(nodes, gpus_per_node)
    total_gpus = nodes * gpus_per_node
    limits = make_quotas(tjobs, total_gpus, quotas, borrowing)
    jobs = replay_jobs(tjobs, policy)
    durations = {j.id: j.duration for j in tjobs}
    notebooks, lengths = notebook_sessions(tjobs, notebooks_per_hour, notebook_minutes,
                                           idle_timeout_minutes, seed)
    if notebooks:
        # An oracle still knows nothing of a session's length: nobody does.
        jobs = sorted([*jobs, *notebooks], key=lambda j: (j.submitted_at, j.id))
        durations.update(lengths)
    recorder = (EstimateRecorder(pol, {j.id for j in tjobs}, baseline=baseline_estimates)
                if record_estimates else None)
    sim = simulate(jobs, durations, node_list, pol, limits, restart_cost=restart_cost,
                   grace_seconds=grace_seconds, observe=recorder)
    store, backend, rejected, steps = sim.store, sim.backend, sim.rejected, sim.steps
    by_id = {j.id: j for j in tjobs}
    done = {jid: t for jid, t in backend.finished.items() if jid in by_id}
    jct = sorted(done[jid] - by_id[jid].submit_time for jid in done)
    delays = sorted(backend.first_start[jid] - by_id[jid].submit_time for jid in backend.first_start
                    if jid in by_id)
    nb_submit = {j.id: j.submitted_at for j in notebooks}
    waits = {
        "notebooks": _waits([backend.first_start[j] - t for j, t in nb_submit.items()
                             if j in backend.first_start]),
        "gang_jobs": _waits([backend.first_start[j.id] - j.submit_time for j in tjobs
                             if j.gpus > 1 and j.id in backend.first_start]),
        "one_gpu_jobs": _waits([backend.first_start[j.id] - j.submit_time for j in tjobs
                                if j.gpus == 1 and j.id in backend.first_start]),
    }
    first_submit = tjobs[0].submit_time
    end = max(done.values(), default=first_submit)
    makespan = end - first_submit
    per_ws: dict[str, dict] = {}
    busy_total = sum(backend.busy_by_job.values()) or 1.0
    for jid, t in done.items():
        ws = by_id[jid].group
        d = per_ws.setdefault(ws, {"jobs": 0, "jct_sum": 0.0, "gpu_seconds": 0.0})
        d["jobs"] += 1
        d["jct_sum"] += t - by_id[jid].submit_time
    for jid, busy in backend.busy_by_job.items():
        if jid not in by_id:
            continue  # a notebook session
        ws = by_id[jid].group
        per_ws.setdefault(ws, {"jobs": 0, "jct_sum": 0.0, "gpu_seconds": 0.0})["gpu_seconds"] += busy
    workspaces = {
        ws: {"jobs": d["jobs"], "avg_jct": d["jct_sum"] / d["jobs"] if d["jobs"] else None,
             "gpu_share": d["gpu_seconds"] / busy_total,
             "quota": limits[ws].quota if ws in limits else None}
        for ws, d in sorted(per_ws.items())}
    unfinished = sum(1 for jid, s in store.states.items() if jid in by_id and not s.is_terminal())
    avg_jct = statistics.fmean(jct) if jct else 0.0
    ref = srtf_reference(tjobs, total_gpus) if with_reference else None
    return {
        "trace": trace_path, "policy": policy, "nodes": nodes, "gpus_per_node": gpus_per_node,
        "quotas": quotas, "borrowing": borrowing, "restart_cost": restart_cost,
        "jobs": len(tjobs), "completed": len(done), "rejected": len(rejected),
        "rejected_examples": rejected[:3], "unfinished": unfinished,
        "fractional_gpus_rounded_up": trace.rounded_up,
        "window": None if start_day is None else {"start_day": start_day, "days": days},
        "avg_jct": avg_jct,
        "median_jct": statistics.median(jct) if jct else 0.0,
        "queue_delay_p50": _pct(delays, 50), "queue_delay_p95": _pct(delays, 95),
        "queue_delay_p99": _pct(delays, 99), "queue_delay_max": delays[-1] if delays else 0.0,
        "makespan": makespan,
        "gpu_utilisation": backend.busy_gpu_seconds / (total_gpus * makespan) if makespan > 0 else 0.0,
        "preemptions": len(store.preemptions),
        "preemptions_per_job": len(store.preemptions) / len(tjobs) if tjobs else 0.0,
        "reference": None if ref is None else {
            "avg_jct": ref["avg_jct"], "completed": ref["completed"], "preemptions": ref["preemptions"]},
        "vs_reference": avg_jct / ref["avg_jct"] if ref and ref["avg_jct"] else None,
        "steps": steps, "workspaces": workspaces,
        "notebooks": {"per_hour": notebooks_per_hour, "mean_minutes": notebook_minutes,
                      "idle_timeout_minutes": idle_timeout_minutes, "seed": seed,
                      "submitted": len(notebooks),
                      "unfinished": sum(1 for j in nb_submit if not store.states[j].is_terminal())
                      if notebooks else 0},
        "waits": waits,
        "estimates": estimate_errors(recorder.samples, backend.first_start,
                                     {j.id: j.submit_time for j in tjobs}) if recorder else None,
        "wall_s": time.perf_counter() - wall0, "cpu_s": time.process_time() - cpu0,
    }


def format_report(r: dict) -> str:
    lines = [
        f"trace        {r['trace']}",
        f"cluster      {r['nodes']} nodes x {r['gpus_per_node']} GPUs; policy {r['policy']}; "
        f"quotas {r['quotas']}{'' if r['borrowing'] else ' (no borrowing)'}; "
        f"restart cost {r['restart_cost']:g} s",
        f"jobs         {r['jobs']} ({r['completed']} completed, {r['rejected']} rejected at submission, "
        f"{r['unfinished']} unfinished)",
    ]
    win = r.get("window")
    if win:
        lines.insert(1, f"window       jobs submitted in days {win['start_day']:g} to "
                        f"{win['start_day'] + win['days']:g} of the trace")
    if r["fractional_gpus_rounded_up"]:
        lines.append(f"note         {r['fractional_gpus_rounded_up']} fractional GPU requests "
                     f"rounded up to whole GPUs")
    for jid, why in r["rejected_examples"]:
        lines.append(f"rejected     {jid}: {why}")
    lines += [
        f"JCT          average {r['avg_jct']:,.0f} s, median {r['median_jct']:,.0f} s",
        f"queue delay  p50 {r['queue_delay_p50']:,.0f} s, p95 {r['queue_delay_p95']:,.0f} s, "
        f"p99 {r['queue_delay_p99']:,.0f} s, max {r['queue_delay_max']:,.0f} s",
        f"makespan     {r['makespan']:,.0f} s",
        f"GPU use      {100 * r['gpu_utilisation']:.1f}%",
        f"preemptions  {r['preemptions']} ({r['preemptions_per_job']:.3f} per job)",
    ]
    ref = r.get("reference")
    if ref:
        ratio = f"{r['vs_reference']:.3f}x" if r["vs_reference"] is not None else "-"
        lines.append(f"reference    preemptive SRTF on {r['nodes'] * r['gpus_per_node']} pooled GPUs, durations "
                     f"known, free restarts: average JCT {ref['avg_jct']:,.0f} s; this replay {ratio}")
    nb = r.get("notebooks") or {}
    if nb.get("submitted"):
        lines.append(f"notebooks    {nb['submitted']} sessions ({nb['per_hour']:g}/h, mean use "
                     f"{nb['mean_minutes']:g} min, culled after {nb['idle_timeout_minutes']:g} min idle)")
    lines.append("waits (s)          jobs      mean       p50       p95       p99       max")
    for label, key in (("notebooks", "notebooks"), ("gang trainings", "gang_jobs"),
                       ("1-GPU trainings", "one_gpu_jobs")):
        w = r["waits"][key]
        if w["count"]:
            lines.append(f"  {label:<15} {w['count']:>7} {w['mean']:>9,.0f} {w['p50']:>9,.0f} "
                         f"{w['p95']:>9,.0f} {w['p99']:>9,.0f} {w['max']:>9,.0f}")
    est = r.get("estimates")
    if est:
        lines.append(f"start estimates  {est['shown']} shown to {est['jobs']} waiting jobs "
                     f"({est['no_estimate']} without an estimate)")
        lines.append("  error (s)                count    median       p90   median rel  within 25%"
                     "  rel to wait  within 25%  in range")
        for label, key in (("every estimate", "all"), ("jobs waiting > 5 min", "waited_over_5min")):
            e = est[key]
            if e["count"]:
                lines.append(f"  {label:<20} {e['count']:>9} {e['median_abs_error']:>9,.0f} "
                             f"{e['p90_abs_error']:>9,.0f} {100 * e['median_rel_error']:>11.0f}% "
                             f"{100 * e['within_25pct']:>10.0f}% {100 * e['median_rel_to_wait']:>11.0f}% "
                             f"{100 * e['within_25pct_of_wait']:>10.0f}% {100 * e['in_range']:>8.0f}%")
    lines.append("workspace     jobs   avg JCT (s)   GPU share   quota")
    for ws, d in r["workspaces"].items():
        avg = "-" if d["avg_jct"] is None else f"{d['avg_jct']:,.0f}"
        q = "-" if d["quota"] is None else str(d["quota"])
        lines.append(f"  {ws:<10} {d['jobs']:>6} {avg:>13} {100 * d['gpu_share']:>10.1f}% {q:>7}")
    lines.append(f"replay took  {r['wall_s']:.2f} s wall, {r['cpu_s']:.2f} s CPU ({r['steps']} steps)")
    return "\n".join(lines)


__all__ = ["replay", "SimulationStuck", "format_report", "policy_names", "make_nodes", "make_quotas", "UnknownPolicy",
           "JobState"]

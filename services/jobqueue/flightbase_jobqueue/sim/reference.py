"""A lower reference for average JCT: preemptive shortest-remaining-time first.

Not a policy and never used by the service: the benchmark
(``benchmarks/replay_bench.py``) compares the real scheduler with it.  It is
what no real scheduler can do:

- it knows every job's duration;
- it pools all GPUs, with no node boundaries (a 16-GPU job needs any 16);
- it preempts and resumes for free (no checkpoint, no restart cost).

At every arrival and completion, the jobs present are ranked by remaining
work in GPU-seconds (remaining time x GPUs, the measure Tiresias's 2D-LAS
uses for attained service), shortest first, and GPUs are given in that order
to every job that fits in what is left (a job that does not fit does not
stop smaller ones after it).  Ranked by remaining time alone (not GPU
seconds), the October Philly slice on 512 GPUs gives 9,687 s instead of
9,391 s: GPU-seconds is the better (lower) reference.
"""

from __future__ import annotations

import math
import statistics
from typing import Sequence

from .trace import TraceJob


def _place(free: list[int], gpus: int, per_node: int) -> bool:
    """Take ``gpus`` GPUs from the nodes' free counts ``free``: up to one node's worth on one
    node (best fit: the fewest free GPUs that hold it), more on whole nodes. False if they
    do not fit (nothing taken)."""
    if gpus > per_node:
        whole = [i for i, f in enumerate(free) if f == per_node][:-(-gpus // per_node)]
        if len(whole) * per_node < gpus:
            return False
        for i in whole:
            free[i] = 0
        return True
    best = None
    for i, f in enumerate(free):
        if f >= gpus and (best is None or f < free[best]):
            best = i
            if f == gpus:
                break
    if best is None:
        return False
    free[best] -= gpus
    return True


class SrtfOrder:
    """The reference's order: remaining work in GPU-seconds, shortest first. An order for
    :func:`pooled_replay` gives each present job's sort ``key`` (from its remaining time,
    attained GPU-seconds, GPUs and submission), the next time it may change besides arrivals
    and ends (``wake``), and hears of each end (``ended``: an order that learns)."""

    def key(self, j: str, rem: dict, att: dict, gpus: dict, submit: dict) -> tuple:
        return (rem[j] * gpus[j], submit[j], j)

    def wake(self, now: float, running: set, att: dict, gpus: dict) -> float:
        return math.inf

    def at(self, now: float) -> None:
        """Called at every step, after the clock has moved to ``now``."""

    def ended(self, job: TraceJob) -> None:
        pass


def srtf_reference(jobs: Sequence[TraceJob], total_gpus: int, detail: bool = False,
                   gpus_per_node: int | None = None) -> dict:
    """Replay ``jobs`` (sorted by submission) on ``total_gpus`` pooled GPUs;
    returns ``avg_jct``, ``median_jct``, ``jobs``, ``completed``, ``rejected``
    (jobs larger than the pool) and ``preemptions`` (running jobs stopped
    for a shorter one); with ``detail``, also ``jct_by_job`` and
    ``start_by_job`` (job id -> completion time, first start) for comparing
    job by job (``benchmarks/jct_gap_bench.py``).

    With ``gpus_per_node`` the GPUs are nodes of that many instead of one pool
    (``benchmarks/node_srtf_bench.py``): a job of up to one node's GPUs goes on one
    node, a bigger one on whole nodes, and every placement is made afresh at each
    arrival and end, so a running job moves to another node for free."""
    return pooled_replay(jobs, total_gpus, SrtfOrder(), detail, gpus_per_node)


def pooled_replay(jobs: Sequence[TraceJob], total_gpus: int, order, detail: bool = False,
                  gpus_per_node: int | None = None) -> dict:
    """:func:`srtf_reference`'s replay with another ``order`` (see :class:`SrtfOrder`): at
    every arrival, end and ``order.wake``, the jobs present are ranked by ``order.key`` and
    given GPUs in that order while they fit, preempting and resuming for free
    (``benchmarks/pooled_bound_bench.py`` ranks without durations this way)."""
    if total_gpus < 1:
        raise ValueError("total_gpus must be at least 1")
    if gpus_per_node is not None and (gpus_per_node < 1 or total_gpus % gpus_per_node):
        raise ValueError("gpus_per_node must be at least 1 and divide total_gpus")
    ordered = sorted(jobs, key=lambda j: (j.submit_time, j.id))
    by_id = {j.id: j for j in ordered}
    rem: dict[str, float] = {}
    att: dict[str, float] = {}
    gpus: dict[str, int] = {}
    submit: dict[str, float] = {}
    present: list[str] = []
    running: set[str] = set()
    jct: list[float] = []
    jct_by: dict[str, float] = {}
    start_by: dict[str, float] = {}
    rejected = preemptions = 0
    i, n = 0, len(ordered)
    now = ordered[0].submit_time if ordered else 0.0
    inf = math.inf
    key = order.key
    while i < n or present:
        t = ordered[i].submit_time if i < n else inf
        if running:
            t = min(t, now + min(rem[j] for j in running))
        if present:
            t = min(t, order.wake(now, running, att, gpus))
        dt = t - now
        if dt > 0:
            for j in running:
                rem[j] -= dt
                att[j] += dt * gpus[j]
        now = t
        order.at(now)
        if running:
            done = [j for j in running if rem[j] <= 1e-9]
            if done:
                for j in done:
                    running.discard(j)
                    jct.append(now - submit[j])
                    order.ended(by_id[j])
                    if detail:
                        jct_by[j] = now - submit[j]
                finished = set(done)
                present = [j for j in present if j not in finished]
        while i < n and ordered[i].submit_time <= now:
            tj = ordered[i]
            i += 1
            if tj.gpus > total_gpus:
                rejected += 1
                continue
            if tj.duration <= 0:
                jct.append(0.0)
                if detail:
                    jct_by[tj.id], start_by[tj.id] = 0.0, now
                continue
            rem[tj.id], att[tj.id], gpus[tj.id], submit[tj.id] = tj.duration, 0.0, tj.gpus, tj.submit_time
            present.append(tj.id)
        present.sort(key=lambda j: key(j, rem, att, gpus, submit))
        free = total_gpus
        nodes = [gpus_per_node] * (total_gpus // gpus_per_node) if gpus_per_node else None
        now_running: set[str] = set()
        for j in present:
            if gpus[j] <= free and (nodes is None or _place(nodes, gpus[j], gpus_per_node)):
                now_running.add(j)
                free = free - gpus[j] if nodes is None else sum(nodes)
                if detail and j not in start_by:
                    start_by[j] = now
                if free == 0:
                    break
        preemptions += len(running - now_running)
        running = now_running
    out = {"jobs": n, "completed": len(jct), "rejected": rejected, "preemptions": preemptions,
           "avg_jct": statistics.fmean(jct) if jct else 0.0,
           "median_jct": statistics.median(jct) if jct else 0.0}
    if detail:
        out["jct_by_job"], out["start_by_job"] = jct_by, start_by
    return out


__all__ = ["SrtfOrder", "pooled_replay", "srtf_reference"]

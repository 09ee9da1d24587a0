"""Queue insight: position, estimated start and a pending reason per queued job.

A pure function of the snapshot, like a scheduling pass.  Positions follow
queue order (submission order, priorities within a workspace); estimated
starts come from a forward projection in that order: running jobs end at
their declared or estimated runtimes, and each queued job starts at the
first moment its whole gang fits, holding its GPUs for its own estimate.
The projection is what a FIFO pass would do; backfill and LAS can only start
jobs earlier, so it is an upper bound in practice, cheap, and explainable.
``limit`` bounds the work on a very long queue (later jobs get no estimate).

Example reason: "needs 4 GPUs on one node; workspace quota 8/8 in use;
estimated start 14:10 when training X ends".
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from .core import PassState, clock, describe_need
from .placement import DEFAULT_TOPOLOGY_KEYS
from .types import Snapshot


@dataclass(frozen=True, slots=True)
class QueueInsight:
    job_id: str
    position: int            # 1-based, overall
    workspace_position: int  # 1-based, within its workspace
    estimated_start: float | None
    reason: str


def explain(snap: Snapshot, limit: int = 1000,
            topology_keys=DEFAULT_TOPOLOGY_KEYS) -> list[QueueInsight]:
    state = PassState(snap, topology_keys)
    fm = state.free
    ends = state.ends()
    heapq.heapify(ends)
    seq = len(ends)
    t = snap.now
    last_label = ""
    ws_pos: dict[str, int] = {}
    in_use = state.in_use  # GPUs each workspace holds now (the reason says what is true now)
    out: list[QueueInsight] = []
    for pos, job in enumerate(snap.queue, start=1):
        ws = job.workspace
        ws_pos[ws] = ws_pos.get(ws, 0) + 1
        parts = [describe_need(job, fm.max_size)]
        lim = snap.limits_for(ws)
        if lim.quota is not None:
            used = in_use.get(ws, 0)
            if used + job.gpus > lim.quota:
                if lim.allow_borrowing and job.preemptible:
                    parts.append(f"workspace quota {used}/{lim.quota} in use, may borrow idle GPUs")
                else:
                    parts.append(f"workspace quota {used}/{lim.quota} in use")
        start = None
        if pos <= limit:
            while True:
                p = fm.find(job)
                if p is not None:
                    start = t
                    break
                if not ends:
                    break
                end, _, ejob, ep = heapq.heappop(ends)
                if end > t:
                    t = end
                fm.give(ep)
                last_label = ejob.label
            if start is not None:
                fm.take(p)
                seq += 1
                heapq.heappush(ends, (start + snap.estimates.estimate(job), seq, job, p))
                if start <= snap.now:
                    parts.append("can start at the next pass")
                else:
                    parts.append(f"estimated start {clock(start)} when {last_label} ends")
            else:
                parts.append("no estimate: not enough schedulable GPUs")
        if pos > 1 and start is None:
            parts.append(f"{pos - 1} job(s) ahead")
        out.append(QueueInsight(job.id, pos, ws_pos[ws], start, "; ".join(parts)))
    return out

"""``las``: preemptive least-attained-service, after Tiresias (NSDI'19).

Jobs are ranked by the GPU-seconds they have received so far (their
*attained service*), discretised into levels by ``thresholds`` (Tiresias's
2D-LAS with a few queues): a new job starts in level 0 and sinks one level
each time its service crosses a threshold.  Within a level, first come
first served (by submission, then priority).  The scheduler does not need
durations: short jobs finish while still in a high level, long jobs sink and
yield to newcomers.  This is what beats oracle SJF without knowing the
future on the Philly trace (see docs/benchmarks.md, "Scheduler").

One pass:

- queued jobs are walked in rank order; each starts if it fits, otherwise it
  may preempt running jobs of a strictly lower level (never within its own
  level, which avoids thrashing; never a non-preemptible job; never a job
  that started less than ``min_run`` seconds ago; never another workspace's
  job running within its guaranteed quota).  A job that fits nowhere does
  not block smaller jobs behind it;
- starvation: a job queued for ``starve_after`` seconds (and at least
  ``starve_factor`` times its previous run time) is promoted above level 0
  until it runs again;
- quotas: as in every policy (``core.py``): a job within its workspace's
  guarantee may reclaim borrowed GPUs;
- ``wake_at`` is the next time a running job crosses a threshold or a queued
  job reaches its starvation limit, so the coordinator re-runs the pass then.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

from ..core import BLOCKED, BORROW, WITHIN, PassState, decisions, describe_need
from ..types import ActiveJob, Decisions, Job, Snapshot
from .base import Policy


@dataclass(frozen=True)
class LasPolicy(Policy):
    thresholds: tuple[float, ...] = (3600.0 * 4, 3600.0 * 64)
    starve_after: float = 6 * 3600.0
    starve_factor: float = 1.0
    min_run: float = 300.0
    name = "las"
    preemptive = True

    def level(self, attained: float) -> int:
        return bisect_right(self.thresholds, attained)

    def _starving_since(self, job: Job) -> float:
        last_run = job.attained / job.gpus
        return job.queued_since + max(self.starve_after, self.starve_factor * last_run)

    def rank(self, job: Job, now: float) -> tuple:
        if now >= self._starving_since(job):
            return (-1, job.queued_since, -job.priority, job.submitted_at, job.id)
        return (self.level(job.attained), 0.0, -job.priority, job.submitted_at, job.id)

    def schedule(self, snap: Snapshot) -> Decisions:
        now = snap.now
        state = PassState(snap, self.topology_keys)
        queued = sorted(((self.rank(j, now), j) for j in snap.queue.jobs()), key=lambda t: t[0])
        level_of: dict[str, int] = {}
        lowest = -2  # the lowest-priority (highest) level among preemptible running jobs
        wake: float | None = None
        thresholds = self.thresholds
        for a in snap.active:
            if a.stopping:
                continue
            att = a.attained_at(now)
            lv = bisect_right(thresholds, att)
            level_of[a.job.id] = lv
            if a.job.preemptible and now - a.started_at >= self.min_run and lv > lowest:
                lowest = lv
            if queued:
                if lv < len(thresholds):
                    t = now + (thresholds[lv] - att) / a.job.gpus
                    wake = t if wake is None or t < wake else wake
                g = a.started_at + self.min_run
                if g > now and (wake is None or g < wake):
                    wake = g
        fm = state.free
        any_quota = state.any_quota
        pending: int | None = None  # GPUs being freed and not yet claimed
        for rank, job in queued:
            lv = rank[0]
            if lv >= lowest and pending is None:
                pending = state.pending_total()
            if fm.total_free == 0 and lv >= lowest and not any_quota and not pending:
                break
            verdict, qreason = state.quota_verdict(job)
            if verdict == BLOCKED:
                state.waiting[job.id] = qreason
                continue
            p = fm.find(job)
            if p is not None:
                state.admit(job, p, verdict == BORROW)
                continue
            ws = job.workspace
            if lv < lowest or verdict == WITHIN or pending:
                def eligible(a: ActiveJob, lv=lv, ws=ws, verdict=verdict) -> bool:
                    j = a.job
                    if not j.preemptible:
                        return False
                    other = j.workspace != ws
                    if verdict == WITHIN and other and state.over_guarantee(j.workspace):
                        return True
                    if level_of.get(j.id, -1) <= lv or now - a.started_at < self.min_run:
                        return False
                    return not (other and any_quota and not state.over_guarantee(j.workspace)
                                and snap.limits_for(j.workspace).quota is not None)

                found = state.find_victims(
                    job, eligible, lambda a: (-level_of.get(a.job.id, 0), -a.started_at, a.job.id))
                if found is not None:
                    nodes, victims = found
                    state.claim(job, nodes, victims,
                                f"preempted for {job.id} (least attained service: level {lv})"
                                if verdict != WITHIN else
                                f"reclaimed for {job.id}: workspace {ws} is under its quota")
                    state.waiting[job.id] = (f"{describe_need(job, fm.max_size)}; waiting for "
                                             f"{len(victims) or 'stopping'} job(s) to stop")
                    pending = None
                    continue
            state.waiting[job.id] = f"{state.shortage(job)}; service level {max(lv, 0)}"
        for _, job in queued:
            if job.id in state.waiting:
                t = self._starving_since(job)
                if t > now and (wake is None or t < wake):
                    wake = t
        return decisions(state, wake)

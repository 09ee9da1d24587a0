"""Bursts: a person's alike jobs submitted together, named once, when each is submitted.

The start estimates draw one runtime quantile for all the jobs of a burst
(``insight._burst``): jobs a person submits together are alike, and drawn
apart, the first of forty to end would end within minutes however long the
forty run.  A burst is the jobs of one workspace, size and kind where each
was submitted less than ``GAP`` seconds after the one before it, and at most
``MOST`` of them: a stream of one job every few seconds for hours is cut
into bursts of ``MOST`` jobs, not drawn as one (docs/benchmarks.md, "A stream
of alike jobs").

The burst is given at submission and kept on the job (``Job.burst``, the
``jobs.burst`` column), so a job's burst does not change as the jobs before it
end: cut again from the jobs still queued and running at each look, a
stream's key moved when its first jobs ended, and the estimate of a job
waiting on it jumped from one look to the next.  After a restart the open
bursts are taken from the jobs queued and running (:meth:`Bursts.resume`).

A notebook lease is no burst (each is someone's own session): it gets none.
"""

from __future__ import annotations

from typing import Iterable

from .types import Job

#: A job submitted less than this many seconds after the previous alike job joins its burst.
GAP = 60.0
#: A burst holds at most this many jobs; the next alike job starts a new one.
MOST = 200
#: The open bursts are pruned of those past ``GAP`` once this many groups are held.
_PRUNE_AT = 4096


def group(workspace: str, gpus: int, kind: str) -> str:
    """What alike means: one workspace, one size, one kind of job."""
    return f"{workspace}|{gpus}|{kind}"


class Bursts:
    """Gives each submitted job its burst: ``name(workspace, gpus, kind, at)``.

    Keeps, for each group (:func:`group`), the last submission, its burst and how many jobs
    that burst has; one dictionary look per job."""

    def __init__(self, gap: float = GAP, most: int = MOST):
        self.gap = gap
        self.most = most
        self._open: dict[str, tuple[float, str, int]] = {}  # group -> (last submission, burst, jobs)

    def name(self, workspace: str, gpus: int, kind: str, at: float) -> str:
        """The burst of a job of ``workspace`` for ``gpus`` submitted ``at``; "" for a lease."""
        if kind == "lease":
            return ""
        g = group(workspace, gpus, kind)
        last = self._open.get(g)
        if last is not None and abs(at - last[0]) < self.gap and last[2] < self.most:
            key, n, at = last[1], last[2] + 1, max(at, last[0])
        else:
            key, n = f"{g}|{at:.3f}", 1
            if len(self._open) >= _PRUNE_AT:
                self._prune(at)
        self._open[g] = (at, key, n)
        return key

    def _prune(self, now: float) -> None:
        self._open = {g: v for g, v in self._open.items() if now - v[0] < self.gap}

    def resume(self, jobs: Iterable[Job]) -> None:
        """Take up the bursts still open from the jobs queued and running (after a restart): the
        last alike job's burst, counted by its jobs among ``jobs``."""
        counts: dict[str, int] = {}
        last: dict[str, Job] = {}
        for job in jobs:
            if not job.burst or job.kind == "lease":
                continue
            counts[job.burst] = counts.get(job.burst, 0) + 1
            g = group(job.workspace, job.gpus, job.kind)
            if g not in last or job.submitted_at > last[g].submitted_at:
                last[g] = job
        for g, job in last.items():
            self._open[g] = (job.submitted_at, job.burst, counts[job.burst])

"""The queue as the core reads it: submission order, priorities within a workspace.

Queue order rule: across workspaces jobs are ordered by submission time;
inside a workspace a job with a higher ``priority`` takes the place of an
earlier, lower-priority job of the same workspace.  Concretely each
workspace owns the "slots" given by its jobs' submission times, and its jobs,
sorted by ``(-priority, submitted_at, id)``, fill those slots in order.  A
workspace's priorities therefore never move another workspace's jobs.

The view is maintained incrementally by a store (``add``/``remove`` cost a
bisection and a list move per workspace) or built once from rows with
:meth:`QueueView.build`.  The core never mutates it; the store must not
mutate it during a pass.  Iteration is a lazy k-way merge over workspaces, so
a pass that stops early (head-of-line blocking) costs what it examined, not
the length of the queue.

The view also keeps a short log of its changes, so that a reader that keeps
its own index of the queue from pass to pass (the ``las`` policy's ranking)
applies what changed instead of re-reading every job: :attr:`changes` counts
them, :meth:`changes_since` returns those after a count, or None once they
have left the log (the reader then rebuilds from :meth:`jobs`).
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, bisect_right, insort
from itertools import islice
from operator import itemgetter
from typing import Callable, Iterable, Iterator, Sequence

from .types import Job

# Changes kept for incremental readers: a pass reads them every fraction of a
# second, so a few thousand cover any burst of submissions between two passes.
CHANGE_LOG = 4096


def _job_key(job: Job) -> tuple:
    return (-job.priority, job.submitted_at, job.id)


def _slot_key(job: Job) -> tuple:
    return (job.submitted_at, job.id)


_first = itemgetter(0)


def _since_key(job: Job) -> tuple[float, str]:
    return (job.queued_since, job.id)


class QueueView:
    __slots__ = ("_jobs", "_keys", "_slots", "_by_id", "_log", "_log_start", "_leases", "_by_since")

    def __init__(self) -> None:
        self._jobs: dict[str, list[Job]] = {}
        self._keys: dict[str, list[tuple]] = {}
        self._slots: dict[str, list[tuple]] = {}
        self._by_id: dict[str, Job] = {}
        self._log: list[tuple[bool, Job]] = []  # (added, job), oldest first
        self._log_start = 0  # the change count of _log[0]
        self._leases = 0  # how many queued jobs are notebook leases (kind "lease")
        # (queued since, id) of every job, ascending: made at the first queued_after (a what-if
        # view, which never asks, does not pay for it), then kept up to date
        self._by_since: list[tuple[float, str]] | None = None

    @classmethod
    def build(cls, jobs: Iterable[Job]) -> "QueueView":
        view = cls()
        for job in jobs:
            view.add(job)
        return view

    def copy(self) -> "QueueView":
        """A view of the same jobs that changes apart from this one (the queue's projection
        starts and requeues jobs in its own), without the change log; copying the lists costs
        a fraction of building the view again job by job."""
        view = QueueView()
        view._jobs = {ws: list(jobs) for ws, jobs in self._jobs.items()}
        view._keys = {ws: list(keys) for ws, keys in self._keys.items()}
        view._slots = {ws: list(slots) for ws, slots in self._slots.items()}
        view._by_id = dict(self._by_id)
        view._leases = self._leases
        return view

    # -- maintenance (stores only) -------------------------------------------
    def add(self, job: Job) -> None:
        if job.id in self._by_id:
            raise ValueError(f"job {job.id} is already queued")
        ws = job.workspace
        keys = self._keys.setdefault(ws, [])
        jobs = self._jobs.setdefault(ws, [])
        k = _job_key(job)
        i = bisect_left(keys, k)
        keys.insert(i, k)
        jobs.insert(i, job)
        insort(self._slots.setdefault(ws, []), _slot_key(job))
        self._by_id[job.id] = job
        if job.kind == "lease":
            self._leases += 1
        if self._by_since is not None:
            insort(self._by_since, _since_key(job))
        self._logged(True, job)

    def remove(self, job_id: str) -> Job:
        job = self._by_id.pop(job_id)
        ws = job.workspace
        keys, jobs, slots = self._keys[ws], self._jobs[ws], self._slots[ws]
        i = bisect_left(keys, _job_key(job))
        del keys[i], jobs[i]
        del slots[bisect_left(slots, _slot_key(job))]
        if not jobs:
            del self._keys[ws], self._jobs[ws], self._slots[ws]
        if job.kind == "lease":
            self._leases -= 1
        by_since = self._by_since
        if by_since is not None:
            del by_since[bisect_left(by_since, _since_key(job))]
        self._logged(False, job)
        return job

    def _logged(self, added: bool, job: Job) -> None:
        log = self._log
        log.append((added, job))
        if len(log) > CHANGE_LOG:
            half = len(log) // 2
            del log[:half]
            self._log_start += half

    @property
    def leases(self) -> int:
        """How many of the queued jobs are notebook leases."""
        return self._leases

    @property
    def changes(self) -> int:
        """How many times a job was added or removed since the view was made."""
        return self._log_start + len(self._log)

    def changes_since(self, count: int) -> list[tuple[bool, Job]] | None:
        """The changes after the first ``count``, oldest first, as (added,
        job); None when some of them are no longer kept."""
        i = count - self._log_start
        return None if i < 0 else self._log[i:]

    # -- reading ---------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._by_id

    def get(self, job_id: str) -> Job | None:
        return self._by_id.get(job_id)

    def queued_after(self, t: float) -> Iterator[tuple[float, str]]:
        """(queued since, id) of the jobs queued (or queued again) after ``t``, earliest
        first: ``enqueued_at``, or ``submitted_at`` for a job never requeued."""
        by_since = self._by_since
        if by_since is None:
            by_since = self._by_since = sorted(map(_since_key, self._by_id.values()))
        return islice(by_since, bisect_right(by_since, t, key=_first), None)

    def workspaces(self) -> list[str]:
        return sorted(self._jobs)

    def in_workspace(self, workspace: str) -> Sequence[Job]:
        """The workspace's queued jobs in queue order (read-only: no copy)."""
        return self._jobs.get(workspace, ())

    def jobs(self) -> Iterable[Job]:
        """All queued jobs, in no particular order (cheap)."""
        return self._by_id.values()

    def __iter__(self) -> Iterator[Job]:
        return iter(self.cursor())

    def cursor(self) -> "QueueCursor":
        return QueueCursor(self)


class QueueCursor:
    """Walks the queue in order; ``block(ws)`` drops the rest of a workspace.

    Used for quota blocking: a job stopped by its workspace's quota holds back
    that workspace's later jobs (to keep its own order) but nobody else's.
    """

    __slots__ = ("_view", "_heap", "_pos", "_blocked", "_pending")

    def __init__(self, view: QueueView) -> None:
        self._view = view
        self._heap = [(slots[0], ws) for ws, slots in view._slots.items()]
        heapq.heapify(self._heap)
        self._pos: dict[str, int] = {}
        self._blocked: set[str] = set()
        self._pending: str | None = None

    def block(self, workspace: str) -> None:
        self._blocked.add(workspace)

    def __iter__(self) -> "QueueCursor":
        return self

    def __next__(self) -> Job:
        view = self._view
        ws = self._pending
        if ws is not None:
            self._pending = None
            if ws not in self._blocked:
                i = self._pos[ws] + 1
                slots = view._slots[ws]
                if i < len(slots):
                    self._pos[ws] = i
                    heapq.heappush(self._heap, (slots[i], ws))
        heap = self._heap
        while heap:
            _, ws = heapq.heappop(heap)
            if ws in self._blocked:
                continue
            i = self._pos.setdefault(ws, 0)
            self._pending = ws
            return view._jobs[ws][i]
        raise StopIteration


def merged(view: QueueView, keep: Callable[[Job], bool] | None = None) -> list[Job]:
    """The whole queue in order, as a list (insight and tests)."""
    return [j for j in view if keep is None or keep(j)]

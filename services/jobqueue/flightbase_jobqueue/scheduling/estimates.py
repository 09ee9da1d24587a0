"""Runtime estimates: for reservations, and for the queue's estimated starts.

A job's estimate is its declared ``max_runtime`` when it has one; otherwise
the running median of the last ``window`` completed runtimes of jobs of the
same workspace and size class (GPU count rounded up to a power of two),
falling back to the size class across workspaces, then to all jobs, then to
``default``.  A notebook lease has keys of its own (:func:`history_keys`): its
workspace's leases, then all leases; how long people keep a notebook open says
nothing about how long a one-GPU training runs, nor the other way round.  The
coordinator feeds it each completed job's run time
(``observe``); the core only reads it (``estimate``), so a pass stays pure.
Never the true duration of the job being estimated.

:meth:`HistoryEstimates.remaining` is what the queue's estimated starts use
(:mod:`.insight`): the time a job still needs *given what it has already
run*, a quantile of the completed runtimes (last ``long_window`` of the same
keys) that are longer than that.  GPU job runtimes are heavy-tailed, so the
longer a job has run, the longer it is likely to run on; the unconditional
median would call a job that has run 10 h "overdue" when it is merely long.
With fewer than ``min_samples`` such runtimes anywhere, a job that has run
``r`` seconds (at least ``floor``; ``default`` for one that has not run) is
expected to run ``r q / (1 - q)`` more at quantile ``q``: a scale-free
(Pareto) tail, about as long again at the median, a third of it at the 25th
percentile and three times it at the 75th.  When the censored runtimes put
the quantile past the longest completed runtime ``T``, a job that has run
less than ``T`` is expected on that tail from ``T`` (``S(t) = S(T) T / t``).

``remaining`` (the start estimates, never ``las``'s order nor a reservation)
reads one key before those: the training the job belongs to
(``Job.training``).  A sweep's jobs run the same program on other
parameters, so its finished jobs say more about the next one than its
workspace's other work does: from the first of them that ended (its jobs
still running are censored runtimes there too), until the job has run longer
than every one that ended.  The last ``window`` runtimes of each of the last
``max_trainings`` trainings with a finished job are kept.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections import OrderedDict, deque
from typing import Iterable

from .types import Job


def size_class(gpus: int) -> int:
    return 1 << max(0, gpus - 1).bit_length()


def history_keys(job: Job) -> tuple[tuple, ...]:
    """The runtime history's keys for ``job``, the most specific first."""
    if job.kind == "lease":
        return (job.workspace, "lease"), ("", "lease")
    c = size_class(job.gpus)
    return (job.workspace, c), ("", c), ("", 0)


class _Window:
    __slots__ = ("recent", "ordered", "median")

    def __init__(self) -> None:
        self.recent: deque[float] = deque()
        self.ordered: list[float] = []
        self.median = 0.0

    def add(self, value: float, window: int) -> None:
        self.recent.append(value)
        insort(self.ordered, value)
        if len(self.recent) > window:
            old = self.recent.popleft()
            self.ordered.remove(old)
        self.median = self.ordered[len(self.ordered) // 2]


_TRAINING = object()  # (a workspace may be called anything: its keys never start with this)


def training_key(job: Job) -> tuple | None:
    """The history key of ``job``'s training (its sweep's jobs), or None (a lease; a job of no
    training, as the simulator's)."""
    return (_TRAINING, job.training) if job.training and job.kind != "lease" else None


class HistoryEstimates:
    def __init__(self, default: float = 3600.0, window: int = 101, min_samples: int = 3,
                 long_window: int = 1000, floor: float = 600.0,
                 km_refresh: float = 300.0, max_trainings: int = 1000):
        self.default = default
        self.window = window
        self.min_samples = min_samples
        self.long_window = long_window
        self.floor = floor
        self._by_key: dict[tuple, _Window] = {}
        self._long: dict[tuple, _Window] = {}
        self._memo: dict[tuple[str, int, str], float] = {}
        self._chains: dict[tuple[str, int, str], list[tuple[tuple, _Window]]] = {}
        self.km_refresh = km_refresh
        self._km_at: float | None = None
        self._km: dict[tuple, tuple[list[float], list[float]]] = {}
        self._censored: dict[tuple, list[float]] = {}
        self.max_trainings = max_trainings
        self._trainings: OrderedDict[tuple, _Window] = OrderedDict()  # least recently ended first

    def observe(self, job: Job, runtime: float) -> None:
        """Record the total run time (seconds, all runs together) of a job
        that completed successfully."""
        self._memo.clear()
        self._chains.clear()
        self._km = {}
        for key in history_keys(job):
            w = self._by_key.get(key)
            if w is None:
                w = self._by_key[key] = _Window()
            w.add(runtime, self.window)
            w = self._long.get(key)
            if w is None:
                w = self._long[key] = _Window()
            w.add(runtime, self.long_window)
        key = training_key(job)
        if key is not None:
            w = self._trainings.pop(key, None) or _Window()
            w.add(runtime, self.window)  # (its last 101: at most some 4 MB in all)
            self._trainings[key] = w
            if len(self._trainings) > self.max_trainings:
                self._trainings.popitem(last=False)

    def estimate(self, job: Job) -> float:
        if job.max_runtime is not None:
            return job.max_runtime
        memo_key = (job.workspace, job.gpus, job.kind)
        v = self._memo.get(memo_key)
        if v is not None:
            return v
        v = self.default
        for key in history_keys(job):
            w = self._by_key.get(key)
            if w is not None and len(w.recent) >= self.min_samples:
                v = w.median
                break
        self._memo[memo_key] = v
        return v

    def censor(self, now: float, runs: Iterable[tuple[Job, float]]) -> None:
        """What running (and preempted) jobs have run so far, ``(job, seconds
        in all)``: from now on :meth:`remaining` counts them as censored
        runtimes (Kaplan-Meier), refreshed at most every ``km_refresh``
        seconds.  Without them the completed runtimes favour short jobs:
        under load long jobs complete last (or are preempted), so the recent
        completions are mostly short ones, and estimates come out early."""
        if self._km_at is not None and 0.0 <= now - self._km_at < self.km_refresh:
            return
        self._km_at = now
        self._km = {}
        cens: dict[tuple, list[float]] = {}
        for job, ran in runs:
            if ran <= 0.0 or job.max_runtime is not None:
                continue
            for key in history_keys(job):
                cens.setdefault(key, []).append(ran)
            key = training_key(job)
            if key is not None:
                cens.setdefault(key, []).append(ran)
        for v in cens.values():
            v.sort()
        self._censored = cens

    def _curve(self, key: tuple, w: _Window) -> tuple[list[float], list[float]]:
        """Kaplan-Meier survival of the key's runtimes: event times and the
        negated survival after each (non-decreasing, for bisection)."""
        got = self._km.get(key)
        if got is not None:
            return got
        ev = w.ordered
        cens = self._censored.get(key, ())
        nc = len(cens)
        times: list[float] = []
        neg: list[float] = []
        surv = 1.0
        i, n = 0, len(ev)
        while i < n:
            t = ev[i]
            j = bisect_right(ev, t, i)
            at_risk = (n - i) + (nc - bisect_left(cens, t))
            surv *= 1.0 - (j - i) / at_risk
            times.append(t)
            neg.append(-surv)
            i = j
        got = self._km[key] = (times, neg)
        return got

    def remaining(self, job: Job, ran: float, q: float = 0.5) -> float:
        """Seconds ``job`` still needs after running ``ran`` seconds in all
        (every run together), at quantile ``q`` of the completed runtimes
        longer than ``ran`` (see the module docstring; with :meth:`censor`,
        of the Kaplan-Meier estimate).  A declared ``max_runtime`` bounds
        it."""
        return self._remaining(job, ran, q, self._km_at is not None, True)

    def bound(self, job: Job, ran: float, q: float) -> float:
        """A bound of the range of :meth:`remaining` (``q`` below the median: the short end;
        above: the long end).  :meth:`remaining` at ``q``, except where it rests on fewer
        than ``min_samples`` finished jobs of the job's own training (one is enough for the
        median, which is where the next trial of a sweep most likely ends, but it says
        nothing of the spread): then widened to what the other keys (its workspace and size,
        and so on) say at ``q``, the shorter of the two below the median and the longer
        above.  Without it a sweep whose first trial had ended got a range of one point, a
        confident estimate, however much its trials differ."""
        v = self.remaining(job, ran, q)
        if q == 0.5 or (tk := training_key(job)) is None or (tw := self._trainings.get(tk)) is None:
            return v
        if not 0 < len(tw.ordered) - bisect_right(tw.ordered, max(0.0, ran)) < self.min_samples:
            return v
        w = self._remaining(job, ran, q, self._km_at is not None, False)
        return min(v, w) if q < 0.5 else max(v, w)

    def completed_remaining(self, job: Job, ran: float) -> float:
        """:meth:`remaining` at the median, from the completed runtimes alone (never the
        censoring of :meth:`censor`): what ``las`` ranks by.  The queue's projection
        refreshes the censoring whenever estimates are asked for, and a scheduling pass
        must not depend on whether anyone asked (tests/scheduling/test_estimates.py)."""
        return self._remaining(job, ran, 0.5, False, False)

    def _remaining(self, job: Job, ran: float, q: float, km: bool, siblings: bool) -> float:
        ran = max(0.0, ran)
        if job.max_runtime is not None:
            return max(0.0, job.max_runtime - ran)
        mk = (job.workspace, job.gpus, job.kind)
        chain = self._chains.get(mk)
        if chain is None:
            chain = self._chains[mk] = [(k, w) for k, w in ((k, self._long.get(k)) for k in history_keys(job))
                                        if w is not None]
        if siblings and (tk := training_key(job)) is not None and (tw := self._trainings.get(tk)) is not None:
            chain = [(tk, tw), *chain]  # its own training's finished jobs first (one is enough)
        for key, w in chain:
            o = w.ordered
            i = bisect_right(o, ran)
            n = len(o) - i
            if n < (1 if key[0] is _TRAINING else self.min_samples):
                continue
            if not km:
                return max(0.0, o[i + min(n - 1, int(q * n))] - ran)
            times, neg = self._curve(key, w)
            k = bisect_right(times, ran)
            s_r = -neg[k - 1] if k else 1.0
            m = bisect_left(neg, -s_r * (1.0 - q), k)
            if m < len(times):
                return max(0.0, times[m] - ran)
            if k < len(times):
                # Past the last completed runtime T (the rest is censored), from a job that
                # has run less than T: the scale-free tail of the rule below, from T on
                # (S(t) = S(T) T / t).  Not the rule itself, which would expect a job that
                # has not run of a history all longer than an hour to run an hour.
                t_last, s_last = times[-1], -neg[-1]
                return max(0.0, t_last * s_last / (s_r * (1.0 - min(q, 0.99))) - ran)
            if key[0] is _TRAINING:
                continue  # it has outrun its training's finished jobs: the other keys say more
            break  # it has run T or more: the tail rule below, from its own run time
        base = self.default if ran <= 0.0 else max(self.floor, ran)
        q = min(max(q, 0.01), 0.99)
        return base * q / (1.0 - q)

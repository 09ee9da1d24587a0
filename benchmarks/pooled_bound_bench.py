"""How close to the SRTF reference a scheduler that knows no durations can come at best (issue #17, part 4).

    PYTHONPATH=services/jobqueue python benchmarks/pooled_bound_bench.py --window 19
    PYTHONPATH=services/jobqueue python benchmarks/pooled_bound_bench.py \
        --trace /work/shared/traces/philly_2017-10-01_14d_jobs.csv

The SRTF reference (``sim/reference.py``) knows every duration, pools all
GPUs, and preempts and resumes for free.  This replays the same window on
the same pooled GPUs, with the same free preemption and no restart cost, but
with orders that do not know a job's duration, each re-ranked at every
arrival, end and level crossing (the Gittins order: at every arrival and end,
and every ``--tick`` seconds), jobs
given GPUs in that order while they fit (a job that does not fit does not
stop smaller ones after it), as the reference does:

- ``srtf``: the reference's own order (remaining GPU-seconds), as a check
  that this loop gives the reference's figure;
- ``las``: least attained service in levels of ``las``'s thresholds
  (16 / 256 / 1,024 GPU-hours), first come first served within a level;
- ``las-fine``: least attained service with a level per doubling of the
  GPU-seconds received from one GPU-minute (close to pure LAS);
- ``gittins``: the Gittins index of the job's attained GPU-seconds, computed
  on the true distribution of the window's own jobs' GPU-seconds per GPU
  count (its size class when a count has fewer than ``--min-jobs``, 200).  For one
  server it is the best order that does not know durations (Gittins, 1989;
  Aalto, Ayesta, Righter, "On the Gittins index in the M/G/1 queue",
  Queueing Systems 63, 2009); it is told what no scheduler is told (the
  distribution of the very jobs it schedules), so it errs on the
  optimistic side;
- ``las-burst``: ``las``, but a job whose burst (its workspace's jobs of its GPU count
  submitted together, as the service names them at submission, scheduling/bursts.py)
  has jobs that ended after more GPU-seconds than it has received goes first, shortest
  expected rest first (the median of those): the only thing a burst tells before its
  jobs end is that they are alike (docs/benchmarks.md, "A burst's jobs drawn alike");
- ``gittins-ws``: the same per workspace and GPU count where the window has
  at least ``--min-jobs`` such jobs (else per GPU count): what the workspace adds, the
  only other thing the trace tells a scheduler.  The fewer jobs a table needs,
  the more it describes the very jobs being ranked (one job per table is its
  duration).

With ``--learn SECONDS`` the Gittins tables are what a scheduler could know:
the runtimes of the jobs of the 14 days before the window that had ended by
its start, and of the window's jobs as they end, rebuilt every ``SECONDS``
(a job still running is not in them, so they lean short).  With ``--las-until
JOBS`` as well, the ``gittins`` orders rank as ``las`` does while the tables in use
were built from fewer than JOBS runtimes, and by the learnt index from then on
(least attained service needs no history; the index is only as good as its
tables).

The loop is the reference's own (``sim.reference.pooled_replay``).  None of
these orders pays what the real scheduler pays (node boundaries, restarts,
``min_run``, the preemption budget), so their ratio to the reference is
what remains of the gap from not knowing durations alone: for the Gittins
order, a floor for any order of the same information, not a policy.  Figures in docs/benchmarks.md
("What not knowing durations costs at best").
"""

from __future__ import annotations

import argparse
import bisect
import math
import statistics
import sys
import time

from flightbase_jobqueue.sim.reference import SrtfOrder, pooled_replay, srtf_reference
from flightbase_jobqueue.sim.replay import trace_bursts
from flightbase_jobqueue.sim.trace import DAY, window

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from jct_gap_bench import size_class  # noqa: E402  (the gap's classes: 1, 2-4, 5-8, >8 GPUs)
from replay_bench import add_window_arguments, read_trace_or_refuse, window_trace  # noqa: E402

LAS_THRESHOLDS = (3600.0 * 16, 3600.0 * 256, 3600.0 * 1024)
FINE_THRESHOLDS = tuple(60.0 * 2 ** k for k in range(40))
ORDERS = ("srtf", "las", "las-fine", "las-burst", "gittins", "gittins-ws")


def gittins_table(services: list[float], ages: list[float]) -> list[float]:
    """The Gittins index at each of ``ages`` (ascending) of a job whose total
    service is drawn from ``services``: the most, over quanta D, of
    P(done within D more) / E[service spent within D more], given it has
    received ``age``.  D ranges over the remaining services in the sample."""
    s = sorted(services)
    n = len(s)
    out = []
    for a in ages:
        i0 = bisect.bisect_right(s, a)
        if i0 >= n:
            out.append(out[-1] if out else 0.0)
            continue
        best = 0.0
        spent = 0.0  # sum of (s_j - a) for the sample points up to k
        for k in range(i0, n):
            d = s[k] - a
            spent += d
            done = k - i0 + 1
            denom = spent + (n - 1 - k) * d
            if denom > 0:
                r = done / denom
                if r > best:
                    best = r
            else:
                best = math.inf
                break
        out.append(best)
    return out


class Gittins:
    """Index lookup per GPU count (or size class), stepwise over a geometric
    grid of attained GPU-seconds."""

    def __init__(self, jobs, min_count: int = 200, step: float = 1.15, by_workspace: bool = False):
        by_count: dict[object, list[float]] = {}
        by_class: dict[str, list[float]] = {}
        for j in jobs:
            g = j.duration * j.gpus
            by_count.setdefault(j.gpus, []).append(g)
            by_class.setdefault(size_class(j.gpus), []).append(g)
            if by_workspace:
                by_count.setdefault((j.group, j.gpus), []).append(g)
        top = max((j.duration * j.gpus for j in jobs), default=1.0)
        ages = [0.0]
        a = 10.0
        while a < top:
            ages.append(a)
            a *= step
        self.ages = ages
        tables: dict[object, list[float]] = {}
        for c, sv in by_class.items():
            tables[c] = gittins_table(sv, ages)
        self.tables = tables
        self.all = gittins_table([j.duration * j.gpus for j in jobs], ages)
        self.by_count = {}
        for g, sv in sorted(by_count.items(), key=lambda kv: isinstance(kv[0], tuple)):
            if len(sv) >= min_count:
                self.by_count[g] = gittins_table(sv, ages)
            elif isinstance(g, tuple):  # a workspace's size with too few jobs: the size's table
                self.by_count[g] = self.by_count[g[1]]
            else:
                self.by_count[g] = tables[size_class(g)]

    def table(self, job_key: object) -> list[float]:
        """The table for a (workspace, GPUs) or GPUs key; one the sample lacks (history
        from other days) falls back to its GPU count's, its size class's, then all jobs'."""
        t = self.by_count.get(job_key)
        if t is None:
            gpus = job_key[1] if isinstance(job_key, tuple) else job_key
            t = self.by_count.get(gpus) or self.tables.get(size_class(gpus)) or self.all
            self.by_count[job_key] = t
        return t

    def index(self, job_key: object, attained: float) -> float:
        return self.table(job_key)[bisect.bisect_right(self.ages, attained) - 1]


class LevelOrder(SrtfOrder):
    """Least attained GPU-seconds in levels (``thresholds``), first come first served within
    a level; re-ranked when a running job crosses a threshold."""

    def __init__(self, thresholds: tuple[float, ...]):
        self.thresholds = thresholds

    def key(self, j, rem, att, gpus, submit):
        return (bisect.bisect_right(self.thresholds, att[j]), submit[j], j)

    def wake(self, now, running, att, gpus):
        t = math.inf
        thr = self.thresholds
        for j in running:
            k = bisect.bisect_right(thr, att[j])
            if k < len(thr):
                t = min(t, now + (thr[k] - att[j]) / gpus[j])
        return t


class BurstOrder(LevelOrder):
    """``las``'s levels, with a job whose burst has ended longer than it has run ahead of them
    all, by the median of those ends less what it has received (``las-burst``)."""

    def __init__(self, jobs, thresholds: tuple[float, ...] = LAS_THRESHOLDS):
        super().__init__(thresholds)
        self.burst = trace_bursts(jobs)  # the estimates' bursts, as the service names them
        self.ends: dict[tuple, list[float]] = {}  # a burst's ended jobs' GPU-seconds, sorted

    def ended(self, job):
        bisect.insort(self.ends.setdefault(self.burst[job.id], []), job.duration * job.gpus)

    def _ends_after(self, j, att) -> tuple[list[float], int]:
        """The ends of ``j``'s burst and the first that is more than it has received."""
        ends = self.ends.get(self.burst[j], ())
        return ends, bisect.bisect_right(ends, att[j] + 1e-6)

    def key(self, j, rem, att, gpus, submit):
        ends, i = self._ends_after(j, att)
        if i < len(ends):
            return (-1, ends[(i + len(ends)) // 2] - att[j], j)
        return super().key(j, rem, att, gpus, submit)

    def wake(self, now, running, att, gpus):
        t = super().wake(now, running, att, gpus)
        for j in running:  # its rank changes when it has received what one of its burst did
            ends, i = self._ends_after(j, att)
            if i < len(ends):
                t = min(t, now + (ends[i] - att[j]) / gpus[j])
        return t


class GittinsOrder(SrtfOrder):
    """Highest Gittins index first, re-ranked every ``tick`` seconds; the tables from
    ``sample`` (or, with ``learn``, from ``sample`` and the jobs ended so far, rebuilt every
    ``learn`` seconds)."""

    def __init__(self, sample, keys: dict[str, object], min_count: int, by_workspace: bool, tick: float,
                 learn: float | None, las_until: int = 0):
        self.by_ws, self.min_count, self.tick, self.learn = by_workspace, min_count, tick, learn
        self.keys = keys  # job id -> its table's key: (workspace, GPUs) or GPUs
        self.learned = list(sample)
        self.git = Gittins(self.learned, min_count, by_workspace=by_workspace)
        # least attained service while the tables hold fewer than las_until runtimes
        self.las = LevelOrder(LAS_THRESHOLDS) if len(self.learned) < las_until else None
        self.las_until = las_until
        self.next_tick = self.next_learn = None

    def key(self, j, rem, att, gpus, submit):
        if self.las is not None:
            return self.las.key(j, rem, att, gpus, submit)
        return (-self.git.index(self.keys[j], att[j]), submit[j], j)

    def wake(self, now, running, att, gpus):
        if self.las is not None:
            return min(self.next_tick, self.las.wake(now, running, att, gpus))
        return self.next_tick

    def at(self, now):
        if self.next_tick is None:
            self.next_tick = now + self.tick
            self.next_learn = now + self.learn if self.learn else math.inf
        if now >= self.next_tick:
            self.next_tick = now + self.tick
        if now >= self.next_learn:
            self.next_learn = now + self.learn
            self.git = Gittins(self.learned, self.min_count, by_workspace=self.by_ws)
            if self.las is not None and len(self.learned) >= self.las_until:
                self.las = None

    def ended(self, job):
        if self.learn:
            self.learned.append(job)


def pooled(jobs, total_gpus: int, order: str, tick: float = 600.0, min_count: int = 200,
           history=None, learn: float | None = None, las_until: int = 0) -> dict:
    """Replay ``jobs`` on ``total_gpus`` pooled GPUs, free preemption, in ``order``.  The
    Gittins tables come from ``jobs`` themselves; or from ``history`` (jobs that ended
    before the window); or, with ``learn`` (seconds), from ``history`` and the window's jobs
    ended so far, rebuilt every ``learn`` seconds (what a scheduler can know); ranked as
    ``las`` while those tables hold fewer than ``las_until`` runtimes."""
    if order == "srtf":
        rank = SrtfOrder()
    elif order in ("las", "las-fine"):
        rank = LevelOrder(LAS_THRESHOLDS if order == "las" else FINE_THRESHOLDS)
    elif order == "las-burst":
        rank = BurstOrder(jobs)
    else:
        by_ws = order == "gittins-ws"
        sample = (history or ()) if (history is not None or learn) else jobs
        keys = {j.id: (j.group, j.gpus) if by_ws else j.gpus for j in jobs}
        rank = GittinsOrder(sample, keys, min_count, by_ws, tick, learn, las_until)
    return pooled_replay(jobs, total_gpus, rank)


def history_before(full, day: float, days: float = 14.0) -> list:
    """The jobs of the ``days`` days before ``day`` that had ended by then (submission plus
    duration: their queueing is not known here), their times counted from that span's start:
    what a scheduler starting the window would know of completed runtimes."""
    lo = max(0.0, day - days)
    if day <= lo:
        return []
    span = window(full, lo, day - lo).jobs
    end = (day - lo) * DAY
    return [j for j in span if j.submit_time + j.duration <= end]


def sweep(args: argparse.Namespace, orders: list[str], total: int, ap: argparse.ArgumentParser) -> int:
    """One line per window (each order's ratio to the reference), then per order the
    windows over 1.05 and the largest ratio (a trace it cannot read is ``ap``'s error)."""
    full = read_trace_or_refuse(args.full_trace, ap)
    ratios: dict[str, list[tuple[float, float]]] = {o: [] for o in orders}
    d = args.first
    while d <= args.last + 1e-9:
        jobs = window(full, d).jobs
        if jobs:
            ref = srtf_reference(jobs, total)["avg_jct"]
            hist = history_before(full, d) if args.learn else None
            cells = []
            for o in orders:
                r = pooled(jobs, total, o, args.tick, args.min_jobs, hist, args.learn,
                           args.las_until)["avg_jct"] / ref
                ratios[o].append((d, r))
                cells.append(f"{o} {r:.3f}")
            print(f"day {d:g}+14, {len(jobs):,} jobs: " + ", ".join(cells), flush=True)
        d += 1
    for o, rs in ratios.items():
        over = [f"{d:g}" for d, r in rs if r > 1.05]
        worst = max(rs, key=lambda x: x[1]) if rs else (0, 0)
        print(f"{o}: {len(over)} of {len(rs)} windows over 1.05x ({', '.join(over) or 'none'}); "
              f"largest {worst[1]:.3f} (day {worst[0]:g}); mean {statistics.fmean(r for _, r in rs):.4f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_window_arguments(ap)
    ap.add_argument("--orders", default=",".join(ORDERS),
                    help=f"comma-separated, of {', '.join(ORDERS)} (default: all)")
    ap.add_argument("--tick", type=float, default=600.0,
                    help="seconds between re-rankings for the Gittins order besides events (default 600)")
    ap.add_argument("--min-jobs", type=int, default=200,
                    help="the fewest jobs a GPU count (or workspace and GPU count) needs for a table of its own")
    ap.add_argument("--learn", type=float, metavar="SECONDS",
                    help="Gittins tables learnt as a scheduler would: from the 14 days before the window "
                         "and the window's jobs ended so far, rebuilt every SECONDS")
    ap.add_argument("--las-until", type=int, default=0, metavar="JOBS",
                    help="with --learn: rank as las until the learnt tables hold JOBS runtimes")
    ap.add_argument("--first", type=float, help="sweep: the window of every day from --first to --last")
    ap.add_argument("--last", type=float)
    args = ap.parse_args(argv)
    orders = [o for o in args.orders.split(",") if o]
    bad = [o for o in orders if o not in ORDERS]
    if bad:
        ap.error(f"--orders: unknown {', '.join(bad)} (known: {', '.join(ORDERS)})")
    if args.tick <= 0:
        ap.error("--tick: must be positive")
    if args.learn is not None and args.learn <= 0:
        ap.error("--learn: must be positive")
    if args.las_until < 0 or (args.las_until and not args.learn):
        ap.error("--las-until: a number of jobs, at least 0, with --learn")
    if args.min_jobs < 1:
        ap.error("--min-jobs: must be at least 1")
    total = args.nodes * args.gpus_per_node
    if args.first is not None or args.last is not None:
        if args.first is None or args.last is None or args.last < args.first or args.trace:
            ap.error("--first and --last: both, --last at least --first, and not with --trace")
        return sweep(args, orders, total, ap)
    if args.learn and args.trace:
        ap.error("--learn: needs a --window of --full-trace (its history is the days before)")
    if args.learn:  # the full trace read once, for the window and the days before it
        full = read_trace_or_refuse(args.full_trace, ap)
        trace, hist = window(full, args.window), history_before(full, args.window)
    else:
        trace, hist = window_trace(args, ap), None
    ref = srtf_reference(trace.jobs, total)
    where = args.trace or f"{args.full_trace} day {args.window:g}+14"
    print(f"{where}: {len(trace.jobs):,} jobs, {total} pooled GPUs; SRTF reference {ref['avg_jct']:,.0f} s")
    for order in orders:
        cpu0 = time.process_time()
        r = pooled(trace.jobs, total, order, args.tick, args.min_jobs, hist, args.learn, args.las_until)
        print(f"{order:>9}: avg JCT {r['avg_jct']:,.0f} s, {r['avg_jct'] / ref['avg_jct']:.3f}x the reference; "
              f"{r['preemptions'] / len(trace.jobs):.2f} preemptions per job (free here); "
              f"CPU {time.process_time() - cpu0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

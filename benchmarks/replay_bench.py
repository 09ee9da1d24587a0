"""Scheduler benchmark: Philly-slice replays and a scheduling-pass micro-benchmark.

    PYTHONPATH=services/jobqueue python benchmarks/replay_bench.py \
        --trace /work/shared/traces/philly_2017-10-01_14d_jobs.csv

Prints one table row per replay (64 x 8 GPUs with each policy, including the
sjf-oracle and las-oracle references; 96 x 8 GPUs with proportional quotas, with and
without borrowing, and pooled), each with its preemptions per job and its
average JCT over that of the preemptive SRTF reference on the same trace and
number of GPUs (``sim/reference.py``: knows durations, pools all GPUs, no
restart cost), then the CPU time of one scheduling pass over 10,000 queued
jobs on 1,000 nodes for each policy and of the queue's insight (``GET /queue``)
on that snapshot.  ``--windows 35,42`` adds, for each
start day, a 14-day window of ``--full-trace`` (the whole Philly trace),
replayed with the default ``las`` policy at 64 x 8 GPUs and a 60 s restart
cost against the reference (held-out windows: nothing was tuned on them);
``--window-policies las,las-oracle`` replays those policies on each window.
Times are CPU seconds of this process (the machine is shared; wall time is
printed for reference).  ``--quick`` replays only the first 3,000 jobs.
Figures are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time

from flightbase_jobqueue.scheduling import ActiveJob, Job, QueueView, Snapshot, make_policy
from flightbase_jobqueue.scheduling.estimates import HistoryEstimates
from flightbase_jobqueue.sim.reference import srtf_reference
from flightbase_jobqueue.sim.replay import make_nodes, replay
from flightbase_jobqueue.sim.trace import Trace, TraceError, read_trace, window

LOOSE_AGING = {"strict_aging": False}

REPLAYS = [
    # (label, nodes, policy, quotas, borrowing, restart_cost[, policy options])
    ("64x8 fifo", 64, "fifo", "none", True, 0.0),
    ("64x8 backfill", 64, "backfill", "none", True, 0.0),
    ("64x8 fairshare", 64, "fairshare", "none", True, 0.0),
    ("64x8 fairshare loose aging", 64, "fairshare", "none", True, 0.0, LOOSE_AGING),
    ("64x8 sjf-oracle", 64, "sjf-oracle", "none", True, 0.0),
    ("64x8 las", 64, "las", "none", True, 0.0),
    ("64x8 las restart 60s", 64, "las", "none", True, 60.0),
    ("64x8 las-oracle restart 60s", 64, "las-oracle", "none", True, 60.0),
    ("96x8 fifo pooled", 96, "fifo", "none", True, 0.0),
    ("96x8 las pooled restart 60s", 96, "las", "none", True, 60.0),
    ("96x8 fairshare pooled restart 60s", 96, "fairshare", "none", True, 60.0),
    ("96x8 fifo quotas, no borrowing", 96, "fifo", "proportional", False, 0.0),
    ("96x8 fifo quotas + borrowing", 96, "fifo", "proportional", True, 60.0),
    ("96x8 las quotas, no borrowing", 96, "las", "proportional", False, 60.0),
    ("96x8 las quotas + borrowing", 96, "las", "proportional", True, 60.0),
    ("96x8 fairshare quotas, no borrowing", 96, "fairshare", "proportional", False, 60.0),
    ("96x8 fairshare quotas + borrowing", 96, "fairshare", "proportional", True, 60.0),
]


HEADER = (f"{'replay':<40}{'avg JCT':>10}{'/SRTF':>7}{'median':>9}{'p99 wait':>10}{'max wait':>10}"
          f"{'util':>7}{'preempt':>9}{'/job':>6}{'reject':>8}{'wall s':>8}{'cpu s':>7}")


def row(label: str, r: dict, ref: float) -> str:
    return (f"{label:<40}{r['avg_jct']:>10,.0f}{r['avg_jct'] / ref:>7.3f}{r['median_jct']:>9,.0f}"
            f"{r['queue_delay_p99']:>10,.0f}{r['queue_delay_max']:>10,.0f}{100 * r['gpu_utilisation']:>6.1f}%"
            f"{r['preemptions']:>9}{r['preemptions'] / max(1, r['jobs']):>6.2f}{r['rejected']:>8}"
            f"{r['wall_s']:>8.1f}{r['cpu_s']:>7.1f}")


def reference(trace: Trace, gpus: int, cache: dict) -> float:
    """Average JCT of the preemptive SRTF reference (pooled, knows durations,
    free restarts) on ``gpus`` GPUs, printed once per trace and size."""
    if gpus not in cache:
        t0 = time.process_time()
        r = srtf_reference(trace.jobs, gpus)
        cache[gpus] = r["avg_jct"]
        print(f"{f'{gpus} GPUs pooled, srtf reference':<40}{r['avg_jct']:>10,.0f}{1:>7.3f}"
              f"{r['median_jct']:>9,.0f}{'-':>10}{'-':>10}{'-':>7}{r['preemptions']:>9}"
              f"{r['preemptions'] / max(1, r['jobs']):>6.2f}{r['rejected']:>8}{'-':>8}"
              f"{time.process_time() - t0:>7.1f}", flush=True)
    return cache[gpus]


def run_replays(path: str, limit: int | None, only: str | None) -> None:
    trace = read_trace(path, limit)
    print(HEADER)
    refs: dict[int, float] = {}
    for label, nodes, policy, quotas, borrowing, restart, *options in REPLAYS:
        if only and only not in label:
            continue
        ref = reference(trace, nodes * 8, refs)
        r = replay(path, nodes, 8, policy, quotas, restart, borrowing=borrowing, trace=trace,
                   policy_options=options[0] if options else None, record_estimates=False)
        print(row(label, r, ref), flush=True)


def parse_options(items: list[str]) -> dict:
    """``--option NAME=VALUE`` arguments (VALUE as JSON) as policy options; ValueError names the bad one."""
    options = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValueError(f"--option {item!r}: expected NAME=VALUE")
        try:
            options[name] = json.loads(value)
        except json.JSONDecodeError:
            raise ValueError(f"--option {item!r}: VALUE is not JSON") from None
    return options


def add_window_arguments(ap: argparse.ArgumentParser) -> None:
    """The trace and cluster options of the one-window benchmarks (jct_gap_bench.py,
    node_srtf_bench.py); :func:`window_trace` reads the trace they name."""
    ap.add_argument("--trace", help="replay this trace file whole (default: a --window of --full-trace)")
    ap.add_argument("--full-trace", default="/work/shared/traces/philly_pollux_jobs.csv")
    ap.add_argument("--window", type=float, default=42.0, help="start day of the 14-day window")
    ap.add_argument("--nodes", type=int, default=64)
    ap.add_argument("--gpus-per-node", type=int, default=8)


def read_trace_or_refuse(path: str, ap: argparse.ArgumentParser | None = None) -> Trace:
    """The trace at ``path``; one it cannot read is ``ap``'s one-line error (exit 2) when a
    parser is given."""
    try:
        return read_trace(path)
    except TraceError as exc:
        if ap is None:
            raise
        ap.error(str(exc))


def window_trace(args: argparse.Namespace, ap: argparse.ArgumentParser | None = None) -> Trace:
    """The ``--trace`` file whole, or the ``--window`` of ``--full-trace`` (read as
    :func:`read_trace_or_refuse` reads)."""
    if args.trace:
        return read_trace_or_refuse(args.trace, ap)
    return window(read_trace_or_refuse(args.full_trace, ap), args.window)


def run_windows(full_path: str, starts: list[float], nodes: int = 64, policies: tuple[str, ...] = ("las",)) -> None:
    full = read_trace(full_path)
    print(f"\n14-day windows of {full_path}, {nodes}x8, {', '.join(policies)}, restart cost 60 s:")
    print(HEADER)
    for d in starts:
        trace = window(full, d)
        ref = reference(trace, nodes * 8, {})
        for policy in policies:
            r = replay(f"{full_path}@{d:g}d", nodes, 8, policy, "none", 60.0, trace=trace,
                       record_estimates=False)
            print(row(f"day {d:g}+14, {len(trace.jobs)} jobs, {policy}", r, ref), flush=True)


def pass_snapshot(n_queued: int = 10_000, n_nodes: int = 1_000, seed: int = 1) -> Snapshot:
    """1,000 8-GPU nodes, about half their GPUs held by running jobs, and
    10,000 queued jobs of Philly-like sizes in 12 workspaces."""
    rng = random.Random(seed)
    nodes = make_nodes(n_nodes, 8)
    sizes = [1] * 14 + [2, 4, 8, 16]
    active, out_nodes = [], []
    for k, n in enumerate(nodes):
        used = rng.choice([0, 2, 4, 6, 8])
        if used:
            j = Job(f"r{k}", f"ws{k % 12}", used, submitted_at=0.0, attained=rng.uniform(0, 1e6))
            active.append(ActiveJob(j, {n.name: tuple(range(used))}, rng.uniform(0, 1000)))
        out_nodes.append(type(n)(n.name, 8, tuple(range(used, 8)), n.labels))
    queue = QueueView.build(
        Job(f"q{i}", f"ws{rng.randrange(12)}", rng.choice(sizes), submitted_at=float(i),
            priority=rng.choice([0, 0, 0, 1])) for i in range(n_queued))
    est = HistoryEstimates()
    return Snapshot(now=2000.0, queue=queue, active=active, nodes=out_nodes, estimates=est)


def run_micro() -> None:
    snap = pass_snapshot()
    print(f"\none pass, {len(snap.queue):,} queued jobs, {len(snap.nodes):,} nodes, "
          f"{sum(len(n.free) for n in snap.nodes):,} free GPUs:")
    for name in ["fifo", "backfill", "fairshare", "las", "sjf"]:
        pol = make_policy(name)
        times = []
        for _ in range(5):
            t0 = time.process_time()
            d = pol.schedule(snap)
            times.append(time.process_time() - t0)
        print(f"  {name:<10} {1000 * statistics.median(times):7.1f} ms CPU (median of 5), "
              f"{len(d.admits)} admitted, {len(d.preempts)} preempted")


def run_insight_micro() -> None:
    """CPU time of the queue's insight (what ``GET /queue`` computes at each
    call: positions, reasons and the start-estimate projections) on the same
    snapshot, with a runtime history of 5,000 completed jobs."""
    from dataclasses import replace

    from flightbase_jobqueue.scheduling.insight import explain
    rng = random.Random(2)
    est = HistoryEstimates()
    sizes = [1] * 14 + [2, 4, 8, 16]
    for i in range(5000):
        est.observe(Job(f"h{i}", f"ws{rng.randrange(12)}", rng.choice(sizes)), rng.lognormvariate(8, 1.5))
    snap = replace(pass_snapshot(), estimates=est)
    print(f"\nqueue insight (GET /queue), {len(snap.queue):,} queued jobs, {len(snap.nodes):,} nodes:")
    for name in ["las", "fifo"]:
        pol = make_policy(name)
        times = []
        for _ in range(3):
            t0 = time.process_time()
            out = explain(snap, policy=pol)
            times.append(time.process_time() - t0)
        print(f"  {name:<10} {1000 * statistics.median(times):7.1f} ms CPU (median of 3), "
              f"{sum(1 for i in out if i.estimated_start is not None):,} estimates")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace", default="/work/shared/traces/philly_2017-10-01_14d_jobs.csv")
    ap.add_argument("--quick", action="store_true", help="replay only the first 3,000 jobs")
    ap.add_argument("--only", help="run only the replays whose label contains this text")
    ap.add_argument("--no-replays", action="store_true")
    ap.add_argument("--windows", default="",
                    help="comma-separated start days of 14-day windows of --full-trace to replay too")
    ap.add_argument("--full-trace", default="/work/shared/traces/philly_pollux_jobs.csv")
    ap.add_argument("--window-policies", default="las",
                    help="comma-separated policies to replay on each window (e.g. las,las-oracle)")
    args = ap.parse_args(argv)
    if not args.no_replays:
        run_replays(args.trace, 3000 if args.quick else None, args.only)
    if args.windows:
        run_windows(args.full_trace, [float(x) for x in args.windows.split(",") if x.strip()],
                    policies=tuple(p.strip() for p in args.window_policies.split(",") if p.strip()))
    if not args.only:
        run_micro()
        run_insight_micro()
    return 0


if __name__ == "__main__":
    sys.exit(main())

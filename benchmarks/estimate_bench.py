"""Start-estimate accuracy on Philly windows (issue #17, part 2).

    PYTHONPATH=services/jobqueue python benchmarks/estimate_bench.py \
        [--trace /work/shared/traces/philly_2017-10-01_14d_jobs.csv] \
        [--pollux /work/shared/traces/philly_pollux_jobs.csv --windows 40.56] [--baseline]

Replays each window (64 x 8 GPUs, ``--policy las --restart-cost 60`` by
default) through the real coordinator; the replay records every start
estimate the queue shows (at submission and at each change of queue
position) and compares it with the job's actual first start
(``flightbase_jobqueue.sim.replay.estimate_errors``).  ``--windows`` cuts
14-day windows out of the full Philly file, starting that many days after
its first submission (the ``--trace`` slice, 2017-10-01, starts on day
26.56; day 40.56 is the next fortnight), re-based to 0.  ``--baseline`` also replays each window with the previous estimator
(unconditional median runtimes, FIFO projection) for comparison; the
schedule itself is the same either way.  ``--draw-seeds 0,1,2,3,4`` replays each window
with each seed of the estimates' pseudo-random draws (``insight.DRAW_SEED``; 0 is the
service's) and ends with the spread over them: on a light window a few long waits can hang
on the draws of one or two bursts, so one seed's figure says little there.  Figures are
recorded in docs/benchmarks.md ("Start estimates").
"""

from __future__ import annotations

import argparse
import json
import sys

from flightbase_jobqueue.scheduling import insight
from flightbase_jobqueue.sim.replay import replay
from flightbase_jobqueue.sim.trace import Trace, read_trace
from flightbase_jobqueue.sim.trace import window as cut


def window(full: Trace, start_day: float, days: float) -> Trace:
    w = cut(full, start_day, days)
    if not w.jobs:
        raise SystemExit(f"error: no job in the window starting on day {start_day:g}")
    return w


def oracle(sets) -> None:
    """Diagnostic only: the estimates' remaining time becomes the true one."""
    from flightbase_jobqueue.scheduling import estimates
    durations = {j.id: j.duration for _, t in sets for j in t.jobs}
    plain = estimates.HistoryEstimates.remaining

    def remaining(self, job, ran, q=0.5):
        d = durations.get(job.id)
        return plain(self, job, ran, q) if d is None else max(0.0, d - ran)
    estimates.HistoryEstimates.remaining = remaining


def row(label: str, r: dict) -> str:
    e = r["estimates"]
    out = [f"{label:<34}{r['jobs']:>7,}{e['jobs']:>7,}"]
    for key in ("all", "waited_over_5min"):
        g = e[key]
        if not g["count"]:
            out.append(f"{'-':>8}{'-':>9}{'-':>9}{'-':>7}{'-':>7}{'-':>7}{'-':>7}{'-':>7}")
            continue
        out.append(f"{g['count']:>8,}{g['median_abs_error']:>9,.0f}{g['p90_abs_error']:>9,.0f}"
                   f"{100 * g['median_rel_error']:>6.0f}%{100 * g['within_25pct']:>6.0f}%"
                   f"{100 * g['median_rel_to_wait']:>6.0f}%{100 * g['within_25pct_of_wait']:>6.0f}%"
                   f"{100 * g['in_range']:>6.0f}%")
    out.append(f"{r['cpu_s']:>7.1f}")
    return "".join(out)


def spread(results: list[dict]) -> list[str]:
    """One line per window: the figures of the jobs that waited more than 5 min over the draw
    seeds replayed (the projection's; the median error and the median against the wait still
    ahead and against the whole wait, each as lowest / median / highest)."""
    out = ["over the draw seeds, jobs waiting > 5 min (lowest / median / highest): "
           "median error s; rel; rel w"]
    by: dict[str, list[dict]] = {}
    for r in results:
        if r["estimator"] == "projection" and r["estimates"]["waited_over_5min"]["count"]:
            by.setdefault(r["window"], []).append(r["estimates"]["waited_over_5min"])
    for name, gs in by.items():
        parts = []
        for key, pct in (("median_abs_error", False), ("median_rel_error", True), ("median_rel_to_wait", True)):
            v = sorted(g[key] for g in gs)
            f = (lambda x: f"{100 * x:.0f}%") if pct else (lambda x: f"{x:,.0f}")
            parts.append(f"{f(v[0])} / {f(v[(len(v) - 1) // 2])} / {f(v[-1])}")
        out.append(f"{name:<34}{len(gs):>3} seeds   " + "; ".join(parts))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace", default="/work/shared/traces/philly_2017-10-01_14d_jobs.csv")
    ap.add_argument("--pollux", default="/work/shared/traces/philly_pollux_jobs.csv",
                    help="the full Philly file the extra windows are cut from")
    ap.add_argument("--windows", default="40.56",
                    help="comma-separated start days of extra 14-day windows of --pollux ('' for none)")
    ap.add_argument("--days", type=float, default=14.0)
    ap.add_argument("--nodes", type=int, default=64)
    ap.add_argument("--gpus-per-node", type=int, default=8)
    ap.add_argument("--policy", default="las")
    ap.add_argument("--restart-cost", type=float, default=60.0)
    ap.add_argument("--limit-jobs", type=int, default=None)
    ap.add_argument("--quotas", default="none",
                    help="per-workspace quotas, as the replay's --quotas (none, proportional, equal)")
    ap.add_argument("--baseline", action="store_true", help="also measure the previous estimator")
    ap.add_argument("--oracle-runtimes", action="store_true",
                    help="diagnostic: the projection is told every job's true remaining time (the "
                         "scheduler is not); what error is left comes from the projection itself")
    ap.add_argument("--start-day", type=float, default=None,
                    help="replay only --days days of --trace from this day (with --days)")
    ap.add_argument("--draw-seeds", default="0", metavar="LIST",
                    help="comma-separated seeds of the estimates' pseudo-random draws (0: the service's); "
                         "each window is replayed with each, then the spread over them is printed")
    ap.add_argument("--json", action="store_true", help="print the estimate figures as JSON")
    args = ap.parse_args(argv)
    try:
        seeds = [int(x) for x in args.draw_seeds.split(",") if x.strip()]
    except ValueError:
        ap.error("--draw-seeds: comma-separated whole numbers, e.g. 0,1,2")
    if not seeds or any(x < 0 for x in seeds):
        ap.error("--draw-seeds: at least one seed, each 0 or more")
    main_trace = read_trace(args.trace, args.limit_jobs)
    name = args.trace.rsplit("/", 1)[-1].removesuffix("_jobs.csv")
    if args.start_day is not None:
        main_trace = window(main_trace, args.start_day, args.days)
        name = f"{name} day {args.start_day:g} +{args.days:g}d"
    sets = [(name, main_trace)]
    days = [float(d) for d in args.windows.split(",") if d.strip()]
    if days:
        full = read_trace(args.pollux)
        for d in days:
            w = window(full, d, args.days)
            if args.limit_jobs:
                w = Trace(w.jobs[:args.limit_jobs], w.rounded_up)
            sets.append((f"philly day {d:g} +{args.days:g}d", w))
    if args.oracle_runtimes:
        oracle(sets)
    results = []
    if not args.json:
        print(f"{args.nodes}x{args.gpus_per_node} {args.policy}, restart cost {args.restart_cost:g} s, "
              f"quotas {args.quotas}; "
              f"errors in s; rel = median |error| / wait still ahead; rel w, <=25% w = the same against the "
              f"job's whole wait; in range = actual start within [earliest, latest]")
        print(f"{'':<34}{'':>7}{'':>7}{'every estimate shown':^61}{'jobs waiting > 5 min':^61}")
        head = f"{'n':>8}{'median':>9}{'p90':>9}{'rel':>7}{'<=25%':>7}{'rel w':>7}{'<=25%w':>7}{'range':>7}"
        print(f"{'window / estimator':<34}{'jobs':>7}{'shown':>7}{head}{head}{'cpu s':>7}")
    for name, trace in sets:
        for baseline in ((False, True) if args.baseline else (False,)):
            # (The previous estimator draws nothing: one seed is all of it.)
            for seed in (seeds[:1] if baseline else seeds):
                insight.DRAW_SEED = seed
                try:
                    r = replay(name, args.nodes, args.gpus_per_node, args.policy, args.quotas,
                               restart_cost=args.restart_cost, trace=trace, record_estimates=True,
                               baseline_estimates=baseline)
                finally:
                    insight.DRAW_SEED = 0
                label = f"{name}{' (before)' if baseline else ''}{f' draws {seed}' if len(seeds) > 1 else ''}"
                results.append({"window": name, "estimator": "before" if baseline else "projection",
                                "draw_seed": seed, "jobs": r["jobs"], "queue_delay_p99": r["queue_delay_p99"],
                                "estimates": r["estimates"], "cpu_s": r["cpu_s"]})
                if not args.json:
                    print(row(label, r), flush=True)
    if len(seeds) > 1 and not args.json:
        for line in spread(results):
            print(line)
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())

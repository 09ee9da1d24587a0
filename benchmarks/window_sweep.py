"""Every 14-day window of the Philly trace against the SRTF reference (#17 parts 3 and 4).

    PYTHONPATH=services/jobqueue python benchmarks/window_sweep.py [--first 8 --last 91 --step 1] \
        [--jobs 2] [--option min_run=4500] [--json]

Replays the window starting on each day from ``--first`` to ``--last`` (every ``--step`` days)
of ``--full-trace``, cut as ``flightbase bench replay --start-day`` cuts it
(``sim/trace.py`` ``window``), with ``--policy`` (default ``las``, the platform's default) at
64 x 8 GPUs and a 60 s restart cost, and the preemptive SRTF reference on the same jobs
(``sim/reference.py``: knows durations, pools all GPUs, free restarts). One row per window:
its jobs, average JCT over the reference's, preemptions per job; then how many windows miss
issue 17's targets (at most 1.05x the reference, at most 0.25 preemptions per job) and which.
``--option NAME=VALUE`` (repeatable, VALUE as JSON) sets a policy option, for trying one on
every window at once. Windows run in ``--jobs`` processes. The days before 8 hold too few
jobs to say anything (days 0-14: 22 jobs). Figures in docs/benchmarks.md ("Every window").
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor

from flightbase_jobqueue.sim.replay import replay
from flightbase_jobqueue.sim.trace import read_trace, window

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from replay_bench import parse_options  # noqa: E402

JCT_TARGET = 1.05
PREEMPTION_BUDGET = 0.25


def one(args: tuple[str, float, str, dict, int, float]) -> dict:
    path, start, policy, options, nodes, restart = args
    c0 = time.process_time()
    trace = window(read_trace(path), start)
    r = replay(f"{path}@{start:g}d", nodes, 8, policy, "none", restart, trace=trace, policy_options=options or None,
               with_reference=True)
    return {"start_day": start, "jobs": r["jobs"], "avg_jct": round(r["avg_jct"], 1),
            "reference_avg_jct": round(r["reference"]["avg_jct"], 1), "vs_reference": round(r["vs_reference"], 4),
            "preemptions_per_job": round(r["preemptions_per_job"], 4), "cpu_s": round(time.process_time() - c0, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full-trace", default="/work/shared/traces/philly_pollux_jobs.csv")
    ap.add_argument("--first", type=float, default=8.0)
    ap.add_argument("--last", type=float, default=91.0)
    ap.add_argument("--step", type=float, default=1.0)
    ap.add_argument("--policy", default="las")
    ap.add_argument("--option", action="append", default=[], metavar="NAME=VALUE")
    ap.add_argument("--nodes", type=int, default=64)
    ap.add_argument("--restart-cost", type=float, default=60.0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    try:
        options = parse_options(args.option)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.step <= 0 or args.last < args.first:
        print("error: --step must be positive and --last at least --first", file=sys.stderr)
        return 2
    starts, d = [], args.first
    while d <= args.last + 1e-9:
        starts.append(round(d, 6))
        d += args.step
    work = [(args.full_trace, s, args.policy, options, args.nodes, args.restart_cost) for s in starts]
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        rows = list(pool.map(one, work))
    over_jct = [r["start_day"] for r in rows if r["vs_reference"] > JCT_TARGET]
    over_budget = [r["start_day"] for r in rows if r["preemptions_per_job"] > PREEMPTION_BUDGET]
    summary = {"windows": len(rows), "policy": args.policy, "options": options,
               "over_jct_target": over_jct, "over_preemption_budget": over_budget,
               "max_vs_reference": max(r["vs_reference"] for r in rows),
               "max_preemptions_per_job": max(r["preemptions_per_job"] for r in rows),
               "cpu_s": round(sum(r["cpu_s"] for r in rows), 1)}
    if args.json:
        print(json.dumps({"rows": rows, "summary": summary}))
        return 0
    print(f"{args.policy} {options or ''} {args.nodes}x8 restart {args.restart_cost:g} s, windows of 14 days of "
          f"{args.full_trace}")
    print(" day   jobs  vs SRTF  preemptions/job")
    for r in rows:
        flags = ("  > 1.05" if r["vs_reference"] > JCT_TARGET else "") + (
            "  > 0.25" if r["preemptions_per_job"] > PREEMPTION_BUDGET else "")
        print(f"{r['start_day']:5g} {r['jobs']:6,} {r['vs_reference']:7.3f} {r['preemptions_per_job']:8.3f}{flags}")
    print(f"{len(rows)} windows; over 1.05x: {len(over_jct)} {over_jct}; over 0.25 per job: {len(over_budget)} "
          f"{over_budget}; at most {summary['max_vs_reference']:.3f}x and {summary['max_preemptions_per_job']:.3f} "
          f"per job; {summary['cpu_s']:,} CPU s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

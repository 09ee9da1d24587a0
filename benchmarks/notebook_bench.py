"""Notebooks and gang trainings together: a replay with interactive sessions,
with and without head-of-line rule 5 (a notebook lease may not push back a
job ahead of it that waits for GPUs; see docs/scheduling.md).

"Without" switches the rule off in this process only (the pass notes no
blocked job, so no lease is ever held back), which is how the scheduler
behaved before the rule.  Prints one table row per run (markdown), and the
JSON of every run with ``--json``.

    PYTHONPATH=services/jobqueue .venv/bin/python benchmarks/notebook_bench.py \\
        --trace /work/shared/traces/philly_2017-10-01_14d_jobs.csv --notebooks-per-hour 10

``--option NAME=VALUE`` (repeatable) sets a policy option, e.g. ``preemption_budget=0.24``.
``--seeds 0,1,2,3`` replays each seed of the notebook arrivals (with ``--rule5 on``, only the
committed rule) and ends with each figure's mean and range over them: on an overloaded cluster
one replay moves by a few percent from any change that reorders a few decisions, more than
many changes are worth, so compare them over seeds (docs/benchmarks.md, "Notebooks and gang
trainings").
"""

from __future__ import annotations

import argparse
import json
import sys

from flightbase_jobqueue.scheduling import core
from flightbase_jobqueue.sim.replay import replay

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from replay_bench import parse_options  # noqa: E402


def run(args, guard: bool, seed: int) -> dict:
    original = core.PassState.note_blocked
    if not guard:
        core.PassState.note_blocked = lambda self, job, verdict=core.NO_QUOTA: None
    try:
        return replay(args.trace, args.nodes, args.gpus_per_node, args.policy,
                      restart_cost=args.restart_cost, limit_jobs=args.limit_jobs,
                      notebooks_per_hour=args.notebooks_per_hour, notebook_minutes=args.notebook_minutes,
                      idle_timeout_minutes=args.idle_timeout_minutes, seed=seed,
                      policy_options=args.options or None)
    finally:
        core.PassState.note_blocked = original


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace", required=True)
    ap.add_argument("--nodes", type=int, default=64)
    ap.add_argument("--gpus-per-node", type=int, default=8)
    ap.add_argument("--policy", default="las")
    ap.add_argument("--restart-cost", type=float, default=60.0)
    ap.add_argument("--limit-jobs", type=int, default=None)
    ap.add_argument("--notebooks-per-hour", type=float, default=10.0)
    ap.add_argument("--notebook-minutes", type=float, default=60.0)
    ap.add_argument("--idle-timeout-minutes", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seeds", default=None, metavar="LIST",
                    help="comma-separated seeds, each replayed (default: --seed alone)")
    ap.add_argument("--rule5", choices=("both", "on", "off"), default="both",
                    help="replay with head-of-line rule 5 on, off, or both (default)")
    ap.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                    help="a policy option (VALUE as JSON), e.g. preemption_budget=0.24")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    try:
        args.options = parse_options(args.option)
        seeds = [int(x) for x in args.seeds.split(",")] if args.seeds is not None else [args.seed]
    except ValueError as exc:
        ap.error(f"--seeds: {exc}" if "invalid literal" in str(exc) else str(exc))
    guards = {"both": (False, True), "on": (True,), "off": (False,)}[args.rule5]
    print("| seed | rule 5 | notebooks | nb wait mean | nb p95 | nb max | gang wait mean | gang p95 | gang max "
          "| 1-GPU wait mean | 1-GPU max | avg JCT (trace jobs) | preemptions | per trace job |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    out = []
    rows: dict[bool, list[tuple[float, ...]]] = {g: [] for g in guards}
    for seed in seeds:
        for guard in guards:
            r = run(args, guard, seed)
            r["seed"], r["rule5"] = seed, guard
            out.append(r)
            nb, gang, one = r["waits"]["notebooks"], r["waits"]["gang_jobs"], r["waits"]["one_gpu_jobs"]
            row = (nb["mean"], nb["p95"], gang["mean"], one["mean"], r["avg_jct"], r["preemptions"],
                   r["preemptions_per_job"])
            rows[guard].append(row)
            print(f"| {seed} | {'on' if guard else 'off'} | {nb['count']:,} | {nb['mean']:,.0f} | {nb['p95']:,.0f} | "
                  f"{nb['max']:,.0f} | {gang['mean']:,.0f} | {gang['p95']:,.0f} | {gang['max']:,.0f} | "
                  f"{one['mean']:,.0f} | {one['max']:,.0f} | {r['avg_jct']:,.0f} | {r['preemptions']:,} | "
                  f"{r['preemptions_per_job']:.3f} |", flush=True)
    if len(seeds) > 1:
        print("\nmean (range) over the seeds: nb wait mean | nb p95 | gang wait mean | 1-GPU wait mean "
              "| avg JCT | preemptions | per trace job")
        for guard, got in rows.items():
            cols = []
            for i, fmt in enumerate(("{:,.0f}",) * 6 + ("{:.3f}",)):
                v = [x[i] for x in got]
                cols.append(f"{fmt.format(sum(v) / len(v))} ({fmt.format(min(v))}-{fmt.format(max(v))})")
            print(f"rule 5 {'on' if guard else 'off'}: " + " | ".join(cols))
    if args.json:
        print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

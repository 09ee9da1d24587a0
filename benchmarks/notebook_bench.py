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
"""

from __future__ import annotations

import argparse
import json
import sys

from flightbase_jobqueue.scheduling import core
from flightbase_jobqueue.sim.replay import replay

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from replay_bench import parse_options  # noqa: E402


def run(args, guard: bool) -> dict:
    original = core.PassState.note_blocked
    if not guard:
        core.PassState.note_blocked = lambda self, job, verdict=core.NO_QUOTA: None
    try:
        return replay(args.trace, args.nodes, args.gpus_per_node, args.policy,
                      restart_cost=args.restart_cost, limit_jobs=args.limit_jobs,
                      notebooks_per_hour=args.notebooks_per_hour, notebook_minutes=args.notebook_minutes,
                      idle_timeout_minutes=args.idle_timeout_minutes, seed=args.seed,
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
    ap.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                    help="a policy option (VALUE as JSON), e.g. preemption_budget=0.24")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    try:
        args.options = parse_options(args.option)
    except ValueError as exc:
        ap.error(str(exc))
    print("| rule 5 | notebooks | nb wait mean | nb p95 | nb max | gang wait mean | gang p95 | gang max "
          "| 1-GPU wait mean | 1-GPU max | avg JCT (trace jobs) | preemptions |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    out = []
    for guard in (False, True):
        r = run(args, guard)
        out.append(r)
        nb, gang, one = r["waits"]["notebooks"], r["waits"]["gang_jobs"], r["waits"]["one_gpu_jobs"]
        print(f"| {'on' if guard else 'off'} | {nb['count']:,} | {nb['mean']:,.0f} | {nb['p95']:,.0f} | "
              f"{nb['max']:,.0f} | {gang['mean']:,.0f} | {gang['p95']:,.0f} | {gang['max']:,.0f} | "
              f"{one['mean']:,.0f} | {one['max']:,.0f} | {r['avg_jct']:,.0f} | {r['preemptions']:,} |",
              flush=True)
    if args.json:
        print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

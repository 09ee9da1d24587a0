"""``flightbase bench replay``: replay a GPU job trace through the scheduler.

``add_arguments(parser)`` and ``run(args) -> int`` plug into the
``flightbase`` console script; ``main(argv)`` is the stand-alone entry
point (``python -m flightbase_jobqueue.sim``).  Bad arguments or a bad file
exit with status 2 and one line on stderr, never a stack trace.

Without ``--policy`` the replay uses the platform's default policy
(``scheduling.policies.DEFAULT_POLICY``, what the jobqueue runs when nothing
is configured).  The ``--json`` keys, their units and meanings are listed in
docs/scheduling.md ("The replay command"); ``tests/scheduling/test_replay_cli.py``
checks that list against the output.
"""

from __future__ import annotations

import argparse
import json
import sys

from ..scheduling.policies import DEFAULT_POLICY, UnknownPolicy
from .replay import QUOTA_MODES, SimulationStuck, format_report, policy_names, replay
from .trace import TraceError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trace", required=True, help="trace CSV (job_id,submit_time,num_gpus,duration,group,...)")
    parser.add_argument("--nodes", type=int, required=True, help="number of GPU nodes")
    parser.add_argument("--gpus-per-node", type=int, required=True, help="GPUs per node")
    parser.add_argument("--policy", default=DEFAULT_POLICY,
                        help=f"scheduling policy: {', '.join(policy_names())} (sjf-oracle and las-oracle know true durations); "
                             f"default: the platform's default, {DEFAULT_POLICY}")
    parser.add_argument("--quotas", choices=QUOTA_MODES, default="none",
                        help="per-workspace guaranteed quotas (default: none, one shared pool)")
    parser.add_argument("--no-borrowing", action="store_true",
                        help="hard quotas: a workspace never runs above its quota")
    parser.add_argument("--restart-cost", type=float, default=0.0,
                        help="seconds a job loses each time it resumes after a preemption")
    parser.add_argument("--limit-jobs", type=int, default=None, help="replay only the first K jobs")
    parser.add_argument("--start-day", type=float, default=None,
                        help="replay only the jobs submitted from this day of the trace (days after its first "
                             "submission) for --days days, as the held-out windows of docs/benchmarks.md are cut")
    parser.add_argument("--days", type=float, default=None,
                        help="length of the --start-day window in days (default 14; alone: from day 0)")
    parser.add_argument("--reference", action="store_true",
                        help="also replay the preemptive shortest-remaining-time reference (every duration known, "
                             "all GPUs pooled, free restarts) and report the average JCT's ratio to it")
    parser.add_argument("--notebooks-per-hour", type=float, default=0.0,
                        help="interactive sessions: notebook GPU leases arriving per hour (Poisson, "
                             "non-preemptible, length unknown to the scheduler); default 0")
    parser.add_argument("--notebook-minutes", type=float, default=60.0,
                        help="mean time a notebook is in use before it goes idle (exponential)")
    parser.add_argument("--idle-timeout-minutes", type=float, default=60.0,
                        help="an idle notebook is culled (its lease ends) this long after its last use")
    parser.add_argument("--seed", type=int, default=0, help="seed of the notebook arrivals")
    parser.add_argument("--estimates", action="store_true",
                        help="also record the start estimate each job was shown (at submission and at each change "
                             "of its place) and report its error against the actual start (the 'estimates' part of "
                             "the output); slow: the queue's projection runs at each change")
    parser.add_argument("--json", action="store_true",
                        help="print the figures as JSON (every key: docs/scheduling.md, \"The replay command\")")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2 (argparse's own code)
        self.exit(2, f"{self.prog}: error: {message}\n")


def run(args: argparse.Namespace) -> int:
    if args.limit_jobs is not None and args.limit_jobs < 1:
        print("error: --limit-jobs must be at least 1", file=sys.stderr)
        return 2
    try:
        result = replay(args.trace, args.nodes, args.gpus_per_node, args.policy, args.quotas,
                        args.restart_cost, borrowing=not args.no_borrowing, limit_jobs=args.limit_jobs,
                        notebooks_per_hour=args.notebooks_per_hour, notebook_minutes=args.notebook_minutes,
                        idle_timeout_minutes=args.idle_timeout_minutes, seed=args.seed,
                        record_estimates=args.estimates,
                        start_day=args.start_day if args.start_day is not None or args.days is None else 0.0,
                        days=14.0 if args.days is None else args.days, with_reference=args.reference)
    except (TraceError, UnknownPolicy, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except SimulationStuck as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(format_report(result))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="flightbase bench replay", description=__doc__.splitlines()[0])
    add_arguments(parser)
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    return run(args)


def add_replay_parser(bench_sub) -> None:
    """``flightbase bench replay``: the client's CLI finds this through the server's
    ``flightbase.commands`` entry point ``bench.replay`` (pyproject.toml)."""
    replay_parser = bench_sub.add_parser("replay", help="replay a GPU cluster trace in simulated time")
    add_arguments(replay_parser)
    replay_parser.set_defaults(func=run)

"""What node boundaries alone cost the SRTF reference, when jobs move for free (issue #17, part 4).

    PYTHONPATH=services/jobqueue python benchmarks/node_srtf_bench.py --window 42
    PYTHONPATH=services/jobqueue python benchmarks/node_srtf_bench.py \
        --trace /work/shared/traces/philly_2017-10-01_14d_jobs.csv

The reference of ``sim/reference.py`` (preemptive shortest-remaining-GPU-seconds first, told
every duration, free restarts) pools all GPUs. This replays the same rule on ``--nodes`` nodes
of ``--gpus-per-node`` GPUs as well (``srtf_reference(..., gpus_per_node=G)``: a job of up to
one node's GPUs on one node, best fit; a bigger one on whole nodes; every placement made afresh
at each arrival and end, so a running job may move to another node at no cost) and prints both
averages: their ratio is what node boundaries cost a scheduler that could move jobs for free.
Figures in docs/benchmarks.md ("What knowing durations is worth").
"""

from __future__ import annotations

import argparse
import sys
import time

from flightbase_jobqueue.sim.reference import srtf_reference

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from replay_bench import add_window_arguments, window_trace  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_window_arguments(ap)
    args = ap.parse_args(argv)
    trace = window_trace(args, ap)
    total, n = args.nodes * args.gpus_per_node, len(trace.jobs)
    cpu0 = time.process_time()
    pooled = srtf_reference(trace.jobs, total)
    on_nodes = srtf_reference(trace.jobs, total, gpus_per_node=args.gpus_per_node)
    print(f"{args.trace or f'{args.full_trace} day {args.window:g}+14'}: {n:,} jobs")
    print(f"SRTF pooled ({total} GPUs): avg JCT {pooled['avg_jct']:,.0f} s, "
          f"{pooled['preemptions'] / max(1, n):.2f} preemptions per job")
    print(f"SRTF on {args.nodes}x{args.gpus_per_node}, free moves: avg JCT {on_nodes['avg_jct']:,.0f} s "
          f"({on_nodes['avg_jct'] / pooled['avg_jct']:.4f}x pooled), "
          f"{on_nodes['preemptions'] / max(1, n):.2f} preemptions per job; CPU {time.process_time() - cpu0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

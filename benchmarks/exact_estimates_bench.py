"""Whether the queue's projection makes the pass it projects (issue #17, part 2).

    PYTHONPATH=services/jobqueue python benchmarks/exact_estimates_bench.py \
        [--policies fifo,backfill,sjf,fairshare,las] [--seeds 8] [--quotas proportional,none] [--json]

Each replay: 60 jobs of 1, 2, 4 or 8 GPUs (1 twice as likely) in three workspaces, all
submitted at 0, each declaring its true runtime (100-5,000 s, ``max_runtime``), on 2 x 8 GPUs,
through the real coordinator and policy (``sim.replay.simulate``). With every runtime known and
no job arriving later, the start a projection shows is the job's actual first start whenever
the projection does what the passes will do; every estimate the queue shows (at submission and
at each change of position, ``EstimateRecorder``) that is not is counted, with the first of
them. Quotas: ``proportional`` (each workspace's guarantee in proportion to its demand,
borrowing on: reclaims happen) or ``none``. The tests replay a few of these
(``tests/scheduling/test_backfill_projection.py``, ``test_projection_follows_the_pass.py``);
docs/benchmarks.md ("The projection follows the pass") has the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from flightbase_jobqueue.sim.replay import exactness_replay

POLICIES = ("fifo", "backfill", "sjf", "fairshare", "las")
QUOTAS = ("proportional", "none")


def replay(policy: str, seed: int, quotas: str) -> dict:
    """One all-at-once replay (``sim.replay.exactness_replay``): estimates shown, how many are
    not the actual start, the first of them."""
    t0 = time.process_time()
    shown, wrong, preemptions = exactness_replay(policy, seed, quotas)
    return {"policy": policy, "seed": seed, "quotas": quotas, "shown": shown, "wrong": len(wrong),
            "preemptions": preemptions, "first_wrong": wrong[0] if wrong else None,
            "cpu_s": round(time.process_time() - t0, 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--policies", default=",".join(POLICIES))
    ap.add_argument("--seeds", type=int, default=8, help="seeds 0 .. N-1")
    ap.add_argument("--quotas", default=",".join(QUOTAS))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    policies = [p for p in args.policies.split(",") if p]
    quotas = [q for q in args.quotas.split(",") if q]
    for name, given, known in (("--policies", policies, POLICIES), ("--quotas", quotas, QUOTAS)):
        bad = [x for x in given if x not in known]
        if bad or not given:
            print(f"error: {name}: expected some of {', '.join(known)}, got {', '.join(bad) or 'none'}",
                  file=sys.stderr)
            return 2
    if args.seeds < 1:
        print("error: --seeds: expected at least 1", file=sys.stderr)
        return 2
    rows = []
    for q in quotas:
        for policy in policies:
            for seed in range(args.seeds):
                r = replay(policy, seed, q)
                rows.append(r)
                if not args.json:
                    fw = r["first_wrong"]
                    first = "" if fw is None else f"  first wrong: {fw[0]} shown at {fw[1]:g}: {fw[2]} for {fw[3]:g}"
                    print(f"{q:12s} {policy:9s} seed {seed}: {r['wrong']:4d} of {r['shown']:4d} wrong, "
                          f"{r['preemptions']} preemptions, {r['cpu_s']:.1f} s CPU{first}", flush=True)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print()
    for q in quotas:
        for policy in policies:
            mine = [r for r in rows if r["quotas"] == q and r["policy"] == policy]
            print(f"{q:12s} {policy:9s} exact replays {sum(r['wrong'] == 0 for r in mine)}/{len(mine)}, "
                  f"wrong estimates {sum(r['wrong'] for r in mine)} of {sum(r['shown'] for r in mine)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""CPU of one queue projection (``scheduling.insight.explain``) and one scheduling pass on a long queue (#17 part 6).

``GET /queue``, ``GET /jobs`` and ``GET /jobs/{id}`` of a queued job show every queued job's
position, reason and estimated start, from one projection of the whole queue under the
scheduler's policy (``insight.explain``; seven runs of it under ``las``, five samples for the estimate and two for
its range), shared by requests (``insight_cache.py``). During the scale bench's drain
(``scale_bench.py``: Kueue's baseline, 30 workspaces, thousands queued) its probes read a
queued job twice a second, so the projection's cost on a long queue is part of the service's
CPU. This measures it alone, in process, on a state like that drain's:

- one node of 600 slots (the scale bench's), all held by running workloads of Kueue's three
  sizes (1, 5 and 20 slots; 200 ms, 500 ms and 1 s) in 30 workspaces with quota 20 and a
  borrowing limit of 100;
- ``--queued`` jobs queued, in Kueue's mix (350 small, 100 medium, 50 large per queue, with
  Kueue's priorities halved as the scale bench submits them: the large ones rank first),
  submitted 10 ms apart;
- runtime history: each size's runtime observed 20 times per workspace, so the projection
  knows how long jobs run (as the service does after its first completions).

    PYTHONPATH=services/jobqueue .venv/bin/python benchmarks/insight_bench.py [--queued 1000,3000,6000] [--repeat 5]

Prints, per queue length, the median CPU seconds of one ``explain`` (``time.process_time``),
how many jobs it gave an estimated start, and the CPU of one pass of the ``las`` policy over
the same state (``LasPolicy.schedule``: the scheduler runs one every 0.2 s or so under load):
the first (it ranks the whole queue) and the median of the later ones (the policy keeps its
ranking from pass to pass and applies what changed: here nothing); ``--json`` for the numbers
alone; ``--policy`` another policy than ``las`` (its pass and its projection); ``--lease`` puts a notebook's GPU lease at the end of the queue (the pass used to walk
the whole queue then, see docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time

from flightbase_jobqueue.scheduling import insight
from flightbase_jobqueue.scheduling.estimates import HistoryEstimates
from flightbase_jobqueue.scheduling.policies import UnknownPolicy, make_policy
from flightbase_jobqueue.scheduling.queueview import QueueView
from flightbase_jobqueue.scheduling.types import ActiveJob, Job, Node, Snapshot, WorkspaceLimits

# (name, slots, seconds, per queue, priority): Kueue's, its priorities halved as the scale bench does
SIZES = (("small", 1, 0.2, 350, 25), ("medium", 5, 0.5, 100, 50), ("large", 20, 1.0, 50, 100))
SLOTS = 600
WORKSPACES = 30


def state(queued: int, seed: int = 1, now: float = 1000.0, lease: bool = False) -> Snapshot:
    """The snapshot described in the module docstring; with ``lease``, a notebook's GPU lease
    (open-ended, one slot) queued after the rest."""
    rng = random.Random(seed)
    names = [f"ws{i:02d}" for i in range(WORKSPACES)]
    est = HistoryEstimates()
    for ws in names:
        for _, gpus, secs, _, _ in SIZES:
            for k in range(20):
                est.observe(Job(id=f"h-{ws}-{gpus}-{k}", workspace=ws, gpus=gpus), secs * rng.uniform(0.9, 1.1))
    mix = [size for size in SIZES for _ in range(size[3])]
    active: list[ActiveJob] = []
    in_use: dict[str, int] = {}
    slot = 0
    n = 0
    while True:
        _, gpus, _, _, prio = rng.choice(mix)
        if slot + gpus > SLOTS:
            break
        ws = names[n % WORKSPACES]
        job = Job(id=f"run{n}", workspace=ws, gpus=gpus, submitted_at=now - 5.0, enqueued_at=now - 5.0,
                  priority=prio)
        active.append(ActiveJob(job, {"node": tuple(range(slot, slot + gpus))}, now - rng.uniform(0.0, 0.2)))
        in_use[ws] = in_use.get(ws, 0) + gpus
        slot += gpus
        n += 1
    jobs = []
    for i in range(queued):
        _, gpus, _, _, prio = rng.choice(mix)
        t = now - queued * 0.01 + i * 0.01
        jobs.append(Job(id=f"q{i}", workspace=names[i % WORKSPACES], gpus=gpus, submitted_at=t, enqueued_at=t,
                        priority=prio))
    if lease:
        jobs.append(Job(id="nb", workspace=names[3], gpus=1, kind="lease", preemptible=False, submitted_at=now,
                        enqueued_at=now))
    free = tuple(range(slot, SLOTS))
    limits = {ws: WorkspaceLimits(quota=20, borrowing_limit=100) for ws in names}
    return Snapshot(now=now, queue=QueueView.build(jobs), active=active, nodes=[Node("node", SLOTS, free)],
                    limits=limits, estimates=est, in_use=in_use)


def measure(queued: int, repeat: int, lease: bool = False, policy_name: str = "las") -> dict:
    snap = state(queued, lease=lease)
    policy = make_policy(policy_name)
    times = []
    passes = []
    estimated = 0
    first = None
    for _ in range(repeat):
        c0 = time.process_time()
        policy.schedule(snap)
        if first is None:
            first = time.process_time() - c0
        else:
            passes.append(time.process_time() - c0)
        c0 = time.process_time()
        out = insight.explain(snap, policy=policy)
        times.append(time.process_time() - c0)
        estimated = sum(1 for i in out if i.estimated_start is not None)
    return {"queued": queued, "policy": policy_name, "lease": lease, "running": len(snap.active), "explain_cpu_s_median": round(statistics.median(times), 4),
            "explain_cpu_s_min": round(min(times), 4), "estimated": estimated,
            "pass_cpu_s_first": round(first, 5),
            "pass_cpu_s_median": round(statistics.median(passes), 5) if passes else None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--queued", default="1000,3000,6000", help="queue lengths, comma-separated")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--lease", action="store_true", help="a notebook lease queued after the rest")
    ap.add_argument("--policy", default="las", help="the scheduler's policy (its pass and its projection)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    try:
        sizes = [int(x) for x in args.queued.split(",") if x]
    except ValueError:
        print("error: --queued: comma-separated whole numbers", file=sys.stderr)
        return 2
    try:
        make_policy(args.policy)
    except UnknownPolicy as exc:
        print(f"error: --policy: {exc}", file=sys.stderr)
        return 2
    rows = [measure(q, max(1, args.repeat), args.lease, args.policy) for q in sizes]
    if args.json:
        print(json.dumps(rows))
    else:
        for r in rows:
            print(f"{r['policy']}: {r['queued']:>6} queued{' and a lease' if r['lease'] else ''}, {r['running']} running: one explain {1000 * r['explain_cpu_s_median']:.1f} ms "
                  f"CPU (min {1000 * r['explain_cpu_s_min']:.1f}), {r['estimated']} with an estimated start; "
                  f"one scheduling pass {1000 * r['pass_cpu_s_first']:.1f} ms first, "
                  f"{1000 * (r['pass_cpu_s_median'] or 0):.1f} ms later")
    return 0


if __name__ == "__main__":
    sys.exit(main())

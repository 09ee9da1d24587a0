"""Where a replay's average JCT loses to the preemptive SRTF reference (issue #17, part 4).

    PYTHONPATH=services/jobqueue python benchmarks/jct_gap_bench.py --window 42
    PYTHONPATH=services/jobqueue python benchmarks/jct_gap_bench.py \
        --trace /work/shared/traces/philly_2017-10-01_14d_jobs.csv

Replays one 14-day window (``--window DAY`` of ``--full-trace``, cut as
``replay_bench.py --windows`` does; or the ``--trace`` file as a whole) at
64 x 8 GPUs with ``--policy`` (default ``las``) and a 60 s restart cost,
and the reference (``sim/reference.py``: knows durations, pools all GPUs,
free restarts) on the same jobs, then prints:

- GPU-hours left idle while jobs were queued, and while some queued job
  would have fitted in the free GPUs pooled (what node boundaries and the
  policy's choices cost, at most);
- the tail of the time jobs spent not running (JCT - duration);
- JCT and first wait by job class (GPUs x true duration) against the
  reference, each class's share of the total gap, and its preemptions per
  job;
- for the class with the largest share (or ``--detail``'s): where its jobs' time after their
  first start went (running; queued again with enough GPUs free in all but
  none on one node; queued otherwise), which jobs preempted them, and why
  (moved to gather a node for a gang job, or stopped for a job of a lower
  level, or for a starving one);
- of that time queued again with enough GPUs free in all: the reason the policy gave the job
  at the pass before (keeping a node of its own, jobs being stopped for it, held back, or too
  few GPUs left at its turn), how much of it another job of its class waited the same way,
  and how much of it at least 3 nodes' worth of GPUs were free.

``--option NAME=VALUE`` (repeatable, VALUE as JSON) passes a policy option,
for trying one.  A diagnostic: it reads the simulator's state at every step,
so it costs about twice a plain replay.  Figures in docs/benchmarks.md
("Where the gap is").
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from collections import Counter

from flightbase_jobqueue.sim.reference import srtf_reference
from flightbase_jobqueue.sim.replay import _pct, make_nodes, make_replay_policy, replay_jobs, simulate

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from replay_bench import add_window_arguments, parse_options, window_trace  # noqa: E402


SIZES = ("1", "2-4", "5-8", ">8")  # what size_class and length_class give, in table order
LENGTHS = ("<10m", "<1h", "<6h", ">=6h")


def size_class(gpus: int) -> str:
    return "1" if gpus == 1 else "2-4" if gpus <= 4 else "5-8" if gpus <= 8 else ">8"


def length_class(seconds: float) -> str:
    return "<10m" if seconds < 600 else "<1h" if seconds < 3600 else "<6h" if seconds < 21600 else ">=6h"


def job_class(j) -> tuple[str, str]:
    """A trace job's (GPUs, length) class, as in the table."""
    return size_class(j.gpus), length_class(j.duration)


TOGETHER = "spread, with another of its class"  # keys of time queued again, spread
PLENTY = "spread, 3 nodes' worth free"


def spread_reason(reason: str | None) -> str:
    """What a job queued with enough GPUs free in all (but not on one node) was told by the
    pass before, from the words of ``las``'s reasons (policies/las.py)."""
    if reason is None:
        return "no reason recorded"
    if "keeping" in reason:
        return "keeping a node of its own"
    if "to stop" in reason:
        return "jobs being stopped for it"
    if "held back" in reason:
        return "held back for a starving job"
    return "too few GPUs left at its turn"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_window_arguments(ap)
    ap.add_argument("--policy", default="las")
    ap.add_argument("--restart-cost", type=float, default=60.0)
    ap.add_argument("--option", action="append", default=[], metavar="NAME=VALUE")
    ap.add_argument("--detail", metavar="GPUS,LENGTH",
                    help="the class to detail (e.g. '>8,>=6h'; default: the one with the largest share)")
    args = ap.parse_args(argv)
    detail = None
    if args.detail:
        detail = tuple(args.detail.split(",", 1))
        if len(detail) != 2 or detail[0] not in SIZES or detail[1] not in LENGTHS:
            ap.error(f"--detail: expected GPUS,LENGTH with GPUS one of {', '.join(SIZES)} and LENGTH one of "
                     f"{', '.join(LENGTHS)}")
    try:
        options = parse_options(args.option)
    except ValueError as exc:
        ap.error(str(exc))
    trace = window_trace(args, ap)
    tjobs = trace.jobs
    total = args.nodes * args.gpus_per_node
    ref = srtf_reference(tjobs, total, detail=True)
    jobs = replay_jobs(tjobs, args.policy)  # an oracle's declare their true durations
    by_id = {j.id: j for j in tjobs}
    names = [n.name for n in make_nodes(args.nodes, args.gpus_per_node)]
    # The class whose share of the gap is largest is only known at the end:
    # track every job's time after its first start by class of situation.
    after: Counter = Counter()  # (job id, "run" | "spread" | "queued") -> seconds
    idle = {"queued": 0.0, "fits": 0.0}
    last: dict = {}
    policy = make_replay_policy(args.policy, options)
    passes: dict = {}  # the last pass's decisions, for the reasons of the waiting jobs
    schedule = policy.schedule

    def recording(snap):
        passes["last"] = decisions = schedule(snap)
        return decisions

    object.__setattr__(policy, "schedule", recording)  # this instance only (a frozen dataclass)

    def observe(sim, now: float) -> None:
        if last:
            dt = now - last["t"]
            if last["queued"]:
                idle["queued"] += dt * last["free"]
            if last["fits"]:
                idle["fits"] += dt * last["free"]
            for key in last["keys"]:
                after[key] += dt
        used: Counter = Counter()
        for a in sim.store.active.values():
            for n, g in a.placement.items():
                used[n] += len(g)
        free_nodes = [args.gpus_per_node - used.get(n, 0) for n in names]
        free, most = sum(free_nodes), max(free_nodes)
        started = sim.backend.first_start
        keys = [(a.job.id, "run") for a in sim.store.active.values() if not a.stopping]
        smallest = None
        spread: list = []
        for j in sim.store.queue.jobs():
            smallest = j.gpus if smallest is None else min(smallest, j.gpus)
            if j.id in started:
                if free >= j.gpus > most:
                    spread.append(j)
                else:
                    keys.append((j.id, "queued"))
        if spread:
            waiting = passes["last"].waiting if "last" in passes else {}
            cls = {j.id: job_class(by_id[j.id]) for j in spread if j.id in by_id}
            together = Counter(cls.values())
            plenty = free >= 3 * args.gpus_per_node
            for j in spread:
                keys.append((j.id, "spread"))
                keys.append((j.id, "spread: " + spread_reason(waiting.get(j.id))))
                if together[cls.get(j.id)] > 1:
                    keys.append((j.id, TOGETHER))
                if plenty:
                    keys.append((j.id, PLENTY))
        last.update(t=now, free=free, queued=smallest is not None,
                    fits=smallest is not None and smallest <= free, keys=keys)

    cpu0 = time.process_time()
    sim = simulate(jobs, {j.id: j.duration for j in tjobs}, make_nodes(args.nodes, args.gpus_per_node),
                   policy, {},
                   restart_cost=args.restart_cost, observe=observe)
    backend = sim.backend
    jct = {jid: t - by_id[jid].submit_time for jid, t in backend.finished.items() if jid in by_id}
    preempted = Counter(jid for jid, _, _ in sim.store.preemptions)
    avg, ref_avg = statistics.fmean(jct.values()), ref["avg_jct"]
    n = len(tjobs)
    print(f"{args.trace or f'{args.full_trace} day {args.window:g}+14'}: {n:,} jobs, {args.nodes}x"
          f"{args.gpus_per_node}, {args.policy} {options or ''} restart {args.restart_cost:g} s")
    print(f"avg JCT {avg:,.0f} s, reference {ref_avg:,.0f} s: {avg / ref_avg:.3f}x; "
          f"{len(sim.store.preemptions) / n:.3f} preemptions per job; CPU {time.process_time() - cpu0:.0f} s")
    print(f"GPU-hours idle while jobs were queued: {idle['queued'] / 3600:,.0f}; while some queued job "
          f"fitted in the free GPUs pooled: {idle['fits'] / 3600:,.0f}; restarts cost "
          f"{sum(preempted.values()) * args.restart_cost / 3600:,.0f} GPU-h of waiting jobs' time")
    idle_by_job = sorted(jct[j.id] - j.duration for j in tjobs if j.id in jct)
    idle_long = sorted(jct[j.id] - j.duration for j in tjobs if j.id in jct and j.duration >= 21600)
    print(f"hours a job spent not running (queued first or again, restarts): p99 {_pct(idle_by_job, 99) / 3600:.1f}, "
          f"max {_pct(idle_by_job, 100) / 3600:.1f}; jobs of 6 h or more: p90 {_pct(idle_long, 90) / 3600:.1f}")
    rows: dict[tuple[str, str], list[float]] = {}
    for j in tjobs:
        if j.id not in jct or j.id not in ref["jct_by_job"]:
            continue
        r = rows.setdefault((size_class(j.gpus), length_class(j.duration)), [0, 0.0, 0.0, 0.0, 0.0, 0])
        r[0] += 1
        r[1] += jct[j.id]
        r[2] += ref["jct_by_job"][j.id]
        r[3] += backend.first_start[j.id] - j.submit_time
        r[4] += ref["start_by_job"].get(j.id, j.submit_time) - j.submit_time
        r[5] += preempted.get(j.id, 0)
    gap = sum(r[1] - r[2] for r in rows.values()) or 1.0
    print(f"\n{'GPUs':>5} {'length':>6} {'jobs':>6} {'JCT':>9} {'ref JCT':>9} {'ratio':>6} {'wait':>7} "
          f"{'ref wait':>8} {'gap share':>9} {'preempt/job':>11}")
    for k in sorted(rows, key=lambda k: (SIZES.index(k[0]), LENGTHS.index(k[1]))):
        r = rows[k]
        print(f"{k[0]:>5} {k[1]:>6} {r[0]:>6,} {r[1] / r[0]:>9,.0f} {r[2] / r[0]:>9,.0f} {r[1] / r[2]:>6.2f} "
              f"{r[3] / r[0]:>7,.0f} {r[4] / r[0]:>8,.0f} {100 * (r[1] - r[2]) / gap:>8.1f}% {r[5] / r[0]:>11.2f}")
    worst = detail or max(rows, key=lambda k: rows[k][1] - rows[k][2])
    members = {j.id for j in tjobs if (size_class(j.gpus), length_class(j.duration)) == worst}
    spent: Counter = Counter()
    for (jid, what), s in after.items():
        if jid in members:
            spent[what] += s
    m = len(members)
    if not m:
        print(f"\nclass {worst[0]} GPUs, {worst[1]}: no job of this window is in it")
        return 0
    print(f"\nclass {worst[0]} GPUs, {worst[1]} ({m} jobs), hours per job after the first start: running "
          f"{spent['run'] / 3600 / m:.1f}; queued again with enough GPUs free in all but not on one node "
          f"{spent['spread'] / 3600 / m:.1f}; queued otherwise {spent['queued'] / 3600 / m:.1f}")
    reasons = sorted(((k[len("spread: "):], v) for k, v in spent.items() if k.startswith("spread: ")),
                     key=lambda kv: -kv[1])
    if reasons:
        print("of that time queued again with enough GPUs free in all, hours per job by its reason: "
              + "; ".join(f"{k} {v / 3600 / m:.1f}" for k, v in reasons)
              + f"; with another job of its class waiting so {spent[TOGETHER] / 3600 / m:.1f}"
              + f"; with at least 3 nodes' worth of GPUs free {spent[PLENTY] / 3600 / m:.1f}")
    by: Counter = Counter()
    for jid, reason, _ in sim.store.preemptions:
        if jid in members:
            mo = re.search(r"for (\S+) \(", reason)
            p = by_id.get(mo.group(1)) if mo else None
            by[f"{size_class(p.gpus)} GPUs, {length_class(p.duration)}" if p else "other"] += 1
    print("its preemptions, by the class of the job they made room for: "
          + ", ".join(f"{k}: {v}" for k, v in by.most_common(6)))
    why: Counter = Counter()
    for jid, reason, _ in sim.store.preemptions:
        if jid in members:
            mo = re.search(r"level (-?\d+)\)", reason)
            why["moved to gather a node" if reason.startswith("moved") else
                "for a starving job" if mo and mo.group(1) == "-1" else
                f"for a level-{mo.group(1)} job" if mo else "other"] += 1
    print("its preemptions, by why: " + ", ".join(f"{k}: {v}" for k, v in why.most_common()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

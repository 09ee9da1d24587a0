"""The queue's projection and the las pass do work in proportion to what changes, not to
the queue's length at every event (#17 part 6; docs/scheduling.md, "What a projection
costs").  Counted in placement searches (``FreeMap.find``), which do not depend on the
machine: a projection that walked every queued job at each event (as it once did) makes
thousands of times more of them on the queue below."""

from __future__ import annotations

from flightbase_jobqueue.scheduling import insight
from flightbase_jobqueue.scheduling.estimates import HistoryEstimates
from flightbase_jobqueue.scheduling.placement import FreeMap
from flightbase_jobqueue.scheduling.policies import make_policy
from flightbase_jobqueue.scheduling.queueview import QueueView
from flightbase_jobqueue.scheduling.types import ActiveJob, Job, Node, Snapshot, WorkspaceLimits

SLOTS = 120


def kueue_like(queued: int) -> Snapshot:
    """One node of 120 slots, all held; a queue of 1-, 5- and 20-slot jobs where the big
    ones have the highest priority (they rank first under las, as Kueue's baseline
    submits them), in 6 workspaces with quotas; runtimes known from history."""
    now = 1000.0
    est = HistoryEstimates()
    sizes = [(1, 0.2, 25)] * 7 + [(5, 0.5, 50)] * 2 + [(20, 1.0, 100)]
    for w in range(6):
        for gpus, secs, _ in sizes[6:]:
            for k in range(5):
                est.observe(Job(id=f"h{w}-{gpus}-{k}", workspace=f"ws{w}", gpus=gpus), secs)
    active = [ActiveJob(Job(id=f"run{i}", workspace=f"ws{i % 6}", gpus=1, submitted_at=now - 5),
                        {"node": (i,)}, now - 0.1 * (i % 3)) for i in range(SLOTS)]
    jobs = []
    for i in range(queued):
        gpus, _, prio = sizes[i % len(sizes)]
        jobs.append(Job(id=f"q{i}", workspace=f"ws{i % 6}", gpus=gpus, priority=prio,
                        submitted_at=now - queued * 0.01 + i * 0.01))
    limits = {f"ws{w}": WorkspaceLimits(quota=20, borrowing_limit=100) for w in range(6)}
    return Snapshot(now=now, queue=QueueView.build(jobs), active=active, nodes=[Node("node", SLOTS, ())],
                    limits=limits, estimates=est)


def count_finds(monkeypatch, fn) -> int:
    calls = [0]
    real = FreeMap.find

    def find(self, job):
        calls[0] += 1
        return real(self, job)

    monkeypatch.setattr(FreeMap, "find", find)
    fn()
    monkeypatch.setattr(FreeMap, "find", real)
    return calls[0]


def test_a_projection_looks_at_the_jobs_it_starts_not_the_whole_queue_at_each_event(monkeypatch):
    snap = kueue_like(3000)
    policy = make_policy("las")
    out = []
    finds = count_finds(monkeypatch, lambda: out.extend(insight.explain(snap, policy=policy)))
    # the first 1,000 in the projection's order (its limit) get an estimate, after the running jobs end
    starts = [i.estimated_start for i in out if i.estimated_start is not None]
    assert len(out) == 3000 and len(starts) >= 1000 and all(s > snap.now for s in starts)
    # five projections (the estimate, its range and samples), each until those 1,000 have a start:
    # about one search per job started (7,165), where a walk over the queue at each event
    # made 92,757. (On a queue this long the pass's guaranteed sweep is not projected,
    # insight.GUARANTEED_SWEEP_QUEUE: with it, 13,362 searches for 13,341 starts, as each
    # workspace's jobs within its guarantee start first and more jobs start before las's first
    # 1,000.)
    assert finds < 10_000, finds


def test_the_guaranteed_sweep_costs_about_one_search_per_job_it_starts(monkeypatch):
    snap = kueue_like(1000)
    policy = make_policy("las")
    out = []
    finds = count_finds(monkeypatch, lambda: out.extend(insight.explain(snap, policy=policy)))
    assert sum(1 for i in out if i.estimated_start is not None) == 1000
    # One search per job and projection: the projections (the samples and the range's two)
    # place the 1,000 jobs, one search each (7,000 with five samples)
    projections = insight.SAMPLES + len(insight.RANGE_QUANTILES)
    assert finds < projections * 1_200, finds


def test_a_pass_with_nothing_free_does_not_search_a_placement_for_every_queued_job(monkeypatch):
    snap = kueue_like(1000)
    policy = make_policy("las")
    got = []
    finds = count_finds(monkeypatch, lambda: got.append(policy.schedule(snap)))
    dec = got[0]
    assert not dec.admits and not dec.preempts
    assert len(dec.waiting) == 1000
    assert dec.waiting["q9"].startswith("needs 20 GPUs on one node; 0 GPUs free")
    assert finds == 0, finds


def test_jobs_that_find_no_victim_open_to_them_are_not_each_searched_again_at_every_event(monkeypatch):
    """On one node of 8 GPUs, workspace ``a`` runs 8 one-GPU jobs within its guarantee of 8,
    past ``las``'s first level (victims by rank, but shielded by the quota), and workspace ``b``
    (no quota) has 200 short one-GPU jobs queued. At each event of the projection every ``b``
    job ranks above ``a``'s and may preempt, and none can. The projection now asks once per
    event and kind of job (GPUs, level, workspace...) and not again until GPUs change hands:
    under quotas on the Philly trace (docs/benchmarks.md, "Searches for victims") thousands of
    queued jobs each searched the running ones at every event, and an estimate took seconds."""
    from scheduling_factories import job, node, quota, running, snap

    now = 100_000.0
    active = [running(job(f"a{i}", 1, ws="a", max_runtime=110_000 + 1000 * i), {"n": [i]}) for i in range(8)]
    queued = [job(f"b{k}", 1, ws="b", t=99_000.0 + k, max_runtime=100) for k in range(200)]
    s = snap(queued, active, [node("n", total=8, free=[])], now=now, limits={"a": quota(8)})
    calls = [0]
    real = insight._preempt

    def counted(*a, **kw):
        calls[0] += 1
        return real(*a, **kw)

    monkeypatch.setattr(insight, "_preempt", counted)
    found = {i.job_id: i for i in insight.explain(s, policy=make_policy("las"))}
    # b's jobs start one after another as a's end (a's guarantee shields them from b)
    assert found["b0"].estimated_start == 110_000.0
    assert found["b1"].estimated_start == 110_100.0
    assert all(found[f"b{k}"].estimated_start >= 110_000.0 for k in range(200))
    # 295 searches for the five projections; one per job and event made 37,795
    assert calls[0] < 2_000, calls[0]

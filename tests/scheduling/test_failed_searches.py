"""A ``las`` pass remembers the victim searches that failed, so that a long queue does not
search the running jobs once per queued job (``_failed_before`` in policies/las.py). Under
quotas the victims open to a job depend on its workspace (another workspace's jobs within
their guarantee are shielded from it, its own are not) and on which workspaces run above
their guarantee, which an admission in the same pass can change. These tests hold the
memory to that: it must never keep a job from a victim it has, and it must still save the
searches (counted in ``PassState.find_victims`` calls, which do not depend on the machine)."""

from __future__ import annotations

from flightbase_jobqueue.scheduling.core import PassState
from flightbase_jobqueue.scheduling.estimates import HistoryEstimates
from flightbase_jobqueue.scheduling.types import Job

from scheduling_factories import decide, job, node, quota, running, snap

NOW = 100_000.0  # the running jobs started at 0: past min_run, past las's first level


def test_a_failed_search_of_one_workspace_does_not_keep_another_from_its_own_victims():
    """``c`` and ``b`` each run 4 one-GPU jobs within their guarantee of 4: shielded from
    ``a``. ``a1`` finds no victim. ``b_new``, at the same level, may still stop one of ``b``'s
    own long-running jobs. Until 2026-12-06 the pass remembered ``a1``'s failure by level
    alone, and ``b_new`` waited without a search."""
    active = [running(job(f"b{i}", 1, ws="b"), {"n": [i]}) for i in range(4)]
    active += [running(job(f"c{i}", 1, ws="c"), {"n": [4 + i]}) for i in range(4)]
    queue = [job("a1", 1, ws="a", t=90_000.0), job("b_new", 1, ws="b", t=90_001.0)]
    s = snap(queue, active, [node("n", total=8, free=[])], now=NOW, limits={"b": quota(4), "c": quota(4)})
    admits, preempts, d = decide("las", s)
    assert admits == {} and preempts == [("b0", "b_new")]
    assert d.waiting["a1"].endswith("0 GPUs free; service level 0"), d.waiting["a1"]


def test_a_workspace_going_further_over_its_guarantee_in_the_pass_opens_more_of_its_jobs():
    """``c`` holds 5 GPUs with a guarantee of 4: one of its jobs may be stopped for another
    workspace's, not two. ``a1`` (2 GPUs on one node) finds no victim (``d`` is within its
    guarantee). Then ``c_new`` starts on the one free GPU, and ``c`` holds 6: now two of its
    jobs may be stopped, and ``a2`` stops them. A memory of ``a1``'s failure that outlived the
    admission kept ``a2`` waiting (until 2026-12-06 the memory was forgotten only when a
    workspace went over its guarantee, not further over it)."""
    active = [running(job(f"c{i}", 1, ws="c"), {"n": [i]}) for i in range(5)]
    active += [running(job(f"d{i}", 1, ws="d"), {"n": [5 + i]}) for i in range(3)]
    queue = [job("a1", 2, ws="a", t=90_000.0), job("c_new", 1, ws="c", t=90_001.0),
             job("a2", 2, ws="a", t=90_002.0)]
    s = snap(queue, active, [node("n", total=8, free=[]), node("m", total=1)], now=NOW,
             limits={"c": quota(4), "d": quota(3)})
    admits, preempts, d = decide("las", s)
    assert admits == {"c_new": {"m": (0,)}}
    assert preempts == [("c0", "a2"), ("c1", "a2")]
    assert "waiting for 2 job(s) to stop" in d.waiting["a2"]
    assert "stop" not in d.waiting["a1"]


def test_under_quotas_a_gated_search_that_failed_is_not_made_again_for_each_job(monkeypatch):
    """``a`` runs 8 long one-GPU jobs within its guarantee of 8; ``b`` (no quota) has 200
    one-GPU jobs queued, with a history, so each search is gated (``expect_gate``). None can
    stop ``a``'s jobs. One search finds that: until 2026-12-06 a gated search under quotas was
    not remembered, and the pass made 200 (on the October slice at 64x8 with proportional
    quotas a replay took 891 CPU s instead of 103 s, docs/benchmarks.md)."""
    est = HistoryEstimates()
    for k in range(20):
        est.observe(Job(id=f"hb{k}", workspace="b", gpus=1), 100.0 + k)
        est.observe(Job(id=f"ha{k}", workspace="a", gpus=1), 200_000.0 + k)
    active = [running(job(f"a{i}", 1, ws="a"), {"n": [i]}) for i in range(8)]
    queue = [job(f"b{k}", 1, ws="b", t=90_000.0 + k) for k in range(200)]
    s = snap(queue, active, [node("n", total=8, free=[])], now=NOW, limits={"a": quota(8)}, estimates=est)
    calls = [0]
    real = PassState.find_victims

    def counted(self, *a, **kw):
        calls[0] += 1
        return real(self, *a, **kw)

    monkeypatch.setattr(PassState, "find_victims", counted)
    admits, preempts, d = decide("las", s)
    assert admits == {} and preempts == [] and len(d.waiting) == 200
    assert calls[0] == 1, calls[0]


def test_a_job_spared_a_search_goes_on_as_after_a_failed_one():
    """``x`` and ``y`` (one GPU each, level 0) may stop only jobs expected to do more than twice
    their own work (``expect_gate``); the running jobs of ``r`` are nearly done, so ``x``'s search
    fails, and ``y``'s (a higher gate: longer history) is not made. ``y`` is still within its
    ``swap_after`` wait (10 min), so after a failed search the pass wakes when that wait ends
    (small jobs become its victims then). Until 2026-12-06 a job spared the search skipped that
    too, and the pass woke hours later, at ``x``'s starvation limit."""
    est = HistoryEstimates()
    for k in range(20):
        est.observe(Job(id=f"ha{k}", workspace="a", gpus=1), 100_000.0 + k)
        est.observe(Job(id=f"hb{k}", workspace="b", gpus=1), 200_000.0 + k)
        est.observe(Job(id=f"hr{k}", workspace="r", gpus=1), 100_500.0 + k)
    active = [running(job(f"r{i}", 1, ws="r"), {"n": [i]}) for i in range(8)]
    queue = [job("x", 1, ws="a", t=NOW - 5000), job("y", 1, ws="b", t=NOW - 100)]
    s = snap(queue, active, [node("n", total=8, free=[])], now=NOW, estimates=est)
    admits, preempts, d = decide("las", s)
    assert admits == {} and preempts == []
    assert d.wake_at == NOW - 100 + 600, d.wake_at


def test_a_failed_single_node_search_does_not_keep_a_spread_job_from_its_victims():
    """Four nodes of 8 GPUs each hold a notebook-like job that cannot be stopped (4 GPUs) and a
    long-running 4-GPU training. ``one_node`` (8 GPUs on one node) finds no victim: no node can
    be emptied. ``spread`` (16 GPUs, 4 per node), ranked after it at the same level, can: it
    needs only the 4 stoppable GPUs of each node. Until 2026-12-06 the pass's note of a failed
    search said "as many GPUs or more fail too", whatever the GPUs per node, and ``spread``
    waited without a search."""
    nodes = [node(f"n{i}", total=8, free=[]) for i in range(4)]
    active = [running(job(f"keep{i}", 4, preemptible=False), {f"n{i}": range(4)}) for i in range(4)]
    active += [running(job(f"long{i}", 4), {f"n{i}": range(4, 8)}) for i in range(4)]
    queue = [job("one_node", 8, t=90_000.0), job("spread", 16, t=90_001.0, gpus_per_node=4)]
    s = snap(queue, active, nodes, now=NOW)
    admits, preempts, d = decide("las", s)
    assert admits == {}
    assert sorted(preempts) == [(f"long{i}", "spread") for i in range(4)]
    assert "waiting for 4 job(s) to stop" in d.waiting["spread"]
    assert "one_node" in d.waiting and "stop" not in d.waiting["one_node"]


def test_a_workspace_that_went_over_its_guarantee_before_any_search_is_seen_over_it():
    """As above, but ``c_new`` starts first, before any victim search of the pass: ``c`` then
    holds 6 GPUs, two above its guarantee of 4, and ``a2`` may stop two of its jobs. The pass's
    count of what each workspace holds (``PassState.eff_use``) was built at the first search
    from the running jobs alone, so until 2026-12-06 it missed ``c_new`` and ``a2`` waited."""
    active = [running(job(f"c{i}", 1, ws="c"), {"n": [i]}) for i in range(4)]
    active += [running(job(f"d{i}", 1, ws="d"), {"n": [4 + i]}) for i in range(4)]
    queue = [job("c_new", 2, ws="c", t=90_000.0), job("a2", 2, ws="a", t=90_001.0)]
    s = snap(queue, active, [node("n", total=8, free=[]), node("m", total=2)], now=NOW,
             limits={"c": quota(4), "d": quota(4)})
    admits, preempts, d = decide("las", s)
    assert admits == {"c_new": {"m": (0, 1)}}
    assert preempts == [("c0", "a2"), ("c1", "a2")]
    assert "waiting for 2 job(s) to stop" in d.waiting["a2"]


def test_only_the_gpus_a_workspace_borrows_are_open_to_other_workspaces_jobs():
    """``c`` holds 5 GPUs with a guarantee of 4: one borrowed. ``a2`` (2 GPUs) would have to stop
    two of ``c``'s jobs, leaving ``c`` under its guarantee (its guaranteed sweep would take GPUs
    back at the next pass: two restarts for nothing), so it waits; ``a1`` (1 GPU) stops one.
    Until 2026-12-06 a workspace over its guarantee by one GPU had every job open, and ``a2``
    stopped two."""
    active = [running(job(f"c{i}", 1, ws="c"), {"n": [i]}) for i in range(4)]
    active += [running(job(f"d{i}", 1, ws="d"), {"n": [4 + i]}) for i in range(4)]
    active += [running(job("c4", 1, ws="c"), {"m": [0]})]
    queue = [job("a2", 2, ws="a", t=90_000.0), job("a1", 1, ws="a", t=90_001.0)]
    s = snap(queue, active, [node("n", total=8, free=[]), node("m", total=1, free=[])], now=NOW,
             limits={"c": quota(4), "d": quota(4)})
    admits, preempts, d = decide("las", s)
    assert admits == {}
    assert len(preempts) == 1 and preempts[0][1] == "a1" and preempts[0][0].startswith("c"), preempts
    assert "stop" not in d.waiting["a2"], d.waiting["a2"]

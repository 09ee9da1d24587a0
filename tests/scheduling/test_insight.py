"""Queue insight: positions, estimates and reasons say what is true now."""

from __future__ import annotations

from flightbase_jobqueue.scheduling import lease
from flightbase_jobqueue.scheduling.insight import explain

from scheduling_factories import job, node, quota, running, snap


def test_the_quota_in_a_reason_is_what_the_workspace_holds_now():
    """Two jobs wait behind a workspace's full quota: both reasons say 1/1 in use (the
    projection of the first one's start must not count as in use for the second)."""
    s = snap([lease("nb", "t"), job("b", 1, ws="t", t=1)], [running(job("x", 1, ws="t", max_runtime=100), {"n": [0]})],
             [node("n", total=1, free=[])], limits={"t": quota(1, borrow=False)})
    found = {i.job_id: i for i in explain(s)}
    assert [found["nb"].position, found["b"].position] == [1, 2]
    assert [found["nb"].workspace_position, found["b"].workspace_position] == [1, 2]
    for job_id in ("nb", "b"):
        assert "workspace quota 1/1 in use" in found[job_id].reason, found[job_id].reason
    assert found["nb"].estimated_start is not None
    assert found["b"].estimated_start >= found["nb"].estimated_start


def _sweep_table():
    """One GPU: a sweep's job ``r`` runs until 1,000 s; its next two (``h1``, ``h2``, 500 s each)
    are held behind its ``parallel`` of 1; ``x`` of another workspace was queued after the sweep
    was submitted."""
    from flightbase_jobqueue.scheduling.insight import HeldSweep

    r = job("r", 1, t=0.0, max_runtime=1000)
    held = (job("h1", 1, t=0.5, max_runtime=500), job("h2", 1, t=0.6, max_runtime=500))
    s = snap([job("x", 1, ws="v", t=10.0, max_runtime=300)], [running(r, {"n": [0]})], [node("n", total=1, free=[])],
             now=100.0)
    return s, [HeldSweep(frozenset({"r"}), held)]


def test_a_sweeps_held_jobs_start_in_the_projection_when_its_jobs_end_and_release_them():
    """Under ``las`` a released job is ranked as the pass ranks it (by submission within its
    level): ``h1`` joins at 1,000 s when ``r`` ends and goes before ``x``; ``h2`` joins when ``h1``
    ends. Until 2026-12-06 held jobs had no estimate, and ``x`` was shown starting at 1,000 s,
    before the sweep's jobs that the pass then started first."""
    from flightbase_jobqueue.scheduling import make_policy

    s, sweeps = _sweep_table()
    found = {i.job_id: i for i in explain(s, policy=make_policy("las"), sweeps=sweeps)}
    assert [found[j].estimated_start for j in ("h1", "h2", "x")] == [1000.0, 1500.0, 2000.0]
    assert [found[j].position for j in ("h1", "h2", "x")] == [0, 0, 1]
    assert found["h1"].reason.endswith("when training r ends") and found["h2"].reason.endswith("when training h1 ends")
    assert found["h1"].reason.startswith("estimated start")
    without = {i.job_id: i for i in explain(s, policy=make_policy("las"))}
    assert set(without) == {"x"} and without["x"].estimated_start == 1000.0


def test_under_fifo_a_sweeps_held_jobs_join_the_queue_at_their_place_as_its_jobs_end():
    """Under ``fifo`` too a released job takes its place in the queue (its submission, as the
    store queues it): ``h1`` joins when ``r`` ends and goes before ``x``, ``h2`` when ``h1``
    ends. Until 2026-12-07 the projection of the other policies put held jobs after the whole
    queue: ``x`` at 1,000 s, before the sweep's jobs that the pass started first."""
    from flightbase_jobqueue.scheduling import make_policy

    s, sweeps = _sweep_table()
    for policy in (None, make_policy("fifo")):
        found = {i.job_id: i for i in explain(s, policy=policy, sweeps=sweeps)}
        assert [found[j].estimated_start for j in ("h1", "h2", "x")] == [1000.0, 1500.0, 2000.0]


def test_a_sweep_with_a_free_place_releases_its_next_job_at_once():
    from flightbase_jobqueue.scheduling import make_policy
    from flightbase_jobqueue.scheduling.insight import HeldSweep

    s = snap([], [], [node("n", total=1)], now=100.0)
    sweeps = [HeldSweep(frozenset(), (job("h1", 1, max_runtime=500), job("h2", 1, t=0.1, max_runtime=500)), free=1)]
    for policy in (make_policy("las"), None):
        found = {i.job_id: i for i in explain(s, policy=policy, sweeps=sweeps)}
        assert found["h1"].reason == "can start at the next pass" and found["h1"].estimated_start == 100.0
        assert found["h2"].estimated_start == 600.0


def test_a_notebook_held_behind_a_training_is_projected_with_the_sweeps_released_ahead_of_both():
    """Two GPUs: a sweep's job ``r`` runs until 1,000 s and its next one, ``h1`` (500 s), is held;
    ``t2`` runs until 500 s. ``big`` (2 GPUs, 300 s) was queued after the sweep was submitted, and
    a notebook after it: rule 5 holds the notebook behind ``big``. When ``r`` ends, ``h1`` joins
    ahead of ``big`` (submission order within its level) and takes a GPU, so ``big`` starts when
    ``h1`` ends, at 1,500 s, and the notebook when ``big`` ends, at 1,800 s. Until 2026-12-06 the
    notebook's own projection (the one that holds it until ``big`` starts) released no sweep job:
    it showed ``big`` starting at 1,000 s there and the notebook at 1,300 s, before ``big``'s
    own estimate."""
    from flightbase_jobqueue.scheduling import make_policy
    from flightbase_jobqueue.scheduling.insight import HeldSweep

    r = job("r", 1, t=0.0, max_runtime=1000)
    s = snap([job("big", 2, t=5.0, max_runtime=300), lease("nb", "w", submitted_at=10.0)],
             [running(r, {"n": [0]}), running(job("t2", 1, ws="v", max_runtime=500), {"n": [1]})],
             [node("n", total=2, free=[])], now=100.0)
    sweeps = [HeldSweep(frozenset({"r"}), (job("h1", 1, t=0.5, max_runtime=500),))]
    found = {i.job_id: i for i in explain(s, policy=make_policy("las"), sweeps=sweeps)}
    assert [found[j].estimated_start for j in ("h1", "big", "nb")] == [1000.0, 1500.0, 1800.0]
    assert "may not delay training big" in found["nb"].reason


def _reclaim_table(now: float, a1_running: bool = True):
    """One node of 8 GPUs. Workspace ``a`` (quota 4) runs ``a1`` (1 GPU, until 1,000 s) and has
    ``a4`` (4 GPUs) queued: 5 GPUs would borrow, and none is free. Workspace ``b`` (no quota:
    every GPU it holds is borrowed) runs seven 1-GPU jobs started at 40 s until 10,040 s, within
    ``min_run`` and at ``las``'s level 0, so ``las`` alone never stops one for ``a4``."""
    from scheduling_factories import quota as q

    active = [running(job(f"b{i}", 1, ws="b", max_runtime=10_000), {"n": [i + 1]}, started=40.0) for i in range(7)]
    if a1_running:
        active.append(running(job("a1", 1, ws="a", max_runtime=1000), {"n": [0]}))
    return snap([job("a4", 4, ws="a", t=5.0)], active,
                [node("n", total=8, free=[] if a1_running else [0])], now=now, limits={"a": q(4)})


def test_the_projection_reclaims_borrowed_gpus_for_a_job_once_it_is_within_its_guarantee():
    """When ``a1`` ends, ``a4`` fits in ``a``'s guarantee and the pass reclaims three of ``b``'s
    borrowed GPUs for it at once (``core.guaranteed_sweep``: no ``min_run``, no wait). The
    projection now does the same and shows ``a4`` starting at 1,000 s. Until 2026-12-06 it did
    not model reclaim and showed ``a4`` waiting for ``b``'s jobs to end, at 10,040 s."""
    from flightbase_jobqueue.scheduling import make_policy

    from scheduling_factories import decide

    found = {i.job_id: i for i in explain(_reclaim_table(100.0), policy=make_policy("las"))}
    assert found["a4"].estimated_start == 1000.0
    assert found["a4"].reason.endswith("when training a1 ends"), found["a4"].reason
    # What the pass does then: it reclaims three of b's GPUs for a4 (core.reclaim_order: the
    # newest first, then by id).
    admits, preempts, _ = decide("las", _reclaim_table(1000.0, a1_running=False))
    assert admits == {} and sorted(preempts) == [("b0", "a4"), ("b1", "a4"), ("b2", "a4")]


def test_the_projection_gives_free_gpus_to_a_job_within_its_guarantee_before_a_higher_ranked_one():
    """The pass's first sweep admits the jobs within their workspace's guarantee before its
    ``las`` walk: on 2 free GPUs ``g`` (workspace ``a``, within its quota of 2) starts before
    ``x`` (no quota, ranked first: submitted earlier). The projection follows it."""
    from flightbase_jobqueue.scheduling import make_policy

    from scheduling_factories import decide, quota as q

    s = snap([job("x", 2, ws="b", t=0.0, max_runtime=100), job("g", 2, ws="a", t=1.0, max_runtime=100)], [],
             [node("n", total=2)], now=10.0, limits={"a": q(2)})
    admits, _, _ = decide("las", s)
    assert list(admits) == ["g"]
    found = {i.job_id: i for i in explain(s, policy=make_policy("las"))}
    assert [found["g"].estimated_start, found["x"].estimated_start] == [10.0, 110.0]


def test_the_projection_stops_only_the_gpus_another_workspace_borrows():
    """As the pass (``test_failed_searches.py``): ``c`` holds 5 GPUs with a guarantee of 4, so one
    of its 1-GPU jobs may be stopped for another workspace's job, not two. ``a1`` (1 GPU) can
    start at the next pass; ``a2`` (2 GPUs) waits for jobs to end. Until 2026-12-06 the
    projection, like the pass, opened every job of a workspace over its guarantee, and said
    ``a2`` could start at the next pass."""
    from flightbase_jobqueue.scheduling import make_policy

    now = 100_000.0
    active = [running(job(f"c{i}", 1, ws="c", max_runtime=200_000), {"n": [i]}) for i in range(4)]
    active += [running(job(f"d{i}", 1, ws="d", max_runtime=200_000), {"n": [4 + i]}) for i in range(4)]
    active += [running(job("c4", 1, ws="c", max_runtime=200_000), {"m": [0]})]
    nodes = [node("n", total=8, free=[]), node("m", total=1, free=[])]
    limits = {"c": quota(4), "d": quota(4)}
    starts = {}
    for q in (job("a1", 1, ws="a", t=90_000.0, max_runtime=100), job("a2", 2, ws="a", t=90_000.0, max_runtime=100)):
        (i,) = explain(snap([q], active, nodes, now=now, limits=limits), policy=make_policy("las"))
        starts[i.job_id] = (i.estimated_start, i.reason)
    assert starts["a1"][0] == now and "next pass" in starts["a1"][1], starts["a1"]
    assert starts["a2"][0] == 200_000.0 and "ends" in starts["a2"][1], starts["a2"]

"""Head-of-line rule 5 has one definition (``core.lease_protects``): the pass
(``PassState.lease_room``) and the queue's insight (``insight.explain``) both
ask it, so what the queue shows a notebook lease is what the pass does with
it.  Literal tables, no mocks."""

import pytest

from flightbase_jobqueue.scheduling import lease, make_policy
from flightbase_jobqueue.scheduling.core import NO_QUOTA, WITHIN, BORROW, lease_protects
from flightbase_jobqueue.scheduling.insight import explain

from scheduling_factories import decide, job, node, quota, running, snap


def test_the_rule_itself():
    big_w, small_v = job("big", 4, ws="w"), job("small", 1, ws="v")
    nb = lease("nb", "v", submitted_at=10)
    ahead = [(big_w, BORROW), (small_v, BORROW)]
    # Outside its guarantee: every waiting job ahead, in order.
    assert lease_protects(nb, NO_QUOTA, ahead) == [big_w, small_v]
    # Within it: its own workspace's jobs and those within their own guarantee.
    assert lease_protects(nb, WITHIN, ahead) == [small_v]
    assert lease_protects(nb, WITHIN, [(big_w, WITHIN)]) == [big_w]
    # Nothing waits ahead, or the work is not open-ended: nothing to protect.
    assert lease_protects(nb, NO_QUOTA, []) == []
    assert lease_protects(lease("p", "v", preemptible=True), NO_QUOTA, ahead) == []
    assert lease_protects(job("t", 1), NO_QUOTA, ahead) == []
    # Only older work: a job submitted after the lease is not held up by it (it ranked ahead).
    later = job("later", 2, ws="v", t=11)
    assert lease_protects(nb, NO_QUOTA, [(later, BORROW), (big_w, BORROW)]) == [big_w]
    assert lease_protects(nb, WITHIN, [(later, WITHIN)]) == []


def _borrowing_scenario():
    # w would borrow above its guarantee of 2 for 'big'; v's notebook is within v's guarantee.
    t2 = running(job("t2", 2, ws="w", max_runtime=600), {"n": [2, 3]})
    queue = [job("big", 4, ws="w", t=5), lease("nb", "v", submitted_at=10)]
    return snap(queue, [t2], [node("n", total=4, free=[0, 1])], now=100,
                limits={"w": quota(2), "v": quota(2)})


@pytest.mark.parametrize("policy", ["las", "fifo"])
def test_insight_and_pass_agree_when_a_guaranteed_lease_passes_a_borrower(policy):
    s = _borrowing_scenario()
    admits, _, _ = decide(policy, s)
    assert admits == {"nb": {"n": (0,)}}  # the pass starts it
    shown = {i.job_id: i for i in explain(s)}["nb"]
    # The queue does not say it is held behind 'big' (it was, before the rule had one
    # definition).  Its estimate is the projection's, which walks the queue without the
    # quota guarantees, so it is not asserted here.
    assert "may not delay" not in shown.reason, shown.reason


@pytest.mark.parametrize("policy", ["las", "fifo"])
def test_insight_and_pass_agree_when_the_lease_must_wait(policy):
    # Same cluster, one workspace whose guarantee covers it all: queue order holds.
    t2 = running(job("t2", 2, ws="w", max_runtime=600), {"n": [2, 3]})
    queue = [job("big", 4, ws="w", t=5), lease("nb", "w", submitted_at=10)]
    s = snap(queue, [t2], [node("n", total=4, free=[0, 1])], now=100, limits={"w": quota(4)})
    admits, _, _ = decide(policy, s)
    assert admits == {}
    shown = {i.job_id: i for i in explain(s, policy=make_policy(policy))}
    assert "may not delay training big" in shown["nb"].reason
    # Not before 'big' starts; here not before it ends either: it takes every GPU, and the
    # projection with the notebook in the queue (where it goes after 'big') says so.
    assert shown["nb"].estimated_start > shown["big"].estimated_start


def test_insight_and_pass_agree_on_a_training_in_its_swap_wait():
    """A one-GPU training past ``preempt_after`` but within ``swap_after`` spares small
    victims by choice: the pass lets the notebook lease behind it stop one, and the queue does
    not tell the notebook it is held behind the training.  Within the training's
    ``preempt_after`` both say it is."""
    h = 3600.0
    olds = [running(job(f"old{i}", 1, attained=2000 * h), {"n": [i]}, started=0.0) for i in range(2)]
    queue = [job("train", 1, t=10 * h), lease("nb", "w", submitted_at=10 * h + 1)]
    for waited, held in ((30, True), (120, False)):
        s = snap(queue, olds, [node("n", 2, free=[])], now=10 * h + waited)
        _, preempts, _ = decide("las", s)
        assert (preempts == []) is held
        shown = {i.job_id: i for i in explain(s, policy=make_policy("las"))}["nb"]
        assert ("may not delay training train" in shown.reason) is held, shown.reason


def _first_preempt(queue, olds, nodes, since: float, until: float) -> float | None:
    """The first whole second from ``since`` at which the pass stops a job for the lease."""
    for now in range(int(since), int(until) + 1):
        _, preempts, _ = decide("las", snap(queue, olds, nodes, now=float(now)))
        if any(for_job == "nb" for _, for_job in preempts):
            return float(now)
    return None


def test_a_lease_behind_a_training_in_its_first_preempt_after_is_shown_when_it_is_let_go():
    """Within a one-GPU training's first ``preempt_after`` the lease behind it is held (the
    pass's rule 5), but only until the training's swap wait begins: the queue shows the
    lease the second the pass first stops a job for it, not the training's own start ten
    minutes later.  Behind a 2-GPU training, which has no swap wait, the lease is shown after
    that training, as before."""
    h = 3600.0
    olds = [running(job(f"old{i}", 1, attained=2000 * h), {"n": [i]}, started=0.0) for i in range(2)]
    nodes = [node("n", 2, free=[])]
    queue = [job("train", 1, t=10 * h), lease("nb", "w", submitted_at=10 * h + 1)]
    for waited in (5, 30):
        now = 10 * h + waited
        shown = {i.job_id: i for i in explain(snap(queue, olds, nodes, now=now), policy=make_policy("las"))}
        nb, train = shown["nb"], shown["train"]
        assert "may not delay training train" in nb.reason and "until 10:01" in nb.reason, nb.reason
        assert nb.estimated_start < train.estimated_start - 300
        assert nb.estimated_start == _first_preempt(queue, olds, nodes, now, train.estimated_start)
        assert nb.estimated_range[0] <= nb.estimated_start <= nb.estimated_range[1]
    # Two trainings ahead, the second of 2 GPUs: it holds the lease until it starts itself.
    queue2 = [job("train", 1, t=10 * h), job("pair", 2, t=10 * h), lease("nb", "w", submitted_at=10 * h + 1)]
    shown = {i.job_id: i for i in explain(snap(queue2, olds, nodes, now=10 * h + 30), policy=make_policy("las"))}
    assert shown["nb"].estimated_start >= shown["pair"].estimated_start
    assert "may not delay training pair" in shown["nb"].reason, shown["nb"].reason


@pytest.mark.parametrize("policy", ["las", "fifo"])
def test_a_lease_is_not_held_back_by_work_submitted_after_it(policy):
    """Rule 5 protects older work.  A training submitted after the notebook and ranked ahead
    of it (under ``las`` a lease goes after every job of its level) that waits for GPUs
    does not hold the notebook back: the pass stops a job for the notebook once it has
    waited ``preempt_after``, and the queue does not tell it to wait for the training.  The
    same training submitted before the notebook holds it back."""
    h = 3600.0
    olds = [running(job(f"old{i}", 1, attained=2000 * h), {"n": [i]}, started=0.0) for i in range(2)]
    nodes = [node("n", 2, free=[])]
    nb = lease("nb", "w", submitted_at=10 * h)
    for pair_at, held in ((10 * h + 100, False), (10 * h - 1, True)):
        pair = job("pair", 2, t=pair_at)
        s = snap([nb, pair] if not held else [pair, nb], olds, nodes, now=10 * h + 120)
        if policy == "las":
            _, preempts, _ = decide(policy, s)
            assert any(f == "nb" for _, f in preempts) is not held, preempts
        shown = {i.job_id: i for i in explain(s, policy=make_policy(policy))}["nb"]
        assert ("may not delay training pair" in shown.reason) is held, shown.reason


def test_newer_work_noted_first_does_not_crowd_out_the_older_work_a_lease_protects():
    """The pass protects the first ``lease_guard_depth`` (16) older jobs it left waiting, of
    the first 64 it noted: 20 newer ones noted first leave the older one protected."""
    from flightbase_jobqueue.scheduling.core import PassState
    state = PassState(snap([], [], [node("n", 2)], now=100.0))
    nb = lease("nb", "w", submitted_at=50)
    for i in range(20):
        state.note_blocked(job(f"new{i}", 2, t=60 + i))
    older = [job(f"old{i}", 2, t=i) for i in range(20)]
    for j in older:
        state.note_blocked(j)
    assert state.lease_protects(nb, NO_QUOTA) == older[:state.lease_guard_depth]


def test_insight_and_pass_agree_on_an_older_training_ranked_after_the_lease():
    """Under ``las`` a training requeued with 20 GPU-hours of service (level 1) is walked
    after a new notebook lease (level 0), so it holds the lease back in neither place: the
    pass starts the lease on the free GPU, and the queue says it can start, not that it
    waits for the training.  The same training with no service (level 0) holds it back in
    both."""
    h = 3600.0
    t1 = running(job("t1", 1), {"n": [1]}, started=10 * h)
    nb = lease("nb", "w", submitted_at=10 * h + 1)
    for attained, held in ((20 * h, False), (0.0, True)):
        big = job("big", 2, t=0.0, attained=attained, enqueued_at=10 * h)
        s = snap([big, nb], [t1], [node("n", 2, free=[0])], now=10 * h + 30)
        admits, _, _ = decide("las", s)
        assert ("nb" in admits) is not held, admits
        shown = {i.job_id: i for i in explain(s, policy=make_policy("las"))}["nb"]
        assert ("may not delay training big" in shown.reason) is held, shown.reason
        assert (shown.estimated_start <= s.now) is not held, shown


def test_insight_and_pass_agree_on_a_lease_that_fits_beside_the_reservation():
    """A 4-GPU training waits for node m to drain (its reservation); node n has a free GPU
    that the training can never use before n's long jobs end.  The pass starts the notebook
    there (``PassState.lease_room``: outside every protected reservation), and the queue says
    it can start, not that it waits for the training (it said so before, hours late)."""
    h = 3600.0
    now = 10 * h
    act = [running(job(f"m{i}", 1, ws="b", max_runtime=3600), {"m": [i]}, started=now - 600) for i in range(4)]
    act += [running(job(f"n{i}", 1, ws="b", max_runtime=9 * 3600, preemptible=False), {"n": [i]},
                    started=now - 600) for i in range(3)]
    gang, nb = job("gang", 4, ws="a", t=now - 30), lease("nb", "c", submitted_at=now - 10)
    s = snap([gang, nb], act, [node("m", 4, free=[]), node("n", 4, free=[3])], now=now)
    assert decide("las", s)[0] == {"nb": {"n": (3,)}}
    shown = {i.job_id: i for i in explain(s, policy=make_policy("las"))}
    assert shown["nb"].estimated_start <= now and "may not delay" not in shown["nb"].reason, shown["nb"].reason
    # With n's GPU taken as well, the notebook waits behind the training in both places.
    full = act + [running(job("n3", 1, ws="b", max_runtime=9 * 3600, preemptible=False), {"n": [3]},
                          started=now - 600)]
    s = snap([gang, nb], full, [node("m", 4, free=[]), node("n", 4, free=[])], now=now)
    assert decide("las", s)[0] == {}
    assert "may not delay training gang" in {i.job_id: i for i in explain(s, policy=make_policy("las"))}["nb"].reason


@pytest.mark.parametrize("ran", [100.0, 300.0, 500.0])
def test_a_held_lease_is_estimated_after_the_training_it_waits_for_in_every_projection(ran):
    """Runtimes from history, not declared: each projection of the range and the samples draws
    its own.  The lease is held in each until the training ahead of it starts in that same
    projection; it was held only until that training's median start, so in projections where
    the running job ran longer the lease took a GPU the training still waited for, and its
    estimate came out at the training's start (seen on the platform: 15:56:29 for the 4-GPU
    training, 15:56:32 for the notebook, on 4 slots)."""
    from flightbase_jobqueue.scheduling.estimates import HistoryEstimates

    est = HistoryEstimates()
    for r in (200, 210, 400, 410, 70, 300):
        est.observe(job("h2", 2), float(r))
    for r in (60.0, 600.0):
        est.observe(job("h4", 4), r)
    now = 1000.0
    t2 = running(job("t2", 2), {"n": [2, 3]}, started=now - ran)
    s = snap([job("big", 4, t=5), lease("nb", "w", submitted_at=10)], [t2], [node("n", total=4, free=[0, 1])],
             now=now, limits={"w": quota(4)}, estimates=est)
    assert decide("las", s)[0] == {}  # the pass holds the notebook
    shown = {i.job_id: i for i in explain(s, policy=make_policy("las"))}
    big, nb = shown["big"], shown["nb"]
    assert "may not delay training big" in nb.reason
    # 'big' takes every GPU: the notebook starts when it ends, never at its start
    assert nb.estimated_start > big.estimated_start + 30, (big.estimated_start, nb.estimated_start)
    assert nb.reason.endswith("when training big ends"), nb.reason
    assert nb.estimated_range[0] > now


@pytest.mark.parametrize("policy", ["las", "fifo"])
def test_a_lease_held_for_its_quota_is_also_held_behind_the_older_training_of_its_workspace(policy):
    """Both trainings of w run and fill w's quota of 4: the notebook lease (it never borrows)
    waits for the quota, and the 4-GPU training, older, waits for GPUs.  When one training ends,
    w has room, the lease is within its guarantee, and rule 5 holds it behind w's own training,
    which takes every GPU once the other ends: the pass starts the lease after it.  The queue
    showed the reverse (seen on the platform, 4 CPU slots and no runtime history yet: the
    notebook at 16:19, the training at 17:33 "when notebook lease nb ends")."""
    from flightbase_jobqueue.scheduling.estimates import HistoryEstimates

    now = 1000.0
    ta = running(job("ta", 2), {"n": [0, 1]}, started=now - 30)
    tb = running(job("tb", 2), {"n": [2, 3]}, started=now - 30)
    s = snap([job("big", 4, t=5), lease("nb", "w", submitted_at=10)], [ta, tb], [node("n", total=4, free=[])],
             now=now, limits={"w": quota(4)}, estimates=HistoryEstimates())
    shown = {i.job_id: i for i in explain(s, policy=make_policy(policy))}
    big, nb = shown["big"], shown["nb"]
    assert "notebook" not in big.reason, big.reason
    assert "workspace quota 4/4 in use; may not delay training big, ahead of it in the queue" in nb.reason, nb.reason
    assert nb.estimated_start > big.estimated_start, (big.estimated_start, nb.estimated_start)
    # and the pass, once ta has ended: the lease within its quota stays behind 'big'
    later = snap([job("big", 4, t=5), lease("nb", "w", submitted_at=10)], [tb], [node("n", total=4, free=[0, 1])],
                 now=now + 200, limits={"w": quota(4)}, estimates=HistoryEstimates())
    assert decide(policy, later)[0] == {}

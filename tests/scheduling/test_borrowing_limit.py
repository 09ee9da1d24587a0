"""The per-workspace borrowing limit (Kueue's borrowingLimit): a workspace with quota Q and
borrowing limit B holds at most Q + B GPUs, whatever is idle; the rule is one function,
``core.quota_verdict``, which every pass, queue insight, the metrics and the admission check use."""

from dataclasses import replace

import pytest

from flightbase_jobqueue.prometheus import pending_reason
from flightbase_jobqueue.scheduling import insight, lease, make_policy
from flightbase_jobqueue.scheduling.core import BLOCKED, BORROW, NO_QUOTA, WITHIN, quota_cap, quota_verdict
from flightbase_jobqueue.scheduling.placement import check_admissible
from flightbase_jobqueue.scheduling.types import WorkspaceLimits

from scheduling_factories import decide, job, node, quota, running, snap

ALL = ["fifo", "backfill", "fairshare", "las", "sjf"]


@pytest.mark.parametrize("limits, in_use, gpus, preemptible, verdict", [
    (None, 50, 5, True, NO_QUOTA),
    (WorkspaceLimits(), 50, 5, True, NO_QUOTA),
    (quota(20, borrowing_limit=100), 15, 5, True, WITHIN),
    (quota(20, borrowing_limit=100), 15, 6, True, BORROW),
    (quota(20, borrowing_limit=100), 100, 20, True, BORROW),     # 120 = 20 + 100: the most it may hold
    (quota(20, borrowing_limit=100), 101, 20, True, BLOCKED),
    (quota(20, borrowing_limit=0), 20, 1, True, BLOCKED),        # 0: no borrowing at all
    (quota(20, borrowing_limit=100), 20, 1, False, BLOCKED),     # non-preemptible jobs never borrow
    (quota(20, borrow=False, borrowing_limit=100), 20, 1, True, BLOCKED),  # borrowing off wins
    (quota(20), 1000, 20, True, BORROW),                         # no limit: as before
])
def test_the_rule(limits, in_use, gpus, preemptible, verdict):
    assert quota_verdict(limits, in_use, job("j", gpus, preemptible=preemptible)) == verdict


def test_the_cap():
    assert quota_cap(quota(20, borrowing_limit=100)) == 120
    assert quota_cap(quota(20, borrowing_limit=100), preemptible=False) == 20
    assert quota_cap(quota(20)) is None and quota_cap(WorkspaceLimits()) is None
    assert quota_cap(quota(20, borrow=False, borrowing_limit=5)) == 20


@pytest.mark.parametrize("policy", ALL)
def test_a_workspace_borrows_up_to_its_limit_and_no_further(policy):
    # t: quota 2, may borrow 3 more (5 in all); 16 idle GPUs; u's job is not held back by t's limit
    queue = [job(f"t{i}", 2, ws="t", t=i) for i in range(4)] + [job("u1", 1, ws="u", t=10)]
    s = snap(queue, nodes=[node("a"), node("b")], limits={"t": quota(2, borrowing_limit=3), "u": quota(2)})
    admits, _, d = decide(policy, s)
    assert {j for j in admits if j.startswith("t")} == {"t0", "t1"}  # 4 GPUs; a third job would make 6 > 5
    assert "u1" in admits
    assert "borrowing limit reached" in d.waiting["t2"] and "at most 3 GPUs above the quota" in d.waiting["t2"]


@pytest.mark.parametrize("policy", ALL)
def test_running_jobs_count_toward_the_limit(policy):
    active = [running(job("r", 4, ws="t"), {"a": [0, 1, 2, 3]})]
    s = snap([job("t1", 1, ws="t", t=1)], active, [node("a")], limits={"t": quota(2, borrowing_limit=2)})
    admits, _, d = decide(policy, s)
    assert admits == {}
    assert d.waiting["t1"].startswith("workspace quota 4/2 in use and its borrowing limit reached")


def test_a_job_bigger_than_quota_plus_limit_is_refused_at_submission():
    nodes = [node("a", total=8), node("b", total=8)]
    why = check_admissible(job("big", 8, ws="t"), nodes, quota(2, borrowing_limit=4))
    assert why == "needs 8 GPUs but workspace t may hold at most 6 GPUs (quota 2, borrowing limit 4)"
    assert check_admissible(job("ok", 6, ws="t"), nodes, quota(2, borrowing_limit=4)) is None
    assert "may not borrow" in check_admissible(job("big", 8, ws="t"), nodes, quota(2, borrow=False))


def test_insight_and_metrics_say_the_limit_holds_the_job():
    active = [running(job("r", 4, ws="t"), {"a": [0, 1, 2, 3]})]
    lim = quota(2, borrowing_limit=2)
    s = snap([job("t1", 1, ws="t", t=1)], active, [node("a", free=[4, 5, 6, 7])], limits={"t": lim})
    reason = {i.job_id: i for i in insight.explain(s)}["t1"].reason
    assert "workspace quota 4/2 in use, borrowing limit of 2 GPUs reached" in reason
    assert pending_reason(job("t1", 1, ws="t"), 4, lim) == "quota"
    assert pending_reason(job("t1", 1, ws="t"), 3, lim) == "resources"


@pytest.mark.parametrize("policy", ["las", "fifo"])
@pytest.mark.parametrize("lim", [quota(2, borrow=False), quota(2, borrowing_limit=0)], ids=["no-borrowing", "limit-0"])
def test_a_job_held_for_its_quota_is_estimated_when_its_workspace_has_room(policy, lim):
    """The queue's projection holds a job for its workspace's cap as the pass does: the
    training of a workspace at its quota is shown starting when that workspace's running job
    ends (10:10), not "at the next pass", and the pass does start it then; a notebook of
    another workspace behind it is not held back by it, in the queue's estimate or in the
    pass.  (Before, the projection ignored quotas and showed the training starting now.)"""
    h = 3600.0
    t1 = running(job("t1", 2, ws="w", max_runtime=600), {"n": [0, 1]}, started=10 * h)
    big = job("big", 2, ws="w", t=10 * h)
    nb = lease("nb", "v", submitted_at=10 * h + 1)
    limits = {"w": lim}
    s = snap([big, nb], [t1], [node("n", 4, free=[2, 3])], now=10 * h + 30, limits=limits)
    admits, _, _ = decide(policy, s)
    assert admits == {"nb": {"n": (2,)}}
    shown = {i.job_id: i for i in insight.explain(s, policy=make_policy(policy))}
    assert shown["big"].estimated_start == 10 * h + 600, shown["big"].reason
    assert shown["nb"].estimated_start <= s.now, shown["nb"].reason
    # At 10:10 t1 has ended (and the notebook runs): the pass starts the training.
    nb_running = running(nb, {"n": [2]}, started=10 * h + 30)
    later = snap([big], [nb_running], [node("n", 4, free=[0, 1, 3])], now=10 * h + 600, limits=limits)
    assert "big" in decide(policy, later)[0]


def test_the_las_projection_preempts_only_borrowed_gpus_and_gives_the_room_back():
    """Under ``las``, with quotas, the projection preempts as the pass does: only jobs of
    another workspace running above its guarantee.  Workspace w (quota 2, borrowing limit 2)
    runs r1 and r3 (4 GPUs, at its cap), so its queued ``wbig`` is held for the quota; ``x``
    of workspace v preempts the borrowed r3, and w has room again: at the next pass ``wbig``,
    of a lower level than w's own r1 and past its ``preempt_after`` wait, preempts r1. It is
    shown starting now, and the pass makes that preemption once r3 has stopped. (Until
    2026-12-07 the projection walked the jobs its quota had held back only at its next moment,
    when r2 ends at 10:10, and showed ``wbig`` starting then.)  With w within its guarantee
    (no r3), x may not preempt r1: it is shown starting at 10:10 too, and the pass preempts
    nothing."""
    h = 3600.0
    now = 10 * h
    r1 = running(job("r1", 2, ws="w", attained=2000 * h), {"n": [0, 1]}, started=0.0)
    r3 = running(job("r3", 2, ws="w", attained=2000 * h), {"n": [2, 3]}, started=1.0)
    r2 = running(job("r2", 2, ws="v", max_runtime=now + 600, preemptible=False), {"n": [4, 5]}, started=0.0)
    wbig, x = job("wbig", 2, ws="w", t=now - 300), job("x", 2, ws="v", t=now - 200)
    limits = {"w": quota(2, borrowing_limit=2)}
    s = snap([wbig, x], [r1, r3, r2], [node("n", 6, free=[])], now=now, limits=limits)
    assert decide("las", s)[1] == [("r3", "x")]
    shown = {i.job_id: i.estimated_start for i in insight.explain(s, policy=make_policy("las"))}
    assert shown == {"wbig": now, "x": now}
    r3_queued = replace(job("r3", 2, ws="w", attained=2000 * h + 2 * (now - 1.0), t=1.0), restarts=1,
                        enqueued_at=now)
    later = snap([wbig, r3_queued], [r1, running(x, {"n": [2, 3]}, started=now), r2], [node("n", 6, free=[])],
                 now=now + 1, limits=limits)
    assert decide("las", later)[1] == [("r1", "wbig")]
    # w within its guarantee: r1 is safe from x.
    r2 = running(r2.job, {"n": [2, 3]}, started=0.0)
    s = snap([x], [r1, r2], [node("n", 4, free=[])], now=now, limits={"w": quota(2, borrow=False)})
    assert decide("las", s)[1] == []
    assert {i.job_id: i.estimated_start for i in insight.explain(s, policy=make_policy("las"))} == {"x": now + 600}


@pytest.mark.parametrize("policy", ["las", "fifo"])
def test_a_notebook_held_for_its_quota_is_estimated_when_its_workspace_has_room(policy):
    """A notebook lease does not borrow: with its workspace w at its quota the pass holds it
    for the quota before head-of-line rule 5 is asked.  The queue shows it starting when w's
    running job ends (10:10), not "after" an older training of another workspace that starts
    now (which is what the rule-5 wording gave it before)."""
    h = 3600.0
    now = 10 * h
    r = running(job("r", 1, ws="w", max_runtime=now + 600), {"n": [0]}, started=0.0)
    r2 = running(job("r2", 1, ws="v", max_runtime=now + 1200, preemptible=False), {"n": [1]}, started=0.0)
    q = job("q", 1, ws="x", t=now - 100)
    nb = lease("nb", "w", submitted_at=now - 50)
    s = snap([q, nb], [r, r2], [node("n", 3, free=[2])], now=now, limits={"w": quota(1, borrow=False)})
    assert decide(policy, s)[0] == {"q": {"n": (2,)}}
    shown = {i.job_id: i for i in insight.explain(s, policy=make_policy(policy))}["nb"]
    assert shown.estimated_start == now + 600, shown.reason
    assert "may not delay" not in shown.reason

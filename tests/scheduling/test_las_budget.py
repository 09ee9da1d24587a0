"""The preemption budget of ``las`` (issue 17, parts 3 and 4), as literal tables:
a gang job whose GPUs are free but spread over nodes moves a few small jobs
or keeps a node for itself; a job waits ``preempt_after`` before preempting;
the SRTF reference the benchmark compares with; and the preemption budget proper
(scheduling/budget.py): preemptions by choice only while the last 14 days have made fewer
than 0.24 per job started."""

from dataclasses import replace
from pathlib import Path

import pytest

from flightbase_jobqueue.scheduling import lease
from flightbase_jobqueue.sim.reference import srtf_reference
from flightbase_jobqueue.sim.trace import TraceJob

from scheduling_factories import decide, job, node, running, snap

H = 3600.0


def spread(small_b):
    """Two 4-GPU nodes with one GPU used on each: 6 GPUs free in all, 3 per node."""
    a = running(job("small-a", 1, t=0.0), {"a": [0]}, started=0.0)
    b = running(small_b, {"b": [0]}, started=0.0)
    return [a, b], [node("a", 4, free=[1, 2, 3]), node("b", 4, free=[1, 2, 3])]


def test_a_spread_gang_job_moves_one_small_job_and_claims_its_node():
    active, nodes = spread(job("small-b", 1, t=0.0))
    s = snap([job("gang", 4, t=0.0)], active, nodes, now=2 * H)
    admits, preempts, d = decide("las", s)
    assert admits == {}
    assert len(preempts) == 1 and preempts[0][1] == "gang"
    assert "moved to make room for gang" in d.preempts[0].reason
    # The moved job is requeued; the next pass starts it on a GPU free elsewhere.


def test_no_move_for_a_non_preemptible_job_the_node_is_kept_instead():
    active, nodes = spread(lease("nb", "w"))
    # small-a is too young to be moved (min_run), the notebook never moves.
    active[0] = running(job("small-a", 1, t=0.0), {"a": [0]}, started=2 * H - 60)
    s = snap([job("gang", 4, t=0.0), job("later", 1, t=1.0)], active, nodes, now=2 * H)
    admits, preempts, d = decide("las", s)
    assert preempts == []
    assert "keeping a for it" in d.waiting["gang"]
    # A job ranked after it does not take the kept node's GPUs, only node b's.
    assert list(admits) == ["later"] and list(admits["later"]) == ["b"]


def test_moves_only_smaller_jobs():
    # Three 4-GPU nodes, each with a 3-GPU job: 3 GPUs free in all, one per node.  Moving a
    # job as big as the gang would only move the problem: the node is kept instead.
    active = [running(job(f"three-{n}", 3, t=0.0), {n: [0, 1, 2]}, started=0.0) for n in "abc"]
    nodes = [node(n, 4, free=[3]) for n in "abc"]
    s = snap([job("gang", 3, t=0.0)], active, nodes, now=2 * H)
    _, preempts, d = decide("las", s, thresholds=(1e12,))  # one level: no LAS preemption either
    assert preempts == []
    assert "keeping" in d.waiting["gang"]


def test_a_job_waits_preempt_after_before_preempting():
    old = running(job("old", 1, attained=300 * H), {"n": [0]}, started=0.0)  # level 2, past min_run
    fresh = snap([job("new", 1, t=10 * H - 10)], [old], [node("n", 1, free=[])], now=10 * H)
    # preempt_after alone: a one-GPU job stopping a one-GPU job also waits swap_after (below).
    _, preempts, d = decide("las", fresh, swap_after=0.0)
    assert preempts == []
    assert d.wake_at == pytest.approx(10 * H + 50)
    later = snap([job("new", 1, t=10 * H - 10)], [old], [node("n", 1, free=[])], now=10 * H + 50)
    _, preempts, _ = decide("las", later, swap_after=0.0)
    assert preempts == [("old", "new")]


def one_node(victim_gpus, queued, now):
    """One node of ``victim_gpus`` GPUs, all held by a job of the last level (2,000 GPU-hours
    attained before it started 10 h ago)."""
    old = running(job("old", victim_gpus, attained=2000 * H), {"n": list(range(victim_gpus))}, started=0.0)
    return snap(queued, [old], [node("n", victim_gpus, free=[])], now=now)


@pytest.mark.parametrize("victim_gpus", [1, 4])
def test_a_one_gpu_job_stops_a_small_job_only_after_swap_after(victim_gpus):
    """Stopping one small job for another is a swap (the stopped job restarts on the next GPU
    that frees up): a one-GPU job waits swap_after (600 s) for a GPU first, and the pass asks
    to be woken when that wait ends."""
    t0 = 10 * H
    _, preempts, d = decide("las", one_node(victim_gpus, [job("new", 1, t=t0)], t0 + 120))
    assert preempts == []
    assert d.wake_at == pytest.approx(t0 + 600)
    assert "needs 1 GPU" in d.waiting["new"]
    _, preempts, _ = decide("las", one_node(victim_gpus, [job("new", 1, t=t0)], t0 + 600))
    assert preempts == [("old", "new")]


def test_a_one_gpu_job_stops_a_whole_node_job_after_preempt_after():
    t0 = 10 * H
    _, preempts, _ = decide("las", one_node(8, [job("new", 1, t=t0)], t0 + 60))
    assert preempts == [("old", "new")]


def test_swap_after_is_for_one_gpu_jobs_only_not_starving_nor_notebook_leases():
    t0 = 10 * H
    # A two-GPU job stops a one-GPU job after preempt_after.
    s = snap([job("pair", 2, t=t0)],
             [running(job(f"old{i}", 1, attained=2000 * H), {"n": [i]}, started=0.0) for i in range(2)],
             [node("n", 2, free=[])], now=t0 + 60)
    _, preempts, _ = decide("las", s)
    assert sorted(preempts) == [("old0", "pair"), ("old1", "pair")]
    # A notebook lease: someone is waiting at the screen.
    nb = lease("nb", "w", t0)
    _, preempts, _ = decide("las", one_node(1, [nb], t0 + 60))
    assert preempts == [("old", "nb")]
    # A starving one-GPU job (queued 6 h, twice what it has run) stops at once, even with a
    # swap_after longer than that.
    _, preempts, _ = decide("las", one_node(1, [job("starved", 1, t=t0 - 6 * H)], t0), swap_after=7 * H)
    assert preempts == [("old", "starved")]


def test_a_one_gpu_training_in_its_swap_wait_does_not_hold_back_a_notebook():
    """Head-of-line rule 5 keeps a notebook lease from preempting while a job ranked ahead of
    it waits for GPUs.  A one-GPU training waiting out ``swap_after`` waits by choice (only
    small victims are left, and it spares them for 10 min), so the notebook behind it may stop
    one after ``preempt_after`` instead of waiting those 10 min too; the training still waits,
    and takes the next GPU that frees up (it is ranked first)."""
    t0 = 10 * H
    olds = [running(job(f"old{i}", 1, attained=2000 * H), {"n": [i]}, started=0.0) for i in range(2)]

    def at(now, free=()):
        q = [job("train", 1, t=t0), lease("nb", "w", t0 + 1)]
        act = [a for a in olds if int(a.job.id[-1]) not in free]
        return snap(q, act, [node("n", 2, free=list(free))], now=now)

    # Within the training's own preempt_after it is waiting for GPUs: the notebook waits.
    _, preempts, d = decide("las", at(t0 + 30))
    assert preempts == []
    assert d.waiting["nb"].startswith("behind train")
    # Past it, the training spares the small victims; the notebook (waited 119 s) stops one.
    _, preempts, d = decide("las", at(t0 + 120))
    assert [v for v, c in preempts if c == "train"] == []
    assert len([v for v, c in preempts if c == "nb"]) == 1
    assert "needs 1 GPU" in d.waiting["train"]
    # A GPU that frees up goes to the training first, not to the notebook.
    admits, preempts, _ = decide("las", at(t0 + 120, free=(0,)))
    assert list(admits) == ["train"]


def test_srtf_reference_by_remaining_gpu_seconds_pooled():
    # 4 GPUs pooled: a 4-GPU job of 100 s runs; a 1-GPU job of 10 s arrives at 50 s:
    # its 10 GPU-s are fewer than the 200 GPU-s left, so it preempts; the gang job waits
    # for all 4 GPUs (it does not fit in the 3 left) and resumes at 60 s, ending at 110 s.
    jobs = [TraceJob("g", 0.0, 4, 100.0, "w"), TraceJob("s", 50.0, 1, 10.0, "w"),
            TraceJob("huge", 0.0, 8, 5.0, "w")]
    r = srtf_reference(jobs, 4)
    assert r["rejected"] == 1 and r["completed"] == 2
    assert r["avg_jct"] == pytest.approx((110.0 + 10.0) / 2)
    assert r["preemptions"] == 1


# -- the preemption budget proper (scheduling/budget.py): a ledger of the last 14 days ----------

BUDGET = 0.24  # as an operator sets it (FLIGHTBASE_PREEMPTION_BUDGET; also the default)


def test_a_spent_budget_holds_back_preemptions_by_choice_and_not_those_owed():
    """With 100 jobs started in the last 14 days and 24 preemptions, ``las``'s budget of 0.24 per
    job is spent: a job of a lower level waits instead of stopping the long job (it preempts with
    one preemption left), but a starving job and a notebook lease still stop it."""
    t0 = 10 * H
    spent, left = (100, 24), (100, 23)
    _, preempts, d = decide("las", _with(one_node(8, [job("new", 1, t=t0)], t0 + 60), spent), preemption_budget=BUDGET)
    assert preempts == []
    assert "needs 1 GPU" in d.waiting["new"] and "the preemption budget is spent" in d.waiting["new"]
    _, preempts, _ = decide("las", _with(one_node(8, [job("new", 1, t=t0)], t0 + 60), left), preemption_budget=BUDGET)
    assert preempts == [("old", "new")]
    _, preempts, _ = decide("las", _with(one_node(8, [job("new", 1, t=t0)], t0 + 60), spent), preemption_budget=None)
    assert preempts == [("old", "new")]  # no budget
    _, preempts, _ = decide("las", _with(one_node(8, [job("new", 1, t=t0)], t0 + 60), spent))
    assert preempts == []  # the default: the same budget
    _, preempts, _ = decide("las", _with(one_node(1, [job("starved", 1, t=t0 - 6 * H)], t0), spent), preemption_budget=BUDGET)
    assert preempts == [("old", "starved")]
    _, preempts, _ = decide("las", _with(one_node(1, [lease("nb", "w", t0)], t0 + 60), spent), preemption_budget=BUDGET)
    assert preempts == [("old", "nb")]


def test_a_spent_budget_moves_nothing_for_a_spread_gang_it_keeps_a_node_instead():
    active, nodes = spread(job("small-b", 1, t=0.0))
    s = snap([job("gang", 4, t=0.0)], active, nodes, now=2 * H, preemption_counts=(200, 48))
    _, preempts, d = decide("las", s, preemption_budget=BUDGET)  # floor(0.24 x 200) - 48 = 0
    assert preempts == []
    assert "keeping" in d.waiting["gang"]
    _, preempts, _ = decide("las", snap([job("gang", 4, t=0.0)], active, nodes, now=2 * H, preemption_counts=(200, 47)), preemption_budget=BUDGET)
    assert len(preempts) == 1


def test_a_spent_budget_still_moves_jobs_for_a_starving_spread_gang():
    """The moves that gather a starving gang's GPUs are owed, as its other preemptions are
    (budget.owed): with the credit spent, the gang queued 7 h still moves the small job."""
    active, nodes = spread(job("small-b", 1, t=0.0))
    s = snap([job("gang", 4, t=0.0)], active, nodes, now=7 * H, preemption_counts=(200, 48))
    _, preempts, d = decide("las", s, preemption_budget=BUDGET)  # floor(0.24 x 200) - 48 = 0
    assert len(preempts) == 1 and preempts[0][1] == "gang"
    assert "moved to make room for gang" in d.preempts[0].reason


def test_a_pass_spends_no_more_than_the_credit():
    """Two 8-GPU jobs, each able to stop one of two long whole-node jobs: with one preemption
    of credit, one of them does."""
    t0 = 10 * H
    old = [running(job(f"old{i}", 8, attained=2000 * H), {f"n{i}": list(range(8))}, started=0.0) for i in range(2)]
    s = snap([job("a", 8, t=t0), job("b", 8, t=t0 + 1)], old, [node("n0", 8, free=[]), node("n1", 8, free=[])],
             now=t0 + 120, preemption_counts=(100, 23))
    _, preempts, d = decide("las", s, preemption_budget=BUDGET)
    assert len(preempts) == 1
    assert "the preemption budget is spent" in d.waiting["b"]
    _, preempts, _ = decide("las", _with(s, (100, 22)), preemption_budget=BUDGET)
    assert len(preempts) == 2


def _with(s, counts):
    return replace(s, preemption_counts=counts)


def test_the_ledger_counts_the_last_14_days_and_the_credit_rounds_down():
    from flightbase_jobqueue.scheduling.budget import PreemptionLedger, credit

    led = PreemptionLedger()
    for t in (0.0, 100.0, 200.0):
        led.started(t)
    led.preempted(150.0)
    assert led.counts(300.0) == (3, 1)
    assert led.counts(14 * 86400.0 + 160.0) == (1, 0)  # the first two starts and the preemption are older
    assert credit(0.25, (203, 50)) == 0 and credit(0.25, (204, 50)) == 1 and credit(0.25, (300, 80)) == 0
    assert credit(None, (8, 100)) == float("inf") and credit(0.25, None) == float("inf")
    # a young cluster's allowance (budget.MIN_STARTS): at least 100 first starts are counted
    assert credit(0.25, (0, 0)) == 25 and credit(0.25, (7, 1)) == 24 and credit(0.25, (3, 25)) == 0


def test_a_young_cluster_may_preempt_before_it_has_started_many_jobs():
    """The default budget (0.24) counts at least 100 first starts: a cluster that has started
    no job in 14 days still stops a long job for a new one, until it has made 24 preemptions;
    with 150 first starts it may make 36, and a pass on a young cluster takes the allowance and
    not 0.24 x its 7 starts (1.68, which rounds down to one)."""
    t0 = 10 * H
    for counts, stops in (((0, 0), True), ((7, 23), True), ((7, 24), False), ((150, 35), True), ((150, 36), False)):
        _, preempts, d = decide("las", _with(one_node(8, [job("new", 1, t=t0)], t0 + 60), counts))
        assert (preempts == [("old", "new")]) is stops, counts
        if not stops:
            assert "the preemption budget is spent" in d.waiting["new"]


def test_the_projection_adds_credit_only_for_first_starts_past_the_allowance():
    """The queue's projection spends the budget as the pass does, each first start it makes
    adding to the credit (here 1 per job, with a budget of 1.0), but only past the young
    cluster's 100 first starts.  A 1-GPU job starts on the free GPU; an 8-GPU job behind it
    needs the node of a long job that is past its protection.  With the credit spent on a
    cluster that has started 250 jobs, that start gives the credit for stopping the long job
    now; on one that has started 7, it gives none, and the 8-GPU job waits until it starves
    (6 h), when stopping the long job is owed."""
    from flightbase_jobqueue.scheduling import make_policy
    from flightbase_jobqueue.scheduling.insight import explain

    t0 = 10 * H
    now = t0 + 60
    old = running(job("old", 8, attained=2000 * H), {"n0": list(range(8))}, started=t0 - 2 * H)
    q = [job("a", 1, t=t0), job("late", 8, t=t0 + 30)]
    policy = make_policy("las", preemption_budget=1.0)

    def start_of(counts):
        s = snap(q, [old], [node("n0", 8, free=[]), node("n1", 1, free=[0])], now=now, preemption_counts=counts)
        return {i.job_id: i for i in explain(s, policy=policy)}["late"]

    grown, young = start_of((250, 250)), start_of((7, 100))
    assert grown.estimated_start == pytest.approx(now, abs=120), grown
    assert young.estimated_start == pytest.approx(t0 + 30 + 6 * H, abs=120), young


def test_the_operators_setting_reaches_las_and_bad_values_name_the_variable():
    from types import SimpleNamespace

    from flightbase_jobqueue.runtime import policy_options
    from flightbase_server.settings import parse_preemption_budget as parse

    assert parse("0.24") == 0.24 and parse(" none ") is None and parse("0") == 0.0
    for bad in ("-1", "lots", "nan", "inf", ""):
        with pytest.raises(ValueError, match="FLIGHTBASE_PREEMPTION_BUDGET"):
            parse(bad)
    assert policy_options(SimpleNamespace(scheduler_policy="las", preemption_budget="0.1")) == {"preemption_budget": 0.1}
    assert policy_options(SimpleNamespace(scheduler_policy="las", preemption_budget="none")) == {"preemption_budget": None}
    assert policy_options(SimpleNamespace(scheduler_policy="fifo", preemption_budget="0.1")) == {}  # no budget there
    from flightbase_jobqueue.scheduling import make_policy
    from flightbase_server.settings import PlatformSettings  # the default: on, as the policy's own
    assert policy_options(PlatformSettings(data_dir=Path("/nonexistent"))) == {"preemption_budget": 0.24}
    assert make_policy("las").preemption_budget == 0.24


def test_the_queue_says_when_the_budget_is_spent_for_the_jobs_held_to_it():
    """``GET /queue``'s reason and estimate (the insight's own projection): a job waiting while
    the budget is spent is told that no running job is stopped for it, and is not projected to
    start by stopping one; a starving job, which the budget does not hold back, still is (and
    starts at the next pass); without a budget the first starts at the next pass too."""
    from flightbase_jobqueue.scheduling import make_policy
    from flightbase_jobqueue.scheduling.insight import BUDGET_SPENT, explain

    t0 = 10 * H
    budgeted = make_policy("las", preemption_budget=BUDGET)
    (new,) = explain(_with(one_node(8, [job("new", 1, t=t0)], t0 + 60), (100, 24)), policy=budgeted)
    assert BUDGET_SPENT in new.reason and new.estimated_start > t0 + 60, new
    (starved,) = explain(_with(one_node(8, [job("starved", 1, t=t0 - 7 * H)], t0), (100, 24)), policy=budgeted)
    assert BUDGET_SPENT not in starved.reason and "can start at the next pass" in starved.reason, starved
    (free,) = explain(_with(one_node(8, [job("new", 1, t=t0)], t0 + 60), (100, 24)),
                     policy=make_policy("las", preemption_budget=None))
    assert BUDGET_SPENT not in free.reason and "can start at the next pass" in free.reason, free


def _restarted_old(started, restarts=1):
    """One 8-GPU node held by a job of the last level that (re)started at ``started``."""
    old = running(job("old", 8, attained=2000 * H, restarts=restarts), {"n": list(range(8))}, started=started)
    return old, [node("n", 8, free=[])]


def test_the_budgets_first_step_protects_restarted_jobs_longer():
    """The budget's first step (LasPolicy.min_rerun, rerun_share): once the last 14 days have
    made 0.8 x the budget preemptions per job started (here 20 of 100 at 0.24, more than 19.2),
    a job restarted after a preemption keeps its GPUs 2 h, not 1 h: a job of a lower level
    waits for it, though the credit (4 more) is not spent.  Below the step (19), or for a job
    never stopped before, or past the 2 h, it is stopped as before; without a budget nothing
    changes."""
    t0 = 10 * H
    now = t0 + 120

    def stops(started, counts, restarts=1, **opts):
        old, nodes = _restarted_old(started, restarts)
        _, preempts, d = decide("las", snap([job("new", 8, t=t0)], [old], nodes, now=now, preemption_counts=counts),
                                **opts)
        return preempts == [("old", "new")], d

    stopped, d = stops(now - 1.5 * H, (100, 20), preemption_budget=BUDGET)
    assert not stopped
    assert d.wake_at == pytest.approx(now - 1.5 * H + 2 * H)  # when old's protection ends
    assert "the preemption budget is nearly spent" in d.waiting["new"], d.waiting  # and the job is told
    assert "keeps its GPUs 2 h, not 1 h" in d.waiting["new"], d.waiting
    stopped, d = stops(now - 0.5 * H, (100, 20), preemption_budget=BUDGET)  # within min_run anyway
    assert not stopped and "nearly spent" not in (d.waiting["new"] if "new" in d.waiting else ""), d.waiting
    assert stops(now - 1.5 * H, (100, 19), preemption_budget=BUDGET)[0]  # below the step
    assert stops(now - 1.5 * H, (100, 20), restarts=0, preemption_budget=BUDGET)[0]  # its first run: 1 h
    assert stops(now - 2 * H, (100, 20), preemption_budget=BUDGET)[0]  # past its 2 h
    assert stops(now - 1.5 * H, (100, 20), preemption_budget=None)[0]  # no budget, no step
    assert not stops(now - 1.5 * H, (100, 20))[0]  # the default budget (0.24): the step
    assert stops(now - 1.5 * H, (100, 20), preemption_budget=BUDGET, min_rerun=3600.0)[0]  # no first step


def test_the_preemptions_owed_are_not_held_to_the_first_step():
    """A notebook lease and a starving job stop a restarted job once it has run ``min_run``,
    first step or not: the preemptions owed to a promise are not held to the budget."""
    t0 = 10 * H
    now = t0 + 120
    for claimer in (lease("nb", "w", t0), job("starved", 8, t=t0 - 7 * H)):
        old, nodes = _restarted_old(now - 1.5 * H)
        _, preempts, _ = decide("las", snap([claimer], [old], nodes, now=now, preemption_counts=(100, 20)),
                                preemption_budget=BUDGET)
        assert preempts == [("old", claimer.id)], claimer.id
        old, nodes = _restarted_old(now - 0.5 * H)  # within min_run: not even for them
        _, preempts, _ = decide("las", snap([claimer], [old], nodes, now=now, preemption_counts=(100, 20)),
                                preemption_budget=BUDGET)
        assert preempts == [], claimer.id


def test_the_projection_waits_out_a_restarted_jobs_longer_protection():
    """The queue's estimate follows the pass: under the first step a restarted job is stopped
    for the queued one when its 2 h are up, not at the next pass; and its reason says why
    (not a notebook's, which the step does not hold back, nor while the restarted job is
    within its first hour anyway)."""
    from flightbase_jobqueue.scheduling import make_policy
    from flightbase_jobqueue.scheduling.insight import explain

    step = "keeps its GPUs 2 h, not 1 h"

    t0 = 10 * H
    now = t0 + 120
    old, nodes = _restarted_old(now - 1.5 * H)
    budgeted = make_policy("las", preemption_budget=BUDGET)
    (new,) = explain(snap([job("new", 8, t=t0)], [old], nodes, now=now, preemption_counts=(100, 20)), policy=budgeted)
    assert new.estimated_start == pytest.approx(now - 1.5 * H + 2 * H), new
    assert "the preemption budget is nearly spent" in new.reason and step in new.reason, new
    (below,) = explain(snap([job("new", 8, t=t0)], [old], nodes, now=now, preemption_counts=(100, 19)), policy=budgeted)
    assert "can start at the next pass" in below.reason and step not in below.reason, below
    (nb,) = explain(snap([lease("nb", "w", t0)], [old], nodes, now=now, preemption_counts=(100, 20)), policy=budgeted)
    assert "can start at the next pass" in nb.reason and step not in nb.reason, nb  # owed: not held to it
    young, nodes = _restarted_old(now - 0.5 * H)
    (new,) = explain(snap([job("new", 8, t=t0)], [young], nodes, now=now, preemption_counts=(100, 20)), policy=budgeted)
    assert new.estimated_start > now and step not in new.reason, new

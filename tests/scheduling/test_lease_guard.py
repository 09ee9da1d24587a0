"""Head-of-line rule 5: a notebook lease (non-preemptible, no known end) may
not push back a job ahead of it that waits for GPUs, under every policy; it
still starts at once when nothing ahead of it waits.  Literal tables."""

import pytest

from flightbase_jobqueue.scheduling import lease
from flightbase_jobqueue.scheduling.core import PassState, open_ended

from scheduling_factories import decide, job, node, quota, running, snap

POLICIES = ["las", "fifo", "backfill", "fairshare", "sjf"]


def issue_scenario(**limits):
    """4 slots; t1 has ended, t2 (2 slots) still runs; the 4-slot training
    'big' was queued before the notebook lease 'nb'."""
    t2 = running(job("t2", 2, t=0, max_runtime=600), {"n": [2, 3]}, started=0)
    queue = [job("big", 4, t=5), lease("nb", "w", submitted_at=10)]
    return snap(queue, [t2], [node("n", total=4, free=[0, 1])], now=100, limits=limits)


@pytest.mark.parametrize("policy", POLICIES)
def test_a_lease_does_not_take_a_slot_the_older_gang_job_needs(policy):
    admits, preempts, d = decide(policy, issue_scenario())
    assert admits == {} and preempts == []
    if policy != "fifo":  # fifo stops its walk at the blocked head: the lease is never reached
        assert "may not delay training big" in d.waiting["nb"], d.waiting["nb"]
        assert "reserved for 00:10 when training t2 ends" in d.waiting["nb"]


@pytest.mark.parametrize("policy", POLICIES)
def test_once_the_gang_job_runs_the_lease_waits_then_starts(policy):
    big = running(job("big", 4, t=5, max_runtime=60), {"n": [0, 1, 2, 3]}, started=600)
    nb = lease("nb", "w", submitted_at=10)
    admits, _, _ = decide(policy, snap([nb], [big], [node("n", total=4, free=[])], now=620))
    assert admits == {}
    admits, _, _ = decide(policy, snap([nb], [], [node("n", total=4)], now=700))
    assert admits == {"nb": {"n": (0,)}}


@pytest.mark.parametrize("policy", POLICIES)
def test_a_lease_starts_at_once_when_nothing_ahead_waits(policy):
    t2 = running(job("t2", 2), {"n": [2, 3]})
    admits, _, _ = decide(policy, snap([lease("nb", "w", submitted_at=10)], [t2],
                                       [node("n", total=4, free=[0, 1])], now=100))
    assert admits == {"nb": {"n": (0,)}}


@pytest.mark.parametrize("policy", ["las", "backfill", "fairshare", "sjf"])
def test_a_lease_uses_gpus_the_reservation_does_not_need(policy):
    t2 = running(job("t2", 2, max_runtime=600), {"a": [2, 3]})
    queue = [job("big", 4, t=5), lease("nb", "w", submitted_at=10)]
    s = snap(queue, [t2], [node("a", total=4, free=[0, 1]), node("b", total=2)], now=100)
    admits, _, _ = decide(policy, s)
    assert admits == {"nb": {"b": (0,)}}


@pytest.mark.parametrize("policy", ["las", "backfill"])
def test_a_lease_that_would_need_another_lease_to_end_first_waits(policy):
    # A notebook already holds slot 0: 'big' can start only when it ends; a
    # second notebook would make it wait for two.
    active = [running(lease("old-nb", "w"), {"n": [0]}), running(job("t2", 2, max_runtime=600), {"n": [2, 3]})]
    queue = [job("big", 4, t=5), lease("nb", "w", submitted_at=10)]
    admits, _, d = decide(policy, snap(queue, active, [node("n", total=4, free=[1])], now=100))
    assert admits == {}
    assert "which can start only when notebook lease old-nb ends" in d.waiting["nb"]


@pytest.mark.parametrize("policy", POLICIES)
def test_a_lease_within_its_guarantee_is_not_held_by_another_workspace_borrowing(policy):
    # w borrows above its guarantee of 2 for 'big'; v's notebook is within v's guarantee.
    t2 = running(job("t2", 2, ws="w", max_runtime=600), {"n": [2, 3]})
    queue = [job("big", 4, ws="w", t=5), lease("nb", "v", submitted_at=10)]
    s = snap(queue, [t2], [node("n", total=4, free=[0, 1])], now=100,
             limits={"w": quota(2), "v": quota(2)})
    admits, _, _ = decide(policy, s)
    assert admits == {"nb": {"n": (0,)}}


@pytest.mark.parametrize("policy", ["las", "backfill", "fairshare", "sjf", "fifo"])
def test_a_lease_within_its_guarantee_still_waits_for_its_own_workspace(policy):
    # One workspace whose guarantee is the whole cluster: its queue order holds.
    admits, _, d = decide(policy, issue_scenario(w=quota(4)))
    assert admits == {}
    if policy != "fifo":
        assert "may not delay training big" in d.waiting["nb"], d.waiting["nb"]


def test_a_preemptible_lease_or_one_with_a_declared_end_is_not_open_ended():
    assert open_ended(lease("nb", "w"))
    assert not open_ended(lease("nb", "w", preemptible=True))
    assert not open_ended(job("t", 1))


def test_reservations_for_the_guard_let_leases_never_end():
    nb = running(lease("nb", "w"), {"n": [0]})
    st = PassState(snap([], [nb, running(job("t", 3, max_runtime=60), {"n": [1, 2, 3]})],
                        [node("n", total=4, free=[])], now=0))
    head = job("big", 4)
    assert st.reservation(head)[0] == 3600.0  # the lease's default estimate, as before
    shadow, where, label = st.reservation(head, open_ended_never_end=True)
    assert shadow == float("inf") and label == "notebook lease nb"
    assert st.reservation(job("two", 2), open_ended_never_end=True)[0] == 60.0

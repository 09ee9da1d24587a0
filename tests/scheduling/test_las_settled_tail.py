"""The las pass on a full, settled cluster with quotas (the live service's usual state under
load, #17 part 6): once nothing is free and nothing is being freed, the rest of the walk only
records why each job waits (``LasPolicy.schedule``'s shortcut, one shared formatter per
level).  The walk stops there and the tail's reasons are recorded when first read, notebook
leases queued or not (before, a queued lease made the pass walk the whole tail job by job: 9 ms
instead of 1 ms per pass with 10,000 jobs queued and quotas).  These check that every job still
gets its own reason, that an open-ended notebook lease in the middle of that tail still gets
the reason of head-of-line rule 5 (behind the job ahead it may not push back) and the jobs
after it theirs, and that a lease queued does not change the other jobs' reasons or the
wake-up."""

from __future__ import annotations

from flightbase_jobqueue.scheduling.core import describe_need
from flightbase_jobqueue.scheduling.policies.las import LasPolicy
from flightbase_jobqueue.scheduling.queueview import QueueView
from flightbase_jobqueue.scheduling.types import ActiveJob, Job, Node, Snapshot, WorkspaceLimits

NOW = 10_000.0


def full_cluster(queue: list[Job], limits: dict[str, WorkspaceLimits]) -> Snapshot:
    """8 slots on one node, all held by jobs that started less than min_run ago (none can be
    preempted yet), so a pass is settled and leaves every queued job waiting."""
    active = [ActiveJob(Job(id=f"run{i}", workspace=f"ws{i % 2}", gpus=2, submitted_at=NOW - 20, priority=0),
                        {"n": (2 * i, 2 * i + 1)}, NOW - 5.0) for i in range(4)]
    return Snapshot(now=NOW, queue=QueueView.build(queue), active=active, nodes=[Node("n", 8, ())], limits=limits)


def test_every_job_of_the_settled_tail_gets_its_own_reason_and_level():
    queue = [Job(id=f"q{i}", workspace=f"ws{i % 2}", gpus=(1, 2, 4)[i % 3], submitted_at=NOW - 1000 + i,
                 attained=(0.0, 5e4, 5e5)[i % 3] * (1 + i % 2)) for i in range(60)]
    limits = {f"ws{k}": WorkspaceLimits(quota=4, borrowing_limit=100) for k in range(2)}  # both at quota: all borrow
    policy = LasPolicy(min_run=60.0)
    snap = full_cluster(queue, limits)
    d = policy.schedule(snap)
    assert not d.admits and not d.preempts
    assert set(d.waiting) == {j.id for j in queue}
    levels = {j.id: policy.rank(j, NOW)[0] for j in queue}
    assert len(set(levels.values())) > 1  # more than one level in the tail
    # a reason is formatted when read, from the queue: one read after its job left the queue
    # (cancelled meanwhile) still reads, without the job's need
    snap.queue.remove("q59")
    assert d.waiting["q59"] == f"waited for GPUs; 0 GPUs free; service level {levels['q59']}"
    for j in queue[:-1]:
        assert d.waiting[j.id] == f"{describe_need(j, 8)}; 0 GPUs free; service level {levels[j.id]}", j


def test_a_notebook_lease_in_the_settled_tail_takes_the_general_path_and_the_walk_goes_on():
    # trainings first in rank order, then a notebook lease, then more trainings
    train = [Job(id=f"t{i}", workspace="ws0", gpus=2, submitted_at=NOW - 900 + i) for i in range(5)]
    # within its workspace's quota (a lease does not borrow), behind a training of its workspace
    # that would borrow: the guaranteed sweep leaves it to the main walk
    train.append(Job(id="big", workspace="ws3", gpus=8, submitted_at=NOW - 800))
    lease = Job(id="nb", workspace="ws3", gpus=1, kind="lease", preemptible=False, submitted_at=NOW - 500)
    later = [Job(id=f"u{i}", workspace="ws0", gpus=1, submitted_at=NOW - 400 + i) for i in range(5)]
    limits = {ws: WorkspaceLimits(quota=4, borrowing_limit=100) for ws in ("ws0", "ws1", "ws2", "ws3")}
    d = LasPolicy(min_run=60.0).schedule(full_cluster(train + [lease] + later, limits))
    assert not d.admits and not d.preempts
    # the lease waits behind the training of its workspace ahead of it (rule 5), not with a shortage reason
    assert d.waiting["nb"].startswith("behind big ("), d.waiting["nb"]
    # and the trainings after it have their reasons
    for j in later:
        assert d.waiting[j.id].endswith("; 0 GPUs free; service level 0"), d.waiting[j.id]
    assert set(d.waiting) == {j.id for j in train + [lease] + later}


def test_the_walk_stops_at_the_tail_with_a_lease_queued_or_not_with_the_same_reasons_and_wake_up():
    """The same queue with and without a notebook lease ranked last: either way the pass records
    none of the tail's reasons (they are recorded when read). Both give the same reasons and the
    same wake-up, the end of ``preempt_after`` for the earliest recent job that may borrow: not
    the earlier ones of a workspace at its cap or blocked."""
    old = [Job(id=f"o{i}", workspace="ws0", gpus=(1, 2, 4)[i % 3], submitted_at=NOW - 1000 + i,
               attained=(0.0, 5e4, 5e5)[i % 3]) for i in range(20)]
    recent = [Job(id=f"r{i}", workspace="ws0", gpus=1, submitted_at=NOW - 50 + i) for i in range(5)]
    blocked = Job(id="np", workspace="ws0", gpus=1, preemptible=False, submitted_at=NOW - 55)  # does not borrow
    capped = Job(id="c", workspace="ws1", gpus=1, submitted_at=NOW - 58)  # ws1 at quota + borrowing limit
    jobs = old + recent + [blocked, capped]
    limits = {"ws0": WorkspaceLimits(quota=4, borrowing_limit=100), "ws1": WorkspaceLimits(quota=2, borrowing_limit=2)}
    stopped = LasPolicy(min_run=60.0).schedule(full_cluster(jobs, limits))
    assert not stopped.admits and not stopped.preempts
    assert len(stopped.waiting._raw) == 0  # the walk stopped at the first job: nothing recorded yet
    lease = Job(id="nb", workspace="ws0", gpus=1, kind="lease", preemptible=False, priority=-10,
                submitted_at=NOW - 2000)
    walked = LasPolicy(min_run=60.0).schedule(full_cluster(jobs + [lease], limits))
    assert not walked.admits and not walked.preempts
    assert len(walked.waiting._raw) == 0  # stopped there too
    assert len(walked.waiting) == len(jobs) + 1
    assert walked.waiting["nb"] == "workspace quota 4/4 in use (a non-preemptible job does not borrow)"
    assert stopped.wake_at == walked.wake_at == NOW - 50 + 60.0
    assert dict(stopped.waiting.items()) == {k: v for k, v in walked.waiting.items() if k != "nb"}
    assert set(stopped.waiting) == {j.id for j in jobs}
    assert "non-preemptible" in stopped.waiting["np"] and "borrowing limit" in stopped.waiting["c"]

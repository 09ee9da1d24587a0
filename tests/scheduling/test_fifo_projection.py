"""The queue's projection under the policies other than ``las`` (``insight._project_fifo``)
follows their pass, moment by moment, where it knows the runtimes.

Until 2026-12-07 it was one walk in the queue's order of the moment it was made: each job
started when its whole gang fitted, after every job ahead of it. Under quotas the pass does
otherwise: a job within its workspace's guarantee goes first (``core.guaranteed_sweep``),
reclaims borrowed GPUs, and passes a blocked head; and where a workspace's priorities
differ, its next job takes the place of the one that started. The walk showed such jobs
hours late and the jobs they pass hours early."""

from __future__ import annotations

import random

import pytest

from flightbase_jobqueue.scheduling import estimates
from flightbase_jobqueue.scheduling.insight import explain
from flightbase_jobqueue.sim.replay import (EstimateRecorder, make_nodes, make_quotas, make_replay_policy,
                                            replay_jobs, simulate)
from flightbase_jobqueue.sim.trace import read_trace

from scheduling_factories import job, node, quota, running, snap
from tests.helpers.traces import HEADER


def _all_at_once(path, seed: int, jobs: int = 60) -> str:
    """``jobs`` jobs of 1 to 8 GPUs in three workspaces, all submitted at 0 (no arrival later
    can change a start the queue showed), running 100 to 5,000 s."""
    rng = random.Random(seed)
    rows = [f"j{i},0,{rng.choice([1, 1, 2, 4, 8])},{rng.randint(100, 5000)},{rng.choice('abc')},,,\n"
            for i in range(jobs)]
    path.write_text(HEADER + "".join(rows))
    return str(path)


@pytest.mark.parametrize("seed", [0, 2])
def test_under_fifo_with_quotas_and_known_runtimes_every_estimate_shown_is_the_actual_start(
        tmp_path, monkeypatch, seed):
    """A replay on 2 x 8 GPUs with quotas in proportion to each workspace's demand (borrowing
    on) and no restart cost, whose estimates are given the true runtimes (the replay's
    recorder shows every estimate the queue would show: at submission and at each change of
    position): every one of them is the job's actual first start. Seed 2 has a reclaim (a
    borrowed job stopped for one within its guarantee), seed 0 none. Before, the median error
    was 4,846 s (seed 0) and 14,404 s (seed 2). The runtimes are what the test gives the
    projection in place of the history (a monkeypatch of ``HistoryEstimates.remaining``): the
    replay, its coordinator and its policy are the real ones."""
    tjobs = read_trace(_all_at_once(tmp_path / "t.csv", seed)).jobs
    durations = {j.id: j.duration for j in tjobs}
    plain = estimates.HistoryEstimates.remaining
    monkeypatch.setattr(estimates.HistoryEstimates, "remaining", lambda self, job, ran, q=0.5: (
        max(0.0, durations[job.id] - ran) if job.id in durations else plain(self, job, ran, q)))
    pol = make_replay_policy("fifo", None)
    rec = EstimateRecorder(pol, set(durations))
    sim = simulate(replay_jobs(tjobs, "fifo"), durations, make_nodes(2, 8), pol,
                   make_quotas(tjobs, 16, "proportional", True), observe=rec)
    first = sim.backend.first_start
    shown = [(jid, est) for jid, _t, _pos, est, _lo, _hi in rec.samples if jid in first]
    assert len(shown) > 500 and all(est is not None for _, est in shown)
    wrong = [(jid, est, first[jid]) for jid, est in shown if abs(est - first[jid]) > 1e-6]
    assert wrong == []
    assert (len(sim.store.preemptions) > 0) == (seed == 2)


def test_a_job_within_its_guarantee_is_shown_passing_a_blocked_head():
    """One node of 8 GPUs, all held by ``b`` (no quota) until 1,000 s, 2,000 s and 3,000 s. Queued:
    ``b8`` (8 GPUs, first), then ``a2`` of workspace ``a`` (quota 2). Under ``fifo`` the pass
    reclaims ``b``'s newest job for ``a2`` at once (the guaranteed sweep), and ``b8`` starts
    when both ``b``'s other jobs and ``a2`` have ended. The walk showed ``a2`` after ``b8``."""
    from flightbase_jobqueue.scheduling import make_policy

    active = [running(job("r1", 4, ws="b", max_runtime=1000), {"n": [0, 1, 2, 3]}, started=0.0),
              running(job("r2", 2, ws="b", max_runtime=2000), {"n": [4, 5]}, started=0.0),
              running(job("r3", 2, ws="b", max_runtime=3000), {"n": [6, 7]}, started=50.0)]
    s = snap([job("b8", 8, ws="b", t=1.0, max_runtime=500), job("a2", 2, ws="a", t=2.0, max_runtime=400)],
             active, [node("n", total=8, free=[])], now=100.0, limits={"a": quota(2)})
    found = {i.job_id: i for i in explain(s, policy=make_policy("fifo"))}
    assert found["a2"].estimated_start == 100.0
    # r3 (reclaimed, 2,950 s left) runs again once a2 has ended: b8 waits for it, then for r2.
    assert found["b8"].estimated_start == 500.0 + 2950.0


def test_a_copy_of_the_queue_reads_alike_and_changes_apart():
    """``QueueView.copy`` (each projection starts and requeues jobs in its own): the same
    jobs in the same order, with priorities within a workspace; a job removed from or added to
    the copy leaves the original as it was, and the other way round."""
    from flightbase_jobqueue.scheduling.queueview import QueueView

    jobs = [job("a1", ws="a", t=1.0), job("b1", ws="b", t=2.0), job("a2", ws="a", t=3.0, priority=5),
            job("b2", ws="b", t=4.0)]
    view = QueueView.build(jobs)
    copy = view.copy()
    assert [j.id for j in copy] == [j.id for j in view] == ["a2", "b1", "a1", "b2"]
    copy.remove("a2")
    copy.add(job("c1", ws="c", t=0.5))
    assert [j.id for j in copy] == ["c1", "a1", "b1", "b2"]
    assert [j.id for j in view] == ["a2", "b1", "a1", "b2"] and "c1" not in view and len(view) == 4
    view.remove("b1")
    assert [j.id for j in copy] == ["c1", "a1", "b1", "b2"]


def test_past_its_moment_starts_a_projection_goes_on_as_one_walk(monkeypatch):
    """Past ``FIFO_MOMENT_STARTS`` starts the projection goes on with one walk in the queue's
    order of that moment (the cost bound of a long queue). On one GPU, six 100-second jobs
    queued in turn, and two sweeps whose held jobs are released as ``j4`` (``h2``, then ``h3``
    when ``h2`` ends) and ``j5`` (``h1``) end: moment by moment ``h1`` goes before ``h2`` (it
    was submitted first); past the cut the walk takes held jobs as they are released, so the
    queued jobs keep their starts and the held ones share the same three."""
    from flightbase_jobqueue.scheduling import insight, make_policy
    from flightbase_jobqueue.scheduling.insight import HeldSweep

    queued = [job(f"j{i}", 1, ws="a" if i % 2 else "b", t=float(i), max_runtime=100) for i in range(6)]
    s = snap(queued, [running(job("r", 1, ws="s", max_runtime=50), {"n": [0]})], [node("n", total=1, free=[])])
    sweeps = [HeldSweep(frozenset({"j5"}), (job("h1", 1, ws="s", t=10.0, max_runtime=100),)),
              HeldSweep(frozenset({"j4"}), (job("h2", 1, ws="s", t=11.0, max_runtime=100),
                                            job("h3", 1, ws="s", t=12.0, max_runtime=100)))]
    whole = {i.job_id: i.estimated_start for i in explain(s, policy=make_policy("fifo"), sweeps=sweeps)}
    assert whole == {**{f"j{i}": 50.0 + 100 * i for i in range(6)}, "h1": 650.0, "h2": 750.0, "h3": 850.0}
    for cap in (2, 6):
        monkeypatch.setattr(insight, "FIFO_MOMENT_STARTS", cap)
        cut = {i.job_id: i.estimated_start for i in explain(s, policy=make_policy("fifo"), sweeps=sweeps)}
        assert {j: cut[j] for j in whole if j.startswith("j")} == {j: whole[j] for j in whole if j.startswith("j")}
        assert sorted(cut[h] for h in ("h1", "h2", "h3")) == [650.0, 750.0, 850.0], cap

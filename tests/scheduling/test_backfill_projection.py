"""The queue's projection under ``backfill``, ``sjf`` and ``fairshare`` makes their pass: their
order (``sjf``'s shortest expected run first, fair share's workspace that deserves it most) and
EASY backfilling behind the reserved head (``insight._project_fifo`` with ``_PassRules``).

Until 2026-12-07 it walked the queue's order with ``fifo``'s rule: a job that backfilling starts
at once was shown after the head's start, and under ``sjf`` a short job submitted last was shown
last, where the pass starts it first."""

from __future__ import annotations

import pytest

from flightbase_jobqueue.scheduling import insight, make_policy
from flightbase_jobqueue.scheduling.insight import explain
from flightbase_jobqueue.sim.replay import exactness_replay

from scheduling_factories import job, node, running, snap


@pytest.mark.parametrize("policy", ["backfill", "sjf", "fairshare"])
@pytest.mark.parametrize("seed", [0, 1])
def test_with_declared_runtimes_every_estimate_shown_is_the_actual_start(policy, seed):
    """Every estimate the queue shows in the replay (the recorder takes one at submission and at
    each change of position: 400-1,000 here) is the job's actual first start, under each policy
    that backfills. Before, nearly every one was wrong, with a median error (seeds 0 and 1) of
    4,995 and 2,449 s under ``backfill``, 18,013 and 16,089 s under ``sjf``, 8,726 and 9,412 s
    under ``fairshare``: the projection walked the queue's order and made no backfill."""
    shown, wrong, _ = exactness_replay(policy, seed, "none")
    assert shown > 400
    assert wrong == []


@pytest.mark.parametrize("policy, seed", [("backfill", 0), ("sjf", 1)])
def test_with_quotas_every_estimate_is_exact_in_these_replays(policy, seed):
    """The same with quotas in proportion to each workspace's demand (borrowing on): the
    guaranteed sweep goes first, in the policy's order (under ``sjf`` the shortest expected
    job within its guarantee first, as ``core.guaranteed_sweep`` walks it). Exact under
    ``backfill`` where nothing is reclaimed (seed 0), and under ``sjf`` on seed 1 with its two
    reclaims. (The seeds with more reclaims: ``test_projection_follows_the_pass``.)"""
    shown, wrong, _ = exactness_replay(policy, seed, "proportional")
    assert shown > 400
    assert wrong == []


def _two_nodes_busy():
    """Two nodes of 4 GPUs: ``r1`` holds 3 of node ``n1`` until 1,000 s, ``r2`` all of ``n2``
    until 4,000 s (declared runtimes)."""
    active = [running(job("r1", 3, ws="x", max_runtime=1000), {"n1": [0, 1, 2]}),
              running(job("r2", 4, ws="x", max_runtime=4000), {"n2": [0, 1, 2, 3]})]
    return active, [node("n1", total=4, free=[3]), node("n2", total=4, free=[])]


def test_backfill_shows_a_short_job_starting_now_beside_the_reserved_head():
    """Under ``backfill``: queued ``big`` (4 GPUs, first: reserved node ``n1`` at 1,000 s),
    ``short`` (1 GPU, 500 s: it ends before that) and ``long`` (1 GPU, 5,000 s: it would delay
    ``big``). The pass starts ``short`` now; ``long`` waits for ``big``'s start. Before, the
    projection showed ``short`` at 1,000 s, after ``big``."""
    active, nodes = _two_nodes_busy()
    s = snap([job("big", 4, t=1.0, max_runtime=600), job("short", 1, t=2.0, max_runtime=500),
              job("long", 1, t=3.0, max_runtime=5000)], active, nodes)
    pol = make_policy("backfill")
    got = {i.job_id: i.estimated_start for i in explain(s, policy=pol, ranges=False)}
    assert [a.job_id for a in pol.schedule(s).admits] == ["short"]
    assert got == {"short": 0.0, "big": 1000.0, "long": 1600.0}


def test_sjf_shows_the_shortest_job_first_whatever_its_place_in_the_queue():
    """Under ``sjf``, on one GPU held until 100 s: three 1-GPU jobs of 3,000, 2,000 and 1,000 s,
    submitted in that order, start shortest first: at 100, 1,100 and 3,100 s. Before, the
    projection showed them in the queue's order (100, 3,100 and 5,100 s)."""
    s = snap([job("a", 1, t=1.0, max_runtime=3000), job("b", 1, t=2.0, max_runtime=2000),
              job("c", 1, t=3.0, max_runtime=1000)],
             [running(job("r", 1, ws="x", max_runtime=100), {"n": [0]})], [node("n", total=1, free=[])])
    got = {i.job_id: i.estimated_start for i in explain(s, policy=make_policy("sjf"), ranges=False)}
    assert got == {"c": 100.0, "b": 1100.0, "a": 3100.0}


def test_past_its_backfill_looks_a_projection_blocks_behind_the_head(monkeypatch):
    """The work's bound: past ``PASS_LOOKS`` jobs looked at, a blocked head blocks the rest, as
    under ``fifo``. With no looks left, ``short`` of the backfill test above is shown
    after ``big``; the head's own start is the same."""
    active, nodes = _two_nodes_busy()
    s = snap([job("big", 4, t=1.0, max_runtime=600), job("short", 1, t=2.0, max_runtime=500)], active, nodes)
    monkeypatch.setattr(insight, "PASS_LOOKS", 0)
    got = {i.job_id: i.estimated_start for i in explain(s, policy=make_policy("backfill"), ranges=False)}
    assert got == {"big": 1000.0, "short": 1600.0}


def test_past_its_moment_starts_an_sjf_projection_keeps_the_shortest_first(monkeypatch):
    """Past ``FIFO_MOMENT_STARTS`` starts the projection goes on with one walk (the cost bound
    of a long queue): under ``sjf`` in its order, not the queue's. The three jobs of the ``sjf``
    test above keep their starts with the cut after one start; before, the walk went on in the
    queue's order (``a`` at 1,100 s, then ``b``)."""
    s = snap([job("a", 1, t=1.0, max_runtime=3000), job("b", 1, t=2.0, max_runtime=2000),
              job("c", 1, t=3.0, max_runtime=1000)],
             [running(job("r", 1, ws="x", max_runtime=100), {"n": [0]})], [node("n", total=1, free=[])])
    monkeypatch.setattr(insight, "FIFO_MOMENT_STARTS", 1)
    got = {i.job_id: i.estimated_start for i in explain(s, policy=make_policy("sjf"), ranges=False)}
    assert got == {"c": 100.0, "b": 1100.0, "a": 3100.0}

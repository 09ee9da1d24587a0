"""Bursts named at submission (scheduling/bursts.py): a workspace's alike jobs submitted together,
which the start estimates draw at one runtime quantile (#17, part 2)."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from flightbase_jobqueue.scheduling import make_policy
from flightbase_jobqueue.scheduling.bursts import GAP, MOST, Bursts
from flightbase_jobqueue.scheduling.estimates import HistoryEstimates
from flightbase_jobqueue.scheduling.insight import explain
from flightbase_jobqueue.sim.replay import replay_jobs
from flightbase_jobqueue.sim.trace import TraceJob

from scheduling_factories import job, node, running, snap


def test_alike_jobs_submitted_within_the_gap_share_a_burst_and_others_do_not():
    b = Bursts()
    first = b.name("vision", 1, "training", 1000.0)
    assert b.name("vision", 1, "training", 1000.0 + GAP - 1) == first
    assert b.name("vision", 1, "training", 1000.0 + 2 * GAP - 2) == first  # the gap is to the previous job
    assert b.name("vision", 2, "training", 1000.0 + 2 * GAP - 1) != first  # another size
    assert b.name("nlp", 1, "training", 1000.0 + 2 * GAP - 1) != first  # another workspace
    later = b.name("vision", 1, "training", 1000.0 + 3 * GAP)  # a gap of more than GAP: a new burst
    assert later != first
    assert b.name("vision", 1, "lease", 1000.0 + 3 * GAP) == ""  # a notebook lease is no burst


def test_a_stream_is_cut_into_bursts_of_at_most_most_jobs_that_never_change():
    """One job every 11 s for three hours (day 63's stream): bursts of MOST jobs, each named from the
    jobs submitted before it only, so naming the same stream again, or its first half alone,
    gives the same names."""
    times = [i * 11.0 for i in range(1000)]
    b = Bursts()
    names = [b.name("w", 1, "training", t) for t in times]
    assert list(Counter(names).values()) == [MOST] * (1000 // MOST)
    again = Bursts()
    assert [again.name("w", 1, "training", t) for t in times[:500]] == names[:500]


def test_after_a_restart_the_open_burst_goes_on_from_the_jobs_queued_and_running():
    b = Bursts(most=5)
    stored = [replace(job(f"j{i}", 1, ws="w", t=100.0 + i), burst=b.name("w", 1, "training", 100.0 + i))
              for i in range(4)]
    resumed = Bursts(most=5)
    resumed.resume(stored)
    assert resumed.name("w", 1, "training", 110.0) == stored[0].burst  # the fifth of five
    assert resumed.name("w", 1, "training", 111.0) != stored[0].burst  # the sixth starts another
    fresh = Bursts(most=5)
    fresh.resume(stored)
    assert fresh.name("w", 1, "training", 104.0 + GAP + 1) != stored[0].burst  # too late to join


def test_the_replay_names_bursts_in_submission_order_whatever_the_traces_order():
    tjobs = [TraceJob("b", 30.0, 1, 100.0, "w"), TraceJob("a", 0.0, 1, 100.0, "w"), TraceJob("c", 200.0, 1, 100.0, "w")]
    jobs = replay_jobs(tjobs, "las")
    assert [j.id for j in jobs] == ["b", "a", "c"]
    assert jobs[0].burst == jobs[1].burst != jobs[2].burst


def test_a_stream_waited_on_is_drawn_as_its_bursts_not_as_its_minutes():
    """Forty one-GPU jobs of one workspace, one every 20 s (thirteen minutes), fill the cluster; a
    job of another workspace waits for one of them to end.  Named at submission they are one
    burst, drawn at one quantile: the waiting job is shown starting when one such job would end.
    Cut by the minute they were submitted in (what the estimates did before, and still do for a
    job stored without a burst) they are fourteen bursts drawn apart, and the first to end is
    the earliest of fourteen draws: shown much sooner."""
    est = HistoryEstimates()
    for i in range(1, 101):
        est.observe(job("done", 1, ws="w"), 100.0 * i)  # 100 s .. 10,000 s
    start = 40 * 3600.0
    b = Bursts()

    def estimate(named: bool, n: int = 40) -> float:
        held = []
        for i in range(n):  # submitted 20 s apart (queued meanwhile), all running since ``start``
            j = job(f"r{i}", 1, t=start - 800.0 + i * 20.0)
            if named:
                j = replace(j, burst=b.name(j.workspace, j.gpus, j.kind, j.submitted_at))
            held.append(running(j, {"n": [i]}, started=start))
        s = snap([job("q", 1, ws="other", t=start)], held, [node("n", n, free=[])], now=start + 5.0, estimates=est)
        (i,) = explain(s, policy=make_policy("las"))
        return i.estimated_start - start

    alone, named, by_minute = estimate(True, 1), estimate(True), estimate(False)
    assert named == alone  # one draw: when one such job would end
    assert by_minute < named - 600.0

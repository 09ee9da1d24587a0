"""Start estimates (#17): the runtime estimator, the queue's forward projection and its range,
and the replay's accuracy figures computed from the estimates it recorded."""

from __future__ import annotations

import random

import pytest

from flightbase_jobqueue.scheduling import make_policy
from flightbase_jobqueue.scheduling.estimates import HistoryEstimates
from flightbase_jobqueue.scheduling.insight import explain
from flightbase_jobqueue.sim.replay import (EstimateRecorder, estimate_errors, make_nodes, replay, replay_jobs,
                                            simulate)
from flightbase_jobqueue.scheduling.types import Job

from scheduling_factories import decide, job, node, running, snap
from tests.helpers.traces import write_random_trace

def history(runtimes, ws="w", gpus=1) -> HistoryEstimates:
    est = HistoryEstimates()
    for r in runtimes:
        est.observe(job("done", gpus, ws=ws), r)
    return est


# -- the estimator -------------------------------------------------------------------------------

def test_remaining_is_conditional_on_what_the_job_has_already_run():
    est = history([100.0 * i for i in range(1, 101)])  # 100 s .. 10,000 s
    j = job("a")
    assert est.remaining(j, 0) == pytest.approx(5100.0)            # median of all
    # After 8,000 s only runtimes above 8,000 s are possible: median of 8,100 .. 10,000 s.
    assert est.remaining(j, 8000) == pytest.approx(9100.0 - 8000)
    # The unconditional estimate would call this job overdue (5,000 s < 8,000 s run).
    assert est.estimate(j) < 8000
    lo, mid, hi = (est.remaining(j, 2000, q) for q in (0.25, 0.5, 0.75))
    assert lo < mid < hi


def test_remaining_without_history_expects_a_long_job_to_run_about_as_long_again():
    est = HistoryEstimates(default=3600.0)
    j = job("a")
    assert est.remaining(j, 0) == 3600.0
    assert est.remaining(j, 7200) == 7200.0
    assert est.remaining(j, 10) == 600.0  # the floor
    assert est.remaining(j, 7200, 0.25) == pytest.approx(2400.0)
    assert est.remaining(j, 7200, 0.75) == pytest.approx(21600.0)
    # Past every runtime seen: no conditional sample, the same rule.
    est = history([100.0] * 5)
    assert est.remaining(j, 1000) == 1000.0


def test_notebook_leases_and_trainings_have_histories_of_their_own():
    """A lease's run time is how long someone kept a notebook open: it must not make the
    one-GPU trainings of its workspace look longer (their estimates, las's order), and a
    lease is estimated from leases, not from trainings."""
    from flightbase_jobqueue.scheduling.types import lease

    est = history([600.0] * 5)  # one-GPU trainings of w: ten minutes
    for i in range(20):
        est.observe(lease(f"nb{i}", "w"), 8 * 3600.0)  # notebooks kept open a working day
    training, nb = job("t"), lease("nb", "w")
    assert est.estimate(training) == 600.0
    assert est.remaining(training, 0) == 600.0
    assert est.completed_remaining(training, 0) == 600.0
    assert est.estimate(nb) == 8 * 3600.0
    assert est.remaining(nb, 3600.0) == 7 * 3600.0
    # another workspace's lease: all leases, before any training
    assert est.estimate(lease("nb", "other")) == 8 * 3600.0
    # what runs now is censored in its own history only
    est.censor(0.0, [(lease(f"open{i}", "w"), 20 * 3600.0) for i in range(40)])
    assert est.remaining(training, 0) == 600.0
    assert est.remaining(nb, 0) != 8 * 3600.0
    est.censor(1e6, [(job(f"long{i}"), 20 * 3600.0) for i in range(40)])
    assert est.remaining(training, 0) != 600.0
    assert est.remaining(nb, 0) == 8 * 3600.0


def test_running_jobs_count_as_censored_runtimes():
    """Under load the completed runtimes are the short ones; jobs still running long are censored
    observations (Kaplan-Meier): with them the estimate of a fresh job's runtime is longer."""
    est = history([100.0 * i for i in range(1, 21)])  # completions: 100 .. 2,000 s
    j = job("a")
    plain = est.remaining(j, 0)
    assert plain == pytest.approx(1100.0)
    # 60 jobs have been running for 3,000 s, longer than any completion: at most 20/80 of the
    # runtimes are known to be <= 2,000 s, so the median is past every completed one.
    est.censor(0.0, [(job(f"r{i}"), 3000.0) for i in range(60)])
    assert est.remaining(j, 0) > 2000.0
    # 20 still running at 1,550 s: survival is 25/40 there, then 4/5 of it at 1,600 s: the median.
    est = history([100.0 * i for i in range(1, 21)])
    est.censor(0.0, [(job(f"r{i}"), 1550.0) for i in range(20)])
    assert est.remaining(j, 0) == pytest.approx(1600.0)
    # The censored set is refreshed at most every km_refresh seconds of the caller's clock.
    est.censor(10.0, [(job(f"r{i}"), 3000.0) for i in range(60)])
    assert est.remaining(j, 0) <= 2000.0
    est.censor(10.0 + est.km_refresh, [(job(f"r{i}"), 3000.0) for i in range(60)])
    assert est.remaining(j, 0) > 2000.0


def test_past_every_completed_runtime_a_fresh_job_is_expected_longer_than_all_of_them():
    """When the censored runs put the median past the last completed runtime T, a job that has
    run less than T is expected on a scale-free tail from T (S(t) = S(T) T / t).  It used to
    get the no-history rule, which for a job that has not run is the default hour: here below
    every runtime ever seen."""
    est = history([7200.0 + 100.0 * i for i in range(20)])  # 2 h .. 2 h 31 min 40 s
    est.censor(0.0, [(job(f"r{i}"), 5 * 3600.0) for i in range(60)])  # 60 running for 5 h
    j = job("a")
    # S(9,100 s) = 60/80: the 25th percentile is the last completion, the median 9,100 x 0.75 / 0.5
    assert [est.remaining(j, 0, q) for q in (0.25, 0.5, 0.75)] == pytest.approx([9100.0, 13650.0, 27300.0])
    # after 1 h of run, the same tail, less the hour
    assert est.remaining(j, 3600.0) == pytest.approx(13650.0 - 3600.0)
    # a job past T: the tail from its own run time (as long again at the median)
    assert est.remaining(j, 20000.0) == pytest.approx(20000.0)


def test_a_declared_max_runtime_bounds_the_remaining_time():
    est = history([10_000.0] * 5)
    assert est.remaining(job("a", max_runtime=600.0), 100) == 500.0


def test_history_is_per_workspace_and_size_class_first():
    est = history([100.0] * 5, ws="a")
    for _ in range(5):
        est.observe(job("x", ws="b"), 5000.0)
    assert est.remaining(job("q", ws="a"), 0) == 100.0
    assert est.remaining(job("q", ws="b"), 0) == 5000.0


# -- the projection --------------------------------------------------------------------------------

def test_las_projection_counts_a_lower_level_job_as_preemptible_after_min_run():
    """One GPU, held by a job that has sunk to level 1 (5 h attained) and started 100 s ago: under
    las a new job preempts it once it has run min_run (300 s), not when it ends."""
    est = history([20 * 3600.0] * 5)
    long = job("long", attained=5 * 3600.0)
    s = snap([job("new", t=1000.0)], [running(long, {"n": [0]}, started=900.0)], [node("n", 1, free=[])],
             now=1000.0, estimates=est)
    # The levels and min_run this test is about (4 h first threshold, 300 s), not the defaults.
    pol = make_policy("las", thresholds=(4 * 3600.0, 64 * 3600.0), min_run=300.0, swap_after=0.0)
    las = {i.job_id: i for i in explain(s, policy=pol)}["new"]
    assert las.estimated_start == pytest.approx(1200.0)
    fifo = {i.job_id: i for i in explain(s)}["new"]
    assert fifo.estimated_start > 10 * 3600  # the FIFO walk waits for its end


def test_las_projection_waits_swap_after_before_a_one_gpu_job_stops_a_small_one():
    """The same table with the default swap_after (600 s): the projection, like the pass, has
    the one-GPU job wait that long from its submission before it stops the one-GPU job."""
    est = history([20 * 3600.0] * 5)
    long = job("long", attained=5 * 3600.0)
    s = snap([job("new", t=1000.0)], [running(long, {"n": [0]}, started=900.0)], [node("n", 1, free=[])],
             now=1000.0, estimates=est)
    pol = make_policy("las", thresholds=(4 * 3600.0, 64 * 3600.0), min_run=300.0)
    assert {i.job_id: i for i in explain(s, policy=pol)}["new"].estimated_start == pytest.approx(1600.0)


def test_las_projection_does_not_block_a_small_job_behind_a_big_one():
    est = history([3600.0] * 5)
    s = snap([job("big", 2, t=1.0), job("small", 1, t=2.0)],
             [running(job("r", 1), {"n": [0]}, started=0.0)], [node("n", 2, free=[1])], now=10.0, estimates=est)
    found = {i.job_id: i for i in explain(s, policy=make_policy("las"))}
    assert found["small"].estimated_start == 10.0
    assert found["big"].estimated_start > 10.0
    # The FIFO projection keeps queue order: the small job waits behind the big one.
    fifo = {i.job_id: i for i in explain(s)}
    assert fifo["small"].estimated_start >= fifo["big"].estimated_start


def test_the_range_brackets_the_estimate_and_widens_with_spread_runtimes():
    rng = random.Random(1)
    est = history([rng.lognormvariate(7, 1.2) for _ in range(200)])
    s = snap([job("q", 1, t=5.0)], [running(job("r", 1), {"n": [0]}, started=0.0)], [node("n", 1, free=[])],
             now=5.0, estimates=est)
    for policy in (None, make_policy("las")):
        (i,) = explain(s, policy=policy)
        lo, hi = i.estimated_range
        assert lo <= i.estimated_start <= hi and hi - lo > 60
    flat = history([1000.0] * 20)
    s = snap([job("q", 1, t=5.0)], [running(job("r", 1), {"n": [0]}, started=0.0)], [node("n", 1, free=[])],
             now=5.0, estimates=flat)
    (i,) = explain(s, policy=make_policy("las"))
    assert i.estimated_range == (1000.0, 1000.0) and i.estimated_start == 1000.0


def test_a_burst_of_alike_jobs_frees_its_first_gpu_when_one_of_them_would():
    """Forty one-GPU jobs that one workspace submitted together fill the cluster.  In each sampled
    projection they are drawn at one quantile, so a job queued behind them is shown starting
    when one such job would end (as behind that job alone), not at the earliest of forty
    independent draws, which the history puts within minutes however long the burst runs.  The
    same forty submitted an hour apart are drawn apart, and the first of them ends sooner."""
    est = history([100.0 * i for i in range(1, 101)])  # 100 s .. 10,000 s
    start = 40 * 3600.0

    def estimate(n: int, gap: float) -> float:
        held = [running(job(f"r{i}", 1, t=i * gap), {"n": [i]}, started=start) for i in range(n)]
        s = snap([job("q", 1, ws="other", t=start)], held, [node("n", n, free=[])], now=start + 5.0,
                 estimates=est)
        (i,) = explain(s, policy=make_policy("las"))
        return i.estimated_start - start

    alone, burst, apart = estimate(1, 0.0), estimate(40, 1.0), estimate(40, 3600.0)
    assert burst == alone
    assert apart < burst
    assert apart < 1000.0 < alone  # the earliest of forty draws, against the median of the samples
    # The samples are a Latin hypercube: one quantile in each of SAMPLES parts, so the median
    # of the starts behind one job is its middle part's.
    from flightbase_jobqueue.scheduling.insight import SAMPLES
    r = job("r0", 1)
    mid = SAMPLES // 2
    assert est.remaining(r, 5.0, mid / SAMPLES) <= alone - 5.0 <= est.remaining(r, 5.0, (mid + 1) / SAMPLES)


def test_the_samples_draw_each_burst_once_in_each_part_of_its_quantiles():
    """A burst's sampled quantiles fall one in each of SAMPLES equal parts of (0, 1); which
    sample takes which part differs from burst to burst, so every sample has short and long
    runs."""
    from flightbase_jobqueue.scheduling.insight import SAMPLES, _qf
    draws = [_qf(s) for s in range(SAMPLES)]
    firsts = set()
    for k in range(300):
        qs = [d(f"burst-{k}") for d in draws]
        assert sorted(int(q * SAMPLES) for q in qs) == list(range(SAMPLES)), qs
        firsts.add(int(qs[0] * SAMPLES))
    assert firsts == set(range(SAMPLES))


def test_another_draw_seed_draws_other_quantiles_in_the_same_hypercube(monkeypatch):
    """``insight.DRAW_SEED`` (``estimate_bench.py --draw-seeds``): seed 0 is the service's
    draws; another seed draws each burst elsewhere, still once in each part, and the
    projection reads the module's seed when it draws."""
    from flightbase_jobqueue.scheduling import insight
    keys = [f"burst-{k}" for k in range(200)]
    service = [[insight._qf(s)(k) for s in range(insight.SAMPLES)] for k in keys]
    assert insight.DRAW_SEED == 0
    assert [[insight._qf(s, 0)(k) for s in range(insight.SAMPLES)] for k in keys] == service
    other = [[insight._qf(s, 1)(k) for s in range(insight.SAMPLES)] for k in keys]
    for qs in other:
        assert sorted(int(q * insight.SAMPLES) for q in qs) == list(range(insight.SAMPLES)), qs
    moved = sum(a != b for a, b in zip(service, other))
    assert moved == len(keys)  # every burst's quantiles move (to the float)
    # Which part each sample takes moves too, for all but about one burst in SAMPLES.
    parts = sum([int(q * insight.SAMPLES) for q in a] != [int(q * insight.SAMPLES) for q in b]
                for a, b in zip(service, other))
    share = 1 - 1 / insight.SAMPLES
    assert share - 0.15 < parts / len(keys) < share + 0.1
    monkeypatch.setattr(insight, "DRAW_SEED", 1)
    assert [[insight._qf(s)(k) for s in range(insight.SAMPLES)] for k in keys] == other


def test_a_job_waiting_on_one_burst_is_shown_its_middle_fifth_whatever_the_draws(monkeypatch):
    """Five samples (three until 2026-12-08): a job whose start hangs on one burst is shown a
    start between the 40th and the 60th percentile of that burst's runtime, whatever the
    seed of the draws; with three it was anywhere in the middle third, and on a light window
    one draw decided whether its estimate was right (docs/benchmarks.md, "Start estimates
    over several draws")."""
    from flightbase_jobqueue.scheduling import insight
    est = history([100.0 * i for i in range(1, 101)])  # 100 s .. 10,000 s
    start = 40 * 3600.0
    held = [running(job(f"r{i}", 1, t=i * 1.0), {"n": [i]}, started=start) for i in range(8)]
    s = snap([job("q", 1, ws="other", t=start)], held, [node("n", 8, free=[])], now=start + 5.0, estimates=est)
    lo, hi = est.remaining(job("r0", 1), 5.0, 0.4), est.remaining(job("r0", 1), 5.0, 0.6)
    shown = set()
    for seed in range(12):
        monkeypatch.setattr(insight, "DRAW_SEED", seed)
        (i,) = explain(s, policy=make_policy("las"))
        assert lo <= i.estimated_start - (start + 5.0) <= hi, seed
        shown.add(i.estimated_start)
    assert len(shown) > 3  # (the seeds do draw elsewhere within it)


def test_no_room_ever_gives_no_estimate_and_no_range():
    s = snap([job("q", 4)], [], [node("n", 2)], now=0.0)
    (i,) = explain(s, policy=make_policy("las"))
    assert i.estimated_start is None and i.estimated_range is None
    assert "no estimate" in i.reason


# -- the accuracy figures -----------------------------------------------------------------------

def test_estimate_errors_compares_each_recorded_estimate_with_the_actual_start():
    # (job, shown at, position, estimate, earliest, latest)
    samples = [
        ("a", 0.0, 1, 1000.0, 900.0, 1200.0),    # actual 1000: exact, in range
        ("a", 400.0, 1, 1300.0, 1100.0, 1500.0),  # actual 1000: error 300 of 600 ahead, out of range
        ("b", 0.0, 2, 100.0, 50.0, 150.0),        # actual 120 (b waited 2 min): 20 s, 17%
        ("c", 0.0, 3, None, None, None),          # no estimate
        ("d", 0.0, 4, 10.0, 10.0, 10.0),          # never started: left out
    ]
    e = estimate_errors(samples, {"a": 1000.0, "b": 120.0, "c": 50.0}, {"a": 0.0, "b": 0.0, "c": 0.0, "d": 0.0})
    assert (e["shown"], e["jobs"], e["no_estimate"]) == (4, 2, 1)
    a = e["all"]
    assert a["count"] == 3
    assert a["median_abs_error"] == 20.0 and a["p90_abs_error"] == 300.0
    assert a["median_rel_error"] == pytest.approx(20 / 120)
    assert a["within_25pct"] == pytest.approx(2 / 3) and a["in_range"] == pytest.approx(2 / 3)
    # against each job's whole wait (a: 1,000 s, b: 120 s): 0, 300 / 1,000 and 20 / 120
    assert a["median_rel_to_wait"] == pytest.approx(20 / 120)
    assert a["within_25pct_of_wait"] == pytest.approx(2 / 3)
    long = e["waited_over_5min"]  # only a waited more than 5 min
    assert long["count"] == 2 and long["median_abs_error"] == 0.0 and long["p90_abs_error"] == 300.0
    assert long["within_25pct"] == 0.5
    assert estimate_errors([], {}, {})["all"]["median_abs_error"] is None


def test_estimate_errors_against_the_whole_wait_as_well_as_the_wait_still_ahead():
    """An estimate 200 s off, shown 400 s into a job's 1,000 s wait, is 33% off the 600 s still
    ahead but 20% of the job's wait: outside 25% by the one measure, inside by the other."""
    samples = [("a", 400.0, 1, 1200.0, 1100.0, 1300.0), ("a", 900.0, 1, 1020.0, 1000.0, 1100.0)]
    g = estimate_errors(samples, {"a": 1000.0}, {"a": 0.0})["waited_over_5min"]
    assert g["count"] == 2
    assert g["within_25pct"] == 0.5  # 200 / 600 out, 20 / 100 in
    assert g["within_25pct_of_wait"] == 1.0  # 200 / 1,000 and 20 / 1,000
    assert g["median_rel_to_wait"] == pytest.approx(0.02) and g["median_rel_error"] == pytest.approx(0.2)


@pytest.fixture
def trace(tmp_path):
    return write_random_trace(tmp_path / "trace.csv", seed=3, jobs=250, max_gap=90, gpus=[1, 1, 1, 2, 4, 8],
                              lognormal=(6.5, 1.3), groups=["g1", "g2"])


def test_the_replay_reports_figures_computed_from_the_estimates_it_recorded(trace):
    """The same replay run by hand with the recorder: its samples give exactly the report's
    figures; moving every recorded estimate changes them (nothing is hard-coded)."""
    r = replay(trace, 2, 8, "las", restart_cost=30, record_estimates=True)
    e = r["estimates"]
    assert e["jobs"] > 20 and e["shown"] >= e["jobs"]
    assert e["waited_over_5min"]["count"] > 0
    from flightbase_jobqueue.sim.trace import read_trace
    tjobs = read_trace(trace).jobs
    jobs = replay_jobs(tjobs, "las")  # as the replay submits them: each named its burst (bursts.py)
    pol = make_policy("las")
    rec = EstimateRecorder(pol, {j.id for j in tjobs})
    sim = simulate(jobs, {j.id: j.duration for j in tjobs}, make_nodes(2, 8), pol, {}, restart_cost=30,
                   observe=rec)
    submitted = {j.id: j.submit_time for j in tjobs}
    assert estimate_errors(rec.samples, sim.backend.first_start, submitted) == e
    # Every waiting job's first estimate was recorded when it first appeared in the queue, and a
    # new one each time its position changed.
    first: dict[str, tuple] = {}
    for jid, t, pos, est, lo, hi in rec.samples:
        if jid in first:
            assert pos != first[jid][2] or t > first[jid][1]
        else:
            first[jid] = (jid, t, pos)
            assert t == submitted[jid]
        assert est is None or lo <= est <= hi
    shifted = [(j, t, p, None if x is None else x + 3600, lo, hi) for j, t, p, x, lo, hi in rec.samples]
    worse = estimate_errors(shifted, sim.backend.first_start, submitted)
    assert worse["all"]["median_abs_error"] > e["all"]["median_abs_error"]
    assert worse != e


def test_the_replay_report_prints_the_estimate_figures(trace):
    from flightbase_jobqueue.sim.replay import format_report
    text = format_report(replay(trace, 2, 8, "las", restart_cost=30, record_estimates=True))
    assert "start estimates" in text and "jobs waiting > 5 min" in text


@pytest.mark.parametrize("opts", [{}, {"expect_order": True}], ids=["default", "expect-order"])
def test_asking_for_estimates_never_changes_the_schedule(tmp_path, opts):
    """The queue's projection reads the policy's expected-remaining levels without keeping
    new ones (``LasPolicy.job_level(..., store=False)``): a replay that records every estimate
    the queue shows schedules exactly as one that records none.  On this trace (one
    workspace's 8-GPU jobs run about 10 h, the other's about 20 min) the levels change the
    schedule (against ``expect_scale`` 0), so the check is not vacuous.  With the within-level
    order the pass also reads every queued job's expectation: it takes them from the
    completed runtimes alone (``completed_remaining``), not from the censoring that each
    projection refreshes (with ``remaining`` the two replays differ), and ranks again the
    jobs a projection ranked first."""
    from tests.helpers.traces import HEADER
    rng = random.Random(5)
    rows, t = [], 0
    for i in range(90):
        t += rng.randint(300, 1500)
        if i % 6 == 0:
            rows.append(f"j{i},{t},8,{int(rng.uniform(8, 12) * 3600)},long,,,\n")
        else:
            rows.append(f"j{i},{t},{rng.choice([1, 2, 8])},{rng.randint(600, 1800)},short,,,\n")
    path = tmp_path / "two.csv"
    path.write_text(HEADER + "".join(rows))
    keys = ("avg_jct", "preemptions", "median_jct")
    plain = replay(str(path), 2, 8, "las", restart_cost=30, record_estimates=False, policy_options=opts)
    asked = replay(str(path), 2, 8, "las", restart_cost=30, record_estimates=True, policy_options=opts)
    assert {k: plain[k] for k in keys} == {k: asked[k] for k in keys}
    off = replay(str(path), 2, 8, "las", restart_cost=30, policy_options={**opts, "expect_scale": 0.0})
    assert {k: off[k] for k in keys} != {k: plain[k] for k in keys}


def test_the_projection_keeps_no_expectation_of_its_own():
    """The projection of a queue under ``las`` takes running gang jobs' expected-remaining
    levels at future run times (10, 20, 40 min ...) from today's history; it must not keep
    them, or the pass at that time would use them instead of the history it will then have."""
    est = history([100 * 3600.0] * 5, ws="long", gpus=8)
    p = make_policy("las")
    big = running(job("big", 8, ws="long"), {"a": range(8)}, started=0)
    s = snap([job("q1", 8, ws="long", t=10), job("q2", 2, ws="long", t=20)], [big],
             [node("a", free=[]), node("b", free=[])], now=30, estimates=est)
    p.schedule(s)
    kept = dict(p._index["expected"])
    assert kept  # the pass keeps its own: big's and the queued gang jobs'
    out = explain(s, policy=p)
    assert {i.job_id for i in out} == {"q1", "q2"}
    assert p._index["expected"] == kept


def test_las_projection_gives_what_a_preemption_frees_beyond_its_need_at_the_next_pass():
    """The pass stops a 3-GPU job for a 2-GPU one; at the next pass the GPU left over goes to
    the 1-GPU job walked before it (which could not stop a small job itself, within
    ``swap_after``).  The projection shows both starting at the next pass, not the 1-GPU job
    at the end of its own ``swap_after`` wait."""
    h = 3600.0
    now = 10 * h
    rbig = running(job("rbig", 3, ws="c", attained=2000 * h), {"n": [1, 2, 3]}, started=0.0)
    rsmall = running(job("rsmall", 1, ws="b"), {"n": [0]}, started=now - 30)
    q0, q1 = job("q0", 1, ws="a", t=now - 300), job("q1", 2, ws="c", t=now - 300)
    s = snap([q0, q1], [rbig, rsmall], [node("n", 4, free=[])], now=now)
    assert decide("las", s)[1] == [("rbig", "q1")]
    after = snap([q0, q1], [rsmall], [node("n", 4, free=[1, 2, 3])], now=now + 5)
    assert set(decide("las", after)[0]) == {"q0", "q1"}
    shown = {i.job_id: i.estimated_start for i in explain(s, policy=make_policy("las"))}
    assert shown == {"q0": now, "q1": now}


def test_las_projection_gathers_a_spread_gang_only_after_preempt_after():
    """Two GPUs free on two nodes: the pass moves a job to gather them for a 2-GPU job only
    once that job has waited ``preempt_after`` (60 s); at 30 s it does nothing, and the
    projection shows the start at 60 s, not at the next pass."""
    h = 3600.0
    now = 10 * h
    a1 = running(job("a1", 1, ws="b", attained=2000 * h), {"m": [0]}, started=0.0)
    a2 = running(job("a2", 1, ws="b", attained=2000 * h), {"n": [0]}, started=0.0)
    gang = job("gang", 2, ws="a", t=now - 30)
    s = snap([gang], [a1, a2], [node("m", 2, free=[1]), node("n", 2, free=[1])], now=now)
    assert decide("las", s)[1] == []
    shown = {i.job_id: i.estimated_start for i in explain(s, policy=make_policy("las"))}
    assert shown == {"gang": now + 30}
    later = snap([gang], [a1, a2], [node("m", 2, free=[1]), node("n", 2, free=[1])], now=now + 30)
    assert decide("las", later)[1] != []


def test_a_trainings_finished_jobs_come_first_in_the_start_estimates_of_its_others():
    """A sweep's jobs run one program on other parameters: from the first of them that ended,
    its next ones are expected to run about as long (its jobs still running censored there
    too), until a job has outrun every one that ended; then the usual keys. Leases have no
    training key; only the last ``max_trainings`` trainings are kept; ``las``'s expectations
    (``completed_remaining``) and the reservations (``estimate``) never read them."""
    est = HistoryEstimates(max_trainings=2)
    for r in (5000.0, 6000.0, 7000.0):  # the workspace's other one-GPU trainings: long
        est.observe(Job(id="old", workspace="w", gpus=1, training="t0"), r)
    trial = Job(id="b", workspace="w", gpus=1, training="sweep")
    assert est.remaining(trial, 0.0) == pytest.approx(6000.0)  # nothing of its sweep has ended
    est.observe(Job(id="a", workspace="w", gpus=1, training="sweep"), 120.0)
    assert est.remaining(trial, 0.0) == pytest.approx(120.0)
    assert est.remaining(trial, 100.0) == pytest.approx(20.0)
    assert est.remaining(trial, 200.0) == pytest.approx(6000.0 - 200.0)  # outran it: the workspace's
    assert est.completed_remaining(trial, 0.0) == pytest.approx(6000.0)
    assert est.estimate(trial) == pytest.approx(6000.0)
    # Two more trials still running, both past 120 s: censored, half of the sweep's jobs may
    # run longer, so the 75th percentile is on the tail from 120 s.
    est.censor(1000.0, [(Job(id="c", workspace="w", gpus=1, training="sweep"), 900.0),
                        (Job(id="d", workspace="w", gpus=1, training="sweep"), 900.0)])
    assert est.remaining(trial, 0.0, 0.25) == pytest.approx(120.0)
    assert est.remaining(trial, 0.0, 0.75) > 120.0
    # A lease of the same training id has no such key.
    from flightbase_jobqueue.scheduling.types import lease
    nb = lease("nb", "w")
    assert est.remaining(Job(**{**{f: getattr(nb, f) for f in nb.__slots__}, "training": "sweep"}),
                         0.0) == pytest.approx(3600.0)
    # The least recently ended trainings go first.
    est.observe(Job(id="x", workspace="w", gpus=1, training="t1"), 50.0)
    est.observe(Job(id="y", workspace="w", gpus=1, training="t2"), 50.0)
    assert est.remaining(trial, 0.0) > 1000.0  # "sweep" forgotten, "t1" and "t2" kept
    assert est.remaining(Job(id="z", workspace="w", gpus=1, training="t1"), 0.0) == pytest.approx(50.0)


def test_a_workspace_named_like_anything_never_reads_as_a_training():
    est = HistoryEstimates()
    for r in (10.0, 20.0, 30.0):
        est.observe(Job(id="j", workspace="training", gpus=1, training="t"), r)
    assert est.remaining(Job(id="k", workspace="training", gpus=1, training="u"), 0.0) == pytest.approx(20.0)


def test_one_finished_trial_sets_a_sweeps_estimate_not_a_range_of_one_point():
    """One finished trial of a sweep (120 s) is where the next one most likely ends, but says
    nothing of how much trials differ: the range's bounds (``bound``) widen to what the
    workspace's other one-GPU jobs say (5,000-7,000 s) until ``min_samples`` trials have
    ended, and ``explain`` shows a range around an estimate that is still the sweep's. Until
    2026-12-06 the range was the one runtime, a point: a confident estimate."""
    from flightbase_jobqueue.scheduling import make_policy
    from flightbase_jobqueue.scheduling.insight import explain

    from scheduling_factories import job as fjob, node, running, snap

    est = HistoryEstimates()
    for r in (5000.0, 6000.0, 7000.0):
        est.observe(Job(id="old", workspace="w", gpus=1, training="t0"), r)
    trial = Job(id="b", workspace="w", gpus=1, training="sweep")
    est.observe(Job(id="a", workspace="w", gpus=1, training="sweep"), 120.0)
    assert est.remaining(trial, 0.0, 0.75) == pytest.approx(120.0)
    assert est.bound(trial, 0.0, 0.25) == pytest.approx(120.0)
    assert est.bound(trial, 0.0, 0.75) > 5000.0
    assert est.bound(trial, 0.0, 0.5) == est.remaining(trial, 0.0, 0.5)
    # On the queue: the running trial c (started at 0) holds the one GPU, b waits for it.
    c = fjob("c", 1, ws="w", training="sweep")
    s = snap([fjob("b", 1, ws="w", t=10.0, training="sweep")], [running(c, {"n": [0]})],
             [node("n", total=1, free=[])], now=60.0, estimates=est)
    (i,) = explain(s, policy=make_policy("las"))
    lo, hi = i.estimated_range
    assert i.estimated_start == pytest.approx(120.0)  # when c ends, as its sibling did
    assert lo <= 120.0 and hi > 5000.0, i.estimated_range
    # Three finished trials tell a spread of their own: no widening.
    for k, r in enumerate((130.0, 140.0)):
        est.observe(Job(id=f"s{k}", workspace="w", gpus=1, training="sweep"), r)
    assert est.bound(trial, 0.0, 0.75) == est.remaining(trial, 0.0, 0.75) < 200.0

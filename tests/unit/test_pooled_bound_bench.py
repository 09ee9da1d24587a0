"""benchmarks/pooled_bound_bench.py (#17 part 4, docs/benchmarks.md "What not knowing durations
costs at best"): the Gittins index on distributions worked out by hand, the pooled loop's
``srtf`` order giving the SRTF reference's figure, and the orders that know no duration on a
case where the answer is known."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from flightbase_jobqueue.sim.reference import srtf_reference
from flightbase_jobqueue.sim.trace import TraceJob
from tests.helpers.traces import write_random_trace

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("pooled_bound_bench", ROOT / "benchmarks" / "pooled_bound_bench.py")
bench = importlib.util.module_from_spec(_spec)
_path = list(sys.path)
_spec.loader.exec_module(bench)  # it puts benchmarks/ on sys.path for replay_bench: not for the other tests
sys.path[:] = _path


def test_gittins_index_of_one_size_is_one_over_what_is_left():
    """Every job needs exactly 100: at age a the best quantum is what is left, done for sure."""
    idx = bench.gittins_table([100.0] * 5, [0.0, 40.0, 90.0])
    assert idx == pytest.approx([1 / 100, 1 / 60, 1 / 10])


def test_gittins_index_of_two_sizes_prefers_a_young_job_while_the_short_ones_may_end():
    """Half the jobs need 10, half 1,000. New: the quantum 10 gives 0.5 / 10 = 0.05 (better
    than the whole 1,000: 1 / 505). Past 10 only the 1,000s are left: 1 / (1,000 - a). So a
    job that has had 20 ranks far below a new one, as least-attained service would rank it,
    and (unlike least-attained service) a job of age 900 ranks above one of age 20."""
    idx = bench.gittins_table([10.0, 1000.0] * 4, [0.0, 20.0, 900.0])
    assert idx[0] == pytest.approx(0.05)
    assert idx[1] == pytest.approx(1 / 980)
    assert idx[2] == pytest.approx(1 / 100)
    assert idx[0] > idx[2] > idx[1]


def test_pooled_srtf_order_is_the_reference(tmp_path):
    """The loop with the reference's order gives the reference's figure (the other orders
    share the loop), and every order completes every job."""
    trace = write_random_trace(tmp_path / "t.csv", seed=3, jobs=300, max_gap=300, gpus=[1, 1, 2, 4, 8],
                               lognormal=(7.0, 1.5), groups=["a", "b"])
    from flightbase_jobqueue.sim.trace import read_trace

    jobs = read_trace(str(trace)).jobs
    ref = srtf_reference(jobs, 16)
    out = bench.pooled(jobs, 16, "srtf")
    assert out["completed"] == ref["completed"]
    assert out["avg_jct"] == pytest.approx(ref["avg_jct"])
    for order in ("las", "las-fine", "las-burst", "gittins", "gittins-ws"):
        got = bench.pooled(jobs, 16, order)
        assert got["completed"] == ref["completed"]


def test_gittins_gives_way_once_a_job_is_past_what_short_jobs_need():
    """One GPU. A 1,000 s job arrives at 0, a 10 s job at 1 s; the sizes seen are these two.
    SRTF runs the newcomer at once (avg JCT (1,010 + 10) / 2). Gittins, re-ranking every
    second: both new jobs are worth the same until the first has had 10 s, past which only
    a 1,000 is left for it, so the newcomer runs from 10 s to 20 s ((1,010 + 19) / 2).
    Least-attained service in las's levels keeps both in level 0, first come first served
    (the newcomer waits to 1,000 s); with a level per doubling from a minute it switches at
    60 s."""
    jobs = [TraceJob("long", 0.0, 1, 1000.0, "g"), TraceJob("short", 1.0, 1, 10.0, "g")]
    assert bench.pooled(jobs, 1, "srtf")["avg_jct"] == pytest.approx((1010.0 + 10.0) / 2)
    assert bench.pooled(jobs, 1, "gittins", tick=1.0)["avg_jct"] == pytest.approx((1010.0 + 19.0) / 2)
    assert bench.pooled(jobs, 1, "las")["avg_jct"] == pytest.approx((1000.0 + 1009.0) / 2)
    assert bench.pooled(jobs, 1, "las-fine")["avg_jct"] == pytest.approx((1010.0 + 69.0) / 2)


def test_las_burst_runs_a_job_whose_burst_ended_short_first_until_it_outruns_it():
    """One GPU. ``b1`` (group g, 10 s) at 0, ``L`` (group h, 1,000 s) at 1, ``b2`` (group g, one
    GPU, submitted 2 s after ``b1``: its burst) at 2. ``las`` keeps all three in level 0, first come first
    served: b2 waits for L. ``las-burst``: when b1 ends (10 GPU-seconds), b2 has received less
    than that, so it goes first. A b2 of 10 s ends at 20 (L at 1,020). A b2 of 30 s runs
    until it has received b1's 10 s, then drops back behind L (submitted first): it ends at
    1,040."""
    def jobs(b2):
        return [TraceJob("b1", 0.0, 1, 10.0, "g"), TraceJob("L", 1.0, 1, 1000.0, "h"),
                TraceJob("b2", 2.0, 1, b2, "g")]
    assert bench.pooled(jobs(10.0), 1, "las")["avg_jct"] == pytest.approx((10.0 + 1009.0 + 1018.0) / 3)
    assert bench.pooled(jobs(10.0), 1, "las-burst")["avg_jct"] == pytest.approx((10.0 + 1019.0 + 18.0) / 3)
    assert bench.pooled(jobs(30.0), 1, "las-burst")["avg_jct"] == pytest.approx((10.0 + 1019.0 + 1038.0) / 3)
    # a minute later is another burst: b2 at 61 s learns nothing from b1
    late = [TraceJob("b1", 0.0, 1, 10.0, "g"), TraceJob("L", 1.0, 1, 1000.0, "h"),
            TraceJob("b2", 61.0, 1, 10.0, "g")]
    assert bench.pooled(late, 1, "las-burst")["avg_jct"] == bench.pooled(late, 1, "las")["avg_jct"]


def test_bad_arguments_name_the_option():
    for args, word in ((["--orders", "nope"], "--orders"), (["--tick", "0"], "--tick"),
                       (["--first", "3"], "--first"), (["--min-jobs", "0"], "--min-jobs"),
                       (["--learn", "0"], "--learn"), (["--trace", "t.csv", "--learn", "60"], "--learn"),
                       (["--window", "19", "--las-until", "100"], "--las-until")):
        out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "pooled_bound_bench.py"), *args],
                             capture_output=True, text=True, timeout=60,
                             env={"PYTHONPATH": str(ROOT / "services" / "jobqueue"), "PATH": "/usr/bin:/bin"})
        assert out.returncode == 2, out.stderr
        assert word in out.stderr.splitlines()[-1]


def test_learnt_tables_know_only_what_has_ended():
    """``--learn``: with the history of the example above (a 10 and a 1,000 ended before the
    window) Gittins ranks as it did with the window's own jobs; with no history and nothing
    ended yet it knows nothing, every job is worth the same, first come first served."""
    jobs = [TraceJob("long", 0.0, 1, 1000.0, "g"), TraceJob("short", 1.0, 1, 10.0, "g")]
    past = [TraceJob("p1", 0.0, 1, 10.0, "g"), TraceJob("p2", 0.0, 1, 1000.0, "g")]
    got = bench.pooled(jobs, 1, "gittins", tick=1.0, history=past, learn=86400.0)
    assert got["avg_jct"] == pytest.approx((1010.0 + 19.0) / 2)
    blind = bench.pooled(jobs, 1, "gittins", tick=1.0, history=[], learn=86400.0)
    assert blind["avg_jct"] == pytest.approx((1000.0 + 1009.0) / 2)


def test_las_until_ranks_as_las_while_the_tables_are_small():
    """``--las-until``: with the same two runtimes learnt, tables of fewer runtimes than asked
    for rank as least-attained service does (first come first served in level 0), tables
    that hold as many rank by the learnt index (as above)."""
    jobs = [TraceJob("long", 0.0, 1, 1000.0, "g"), TraceJob("short", 1.0, 1, 10.0, "g")]
    past = [TraceJob("p1", 0.0, 1, 10.0, "g"), TraceJob("p2", 0.0, 1, 1000.0, "g")]
    small = bench.pooled(jobs, 1, "gittins", tick=1.0, history=past, learn=86400.0, las_until=3)
    assert small["avg_jct"] == pytest.approx(bench.pooled(jobs, 1, "las")["avg_jct"])
    assert small["avg_jct"] == pytest.approx((1000.0 + 1009.0) / 2)
    enough = bench.pooled(jobs, 1, "gittins", tick=1.0, history=past, learn=86400.0, las_until=2)
    assert enough["avg_jct"] == pytest.approx((1010.0 + 19.0) / 2)


def test_history_is_the_jobs_ended_before_the_window():
    """Days 0-1 before a window at day 1: a job submitted at 0 for half a day has ended, one
    submitted at 0 for two days has not, one submitted at day 1 is the window's own."""
    from flightbase_jobqueue.sim.trace import DAY, Trace

    full = Trace([TraceJob("a", 0.0, 1, DAY / 2, "g"), TraceJob("b", 0.0, 1, 2 * DAY, "g"),
                  TraceJob("c", DAY, 1, 10.0, "g")], 0)
    assert [j.id for j in bench.history_before(full, 1.0, days=1.0)] == ["a"]
    assert bench.history_before(full, 0.0) == []

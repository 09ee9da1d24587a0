"""Interactive sessions in the simulator: notebook leases of unknown length
(ended by the idle culler), through the real coordinator and policies."""

import pytest

from flightbase_jobqueue.scheduling import lease, make_policy
from flightbase_jobqueue.scheduling.types import Job
from flightbase_jobqueue.sim.cli import main
from flightbase_jobqueue.sim.replay import make_nodes, notebook_sessions, replay, simulate
from flightbase_jobqueue.sim.trace import TraceJob

from tests.helpers.traces import write_random_trace


@pytest.mark.parametrize("policy", ["las", "fifo", "backfill", "fairshare", "sjf"])
def test_the_issue_scenario_in_simulated_time(policy):
    """4 slots; t1 and t2 (2 slots each) run; 'big' (4 slots) is queued, then a
    notebook whose session lasts 1000 s (the scheduler does not know it).  big
    starts when t2 ends (200), the notebook when big ends (250)."""
    jobs = [Job("t1", "w", 2, submitted_at=0), Job("t2", "w", 2, submitted_at=0),
            Job("big", "w", 4, submitted_at=5), lease("nb", "w", submitted_at=10)]
    durations = {"t1": 100.0, "t2": 200.0, "big": 50.0, "nb": 1000.0}
    sim = simulate(jobs, durations, make_nodes(1, 4), make_policy(policy), {})
    first = sim.backend.first_start
    assert first["big"] == 200.0 and first["nb"] == 250.0
    assert sim.backend.finished["nb"] == 1250.0


def test_the_issue_scenario_with_the_within_level_order():
    """The same scenario with ``las``'s ``expect_order``: with no history every job is
    expected to run the default time, so 'big' (4 slots) expects 4 times the work a
    1-slot job would; the notebook, of unknown length, still does not pass it."""
    jobs = [Job("t1", "w", 2, submitted_at=0), Job("t2", "w", 2, submitted_at=0),
            Job("big", "w", 4, submitted_at=5), lease("nb", "w", submitted_at=10)]
    durations = {"t1": 100.0, "t2": 200.0, "big": 50.0, "nb": 1000.0}
    sim = simulate(jobs, durations, make_nodes(1, 4), make_policy("las", expect_order=True), {})
    first = sim.backend.first_start
    assert first["big"] == 200.0 and first["nb"] == 250.0


def test_sessions_are_reproducible_and_unknown_to_the_scheduler():
    tjobs = [TraceJob("a", 0.0, 1, 10.0, "g1"), TraceJob("b", 36_000.0, 2, 10.0, "g2")]
    one, lengths = notebook_sessions(tjobs, 6.0, 30.0, 60.0, seed=3)
    again, _ = notebook_sessions(tjobs, 6.0, 30.0, 60.0, seed=3)
    assert one == again and 30 <= len(one) <= 90  # about 60 in 10 h
    assert all(j.kind == "lease" and not j.preemptible and j.max_runtime is None and j.gpus == 1 for j in one)
    assert all(lengths[j.id] >= 3600.0 for j in one)  # used a while, then culled after 60 min idle
    assert {j.workspace for j in one} <= {"g1", "g2"}
    with pytest.raises(ValueError, match="notebooks-per-hour"):
        notebook_sessions(tjobs, -1.0, 30.0, 60.0)


@pytest.fixture
def trace(tmp_path):
    return write_random_trace(tmp_path / "trace.csv", seed=11, jobs=300, max_gap=120, gpus=[1, 1, 2, 4, 8, 16],
                              lognormal=(6, 1.5), groups=["g1", "g2", "g3"])


@pytest.mark.parametrize("policy", ["las", "backfill", "fifo"])
def test_a_replay_reports_notebook_and_training_waits_side_by_side(trace, policy):
    # Waits only: start estimates are not recorded (their projection under las is the slow part).
    r = replay(trace, 2, 8, policy, restart_cost=10, notebooks_per_hour=6, notebook_minutes=20,
               idle_timeout_minutes=10, record_estimates=False)
    assert (r["jobs"], r["completed"], r["unfinished"]) == (300, 300, 0)  # headline figures: the trace's jobs
    assert r["notebooks"]["submitted"] > 0 and r["notebooks"]["unfinished"] == 0
    w = r["waits"]
    assert w["notebooks"]["count"] == r["notebooks"]["submitted"]
    assert w["gang_jobs"]["count"] + w["one_gpu_jobs"]["count"] == 300
    for k in w.values():
        assert k["p50"] <= k["p95"] <= k["p99"] <= k["max"]
    # without notebooks the replay is what it always was
    plain = replay(trace, 2, 8, policy, restart_cost=10, record_estimates=False)
    assert plain["notebooks"]["submitted"] == 0 and plain["waits"]["notebooks"]["count"] == 0


def test_cli_notebook_options(trace, capsys):
    assert main(["--trace", trace, "--nodes", "2", "--gpus-per-node", "8", "--policy", "las",
                 "--notebooks-per-hour", "4"]) == 0
    out = capsys.readouterr().out
    assert "notebooks " in out and "gang trainings" in out
    assert main(["--trace", trace, "--nodes", "2", "--gpus-per-node", "8", "--policy", "las",
                 "--notebooks-per-hour", "-1"]) == 2
    assert capsys.readouterr().err.strip().startswith("error: --notebooks-per-hour")

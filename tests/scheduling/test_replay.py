"""A small replay end to end, and the CLI's handling of bad input."""

import json

import pytest

from flightbase_jobqueue.sim.cli import main
from flightbase_jobqueue.scheduling import Job
from flightbase_jobqueue.sim.replay import remaining_level, replay

from tests.helpers.traces import HEADER, write_random_trace


@pytest.fixture
def trace(tmp_path):
    return write_random_trace(tmp_path / "trace.csv", seed=7, jobs=300, max_gap=120,
                              gpus=[1, 1, 1, 1, 2, 4, 8, 16], lognormal=(6, 1.5), groups=["g1", "g2", "g3"])


@pytest.mark.parametrize("policy", ["fifo", "backfill", "fairshare", "las", "sjf", "sjf-oracle", "las-oracle"])
def test_small_replay_completes_every_job(trace, policy):
    r = replay(trace, 4, 8, policy)
    assert (r["jobs"], r["completed"], r["rejected"], r["unfinished"]) == (300, 300, 0, 0)
    assert r["queue_delay_p50"] <= r["queue_delay_p95"] <= r["queue_delay_p99"] <= r["queue_delay_max"]
    assert 0 < r["gpu_utilisation"] <= 1
    assert abs(sum(w["gpu_share"] for w in r["workspaces"].values()) - 1) < 1e-9


def test_las_beats_fifo_on_a_loaded_cluster(trace):
    assert replay(trace, 2, 8, "las", restart_cost=10)["avg_jct"] < replay(trace, 2, 8, "fifo")["avg_jct"]


def test_las_oracle_ranks_by_true_remaining_work_and_beats_las(trace):
    """The reference of docs/benchmarks.md ("What knowing durations is worth"): the same rules
    as ``las``, levels from the true remaining GPU-seconds (one per doubling past one
    GPU-hour), so on a loaded cluster it finishes jobs sooner on average."""
    job = Job(id="a", workspace="w", gpus=4, submitted_at=0.0, max_runtime=7200.0)  # 8 GPU-hours
    assert [remaining_level(job, att) for att in (0.0, 4 * 3600.0 + 1, 6 * 3600.0 + 1, 7 * 3600.0 + 1)] == [4, 2, 1, 0]
    lease = Job(id="n", workspace="w", gpus=1, submitted_at=0.0)  # no declared end: by attained service
    assert remaining_level(lease, 0.0) == 0 and remaining_level(lease, 17 * 3600.0) == 1
    oracle, las = (replay(trace, 4, 8, p, restart_cost=10) for p in ("las-oracle", "las"))
    assert oracle["completed"] == las["completed"] == 300
    assert oracle["avg_jct"] < las["avg_jct"]


def test_quotas_without_borrowing_reject_what_can_never_fit(trace):
    r = replay(trace, 4, 8, "fairshare", "equal", borrowing=False)
    assert r["rejected"] > 0 and r["completed"] + r["rejected"] == 300
    assert "may not borrow" in r["rejected_examples"][0][1]


def test_cli_json(trace, capsys):
    assert main(["--trace", trace, "--nodes", "4", "--gpus-per-node", "8", "--policy", "las",
                 "--quotas", "proportional", "--restart-cost", "30", "--json", "--limit-jobs", "50"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["jobs"] == 50 and out["quotas"] == "proportional"


def test_fractional_gpus_are_rounded_up_and_said_so(tmp_path, capsys):
    p = tmp_path / "ali.csv"
    p.write_text(HEADER + "a,0,0.5,10,q,,,\nb,1,1,10,q,,,\n")
    assert main(["--trace", str(p), "--nodes", "1", "--gpus-per-node", "2", "--policy", "fifo"]) == 0
    assert "1 fractional GPU requests rounded up to whole GPUs" in capsys.readouterr().out


@pytest.mark.parametrize("content, argv, message", [
    (HEADER + "a,0,1,10,g,,,\nb,x,1,10,g,,,\nc,2,-1,5,g,,,\n", [],
     "2 malformed row(s): line 3 (submit_time: 'x' is not a number); line 4 (num_gpus: '-1' must be"),
    ("id,when\n1,2\n", [], "not a trace CSV (missing column(s) job_id, submit_time"),
    (HEADER + "a,0,1,10,g,,,\n", ["--policy", "lottery"], "unknown scheduling policy 'lottery'; known policies:"),
    (HEADER + "a,0,1,10,g,,,\n", ["--nodes", "0"], "--nodes and --gpus-per-node must be at least 1"),
    (HEADER + "a,0,1,10,g,,,\n", ["--nodes", "two"], "argument --nodes: invalid int value"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, content, argv, message):
    p = tmp_path / "t.csv"
    p.write_text(content)
    args = {"--trace": str(p), "--nodes": "2", "--gpus-per-node": "8", "--policy": "fifo"}
    for k, v in zip(argv[::2], argv[1::2]):
        args[k] = v
    assert main([x for kv in args.items() for x in kv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_missing_file(capsys):
    assert main(["--trace", "/nonexistent/t.csv", "--nodes", "1", "--gpus-per-node", "1", "--policy", "fifo"]) == 2
    assert "cannot read trace /nonexistent/t.csv" in capsys.readouterr().err

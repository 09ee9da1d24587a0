"""benchmarks/estimate_bench.py (#17 part 2, docs/benchmarks.md "Start estimates over several
draws"): ``--draw-seeds`` replays a window with each seed of the estimates' draws. The schedule
is the same whatever the seed (estimates never decide anything), the service's seed is left in
place afterwards, and a bad list is refused with exit code 2 and a message naming the option."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from flightbase_jobqueue.scheduling import insight
from tests.helpers.traces import write_random_trace

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("estimate_bench", ROOT / "benchmarks" / "estimate_bench.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


@pytest.fixture(scope="module")
def trace(tmp_path_factory) -> str:
    # Bursts of alike one-GPU jobs (a few seconds apart) on a small cluster: jobs wait, and
    # their estimates hang on the bursts' draws.
    return write_random_trace(tmp_path_factory.mktemp("t") / "t.csv", seed=5, jobs=200, max_gap=40,
                              gpus=[1, 1, 1, 2, 4], lognormal=(7.0, 1.2), groups=["a", "b"])


def test_each_seed_replays_the_same_schedule_and_draws_its_own_estimates(trace, capsys):
    assert bench.main(["--trace", trace, "--windows", "", "--nodes", "2", "--draw-seeds", "0,1,2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["draw_seed"] for r in out] == [0, 1, 2]
    assert len({(r["jobs"], r["queue_delay_p99"]) for r in out}) == 1  # one schedule
    waited = [r["estimates"]["waited_over_5min"] for r in out]
    assert all(g["count"] == waited[0]["count"] > 20 for g in waited)
    # The draws differ, so the errors do (the figures of one seed are not the others').
    assert len({(g["median_abs_error"], g["p90_abs_error"], g["in_range"]) for g in waited}) > 1
    assert insight.DRAW_SEED == 0
    # Seed 0 alone is the figure of a plain run.
    assert bench.main(["--trace", trace, "--windows", "", "--nodes", "2", "--json"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert plain[0]["estimates"] == out[0]["estimates"]


def test_the_spread_over_seeds_is_printed_per_window(trace, capsys):
    assert bench.main(["--trace", trace, "--windows", "", "--nodes", "2", "--draw-seeds", "3,4"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert sum(" draws " in ln for ln in lines) == 2
    (last,) = [ln for ln in lines if "2 seeds" in ln]
    assert last.count(" / ") == 6  # lowest / median / highest of three figures


@pytest.mark.parametrize("seeds", ["0,x", "-1", ","])
def test_a_bad_seed_list_exits_2_naming_the_option(seeds):
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "estimate_bench.py"), "--draw-seeds", seeds],
                       capture_output=True, text=True, timeout=60,
                       env={"PYTHONPATH": str(ROOT / "services" / "jobqueue"), "PATH": "/usr/bin:/bin"})
    assert p.returncode == 2
    assert "--draw-seeds" in p.stderr.strip().splitlines()[-1]
    assert "Traceback" not in p.stderr

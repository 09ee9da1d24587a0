"""benchmarks/jct_gap_bench.py's ``--detail`` (#17 part 4, docs/benchmarks.md "What not knowing
durations costs at best"): the class it details is the one asked for, not the one with the
largest share, and a malformed class is refused with a one-line message. A generated trace
stands in for the Philly trace."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers.traces import write_random_trace

ROOT = Path(__file__).resolve().parents[2]


def gap(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "services" / "jobqueue")}
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "jct_gap_bench.py"), *args],
                          capture_output=True, text=True, timeout=300, env=env)


def test_detail_names_the_class_asked_for(tmp_path):
    trace = write_random_trace(tmp_path / "t.csv", seed=7, jobs=300, max_gap=120, gpus=[1, 1, 1, 2, 8],
                               lognormal=(7.5, 1.5), groups=["a", "b"])
    worst = gap("--trace", trace, "--nodes", "2")
    assert worst.returncode == 0, worst.stderr
    line = next(x for x in worst.stdout.splitlines() if x.startswith("class "))
    asked = "class 2-4 GPUs, <1h" if not line.startswith("class 2-4 GPUs, <1h") else "class 1 GPUs, <10m"
    gpus, length = asked[len("class "):].replace(" GPUs", "").split(", ")
    out = gap("--trace", trace, "--nodes", "2", "--detail", f"{gpus},{length}")
    assert out.returncode == 0, out.stderr
    assert any(x.startswith(asked + " (") for x in out.stdout.splitlines()), out.stdout
    assert line not in out.stdout


def test_a_malformed_class_is_refused_in_one_line(tmp_path):
    out = gap("--trace", str(tmp_path / "none.csv"), "--detail", "3,long")
    assert out.returncode == 2
    assert out.stderr.splitlines()[-1].startswith("jct_gap_bench.py: error: --detail:")


def test_detail_of_a_class_with_no_jobs_says_so(tmp_path):
    trace = write_random_trace(tmp_path / "t.csv", seed=7, jobs=50, max_gap=120, gpus=[1],
                               lognormal=(7.5, 1.5), groups=["a"])
    out = gap("--trace", trace, "--nodes", "2", "--detail", ">8,>=6h")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "class >8 GPUs, >=6h: no job of this window is in it"

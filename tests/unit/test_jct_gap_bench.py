"""benchmarks/jct_gap_bench.py (#17 part 4, docs/benchmarks.md "What not knowing durations
costs at best", "Two ways round node boundaries that do not pay"): ``--detail`` details the class
asked for, not the one with the largest share, and a malformed class or an unreadable trace is
refused with a one-line message; the detailed class's time queued with enough GPUs free in all
is split by the reason the policy gave, and the parts add up to it. A generated trace stands in
for the Philly trace."""

from __future__ import annotations

import os
import re
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


def test_an_unreadable_trace_is_refused_in_one_line(tmp_path):
    out = gap("--trace", str(tmp_path / "none.csv"))
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert out.stderr.splitlines()[-1] == (f"jct_gap_bench.py: error: cannot read trace {tmp_path / 'none.csv'}: "
                                           "No such file or directory")


def test_time_queued_spread_is_split_by_reason(tmp_path):
    # 8-GPU jobs among 1- and 2-GPU ones on 3 nodes: the long 8-GPU jobs wait, after being
    # preempted, with enough GPUs free in all but not on one node.
    trace = write_random_trace(tmp_path / "t.csv", seed=7, jobs=400, max_gap=60, gpus=[1, 1, 1, 2, 8],
                               lognormal=(8.5, 1.5), groups=["a", "b"])
    out = gap("--trace", trace, "--nodes", "3", "--detail", "5-8,>=6h")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    head = next(x for x in lines if x.startswith("class 5-8 GPUs, >=6h ("))
    spread = float(re.search(r"not on one node ([0-9.]+);", head).group(1))
    assert spread > 0, head
    split = next(x for x in lines if x.startswith("of that time queued again with enough GPUs free in all"))
    parts = {k: float(v) for k, v in (p.rsplit(" ", 1) for p in split.split(": ", 1)[1].split("; "))}
    reasons = {k: v for k, v in parts.items() if not k.startswith("with ")}
    assert set(reasons) <= {"keeping a node of its own", "jobs being stopped for it", "held back for a starving job",
                            "too few GPUs left at its turn", "no reason recorded"}, parts
    assert abs(sum(reasons.values()) - spread) <= 0.05 * (len(reasons) + 1), (spread, parts)
    assert 0 <= parts["with another job of its class waiting so"] <= spread + 0.05
    assert 0 <= parts["with at least 3 nodes' worth of GPUs free"] <= spread + 0.05

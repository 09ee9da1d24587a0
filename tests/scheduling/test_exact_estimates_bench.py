"""benchmarks/exact_estimates_bench.py (#17 part 2, docs/benchmarks.md "The projection follows
the pass"): its rows are the replays the tests make, and bad options are one line, exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from flightbase_jobqueue.sim.replay import exactness_replay

ROOT = Path(__file__).resolve().parents[2]


def bench(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "services" / "jobqueue"), str(ROOT)])}
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "exact_estimates_bench.py"), *args],
                          capture_output=True, text=True, timeout=300, env=env)


def test_each_row_is_the_replay_the_tests_make():
    out = bench("--policies", "las,backfill", "--seeds", "1", "--quotas", "none,proportional", "--json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert [(r["quotas"], r["policy"]) for r in rows] == [
        ("none", "las"), ("none", "backfill"), ("proportional", "las"), ("proportional", "backfill")]
    for r in rows:
        shown, wrong, _ = exactness_replay(r["policy"], 0, r["quotas"])
        assert (r["shown"], r["wrong"]) == (shown, len(wrong))
        assert (r["first_wrong"] is None) == (not wrong)


def test_a_bad_option_is_one_line_and_exit_2():
    for args in (["--policies", "lifo"], ["--quotas", "some"], ["--seeds", "0"]):
        out = bench(*args)
        assert out.returncode == 2, (args, out.stderr)
        assert out.stderr.count("\n") == 1 and out.stderr.startswith("error: "), out.stderr

"""benchmarks/asgi_floor_bench.py (#17 part 6, docs/benchmarks.md "Where the floor is") runs: each
variant's server starts, answers every request of the load, and its CPU per request is measured.
The figures themselves are the benchmark's to report, not this test's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_every_variant_answers_and_is_measured():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "asgi_floor_bench.py"), "--requests", "40",
                          "--rate", "200", "--json"], capture_output=True, text=True, timeout=300, check=True)
    report = json.loads(out.stdout)
    results = {r["variant"]: r for r in report["results"]}
    assert set(results) == {"fastapi", "fastapi-response", "starlette", "asgi"}
    for r in results.values():
        assert r["requests"] == 40
        # server_cpu_s is rounded to 10 ms: 0.25 ms per request over 40
        assert r["server_cpu_s"] >= 0 and r["cpu_ms_per_request"] == pytest.approx(r["server_cpu_s"] / 40 * 1000, abs=0.3)
    assert "cores" in report["machine"]


def test_a_variant_that_is_not_there_is_refused():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "asgi_floor_bench.py"), "--only", "flask"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "invalid choice: 'flask'" in out.stderr

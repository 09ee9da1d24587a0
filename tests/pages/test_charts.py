"""The dashboards' chart arithmetic (flightbase_jobqueue/pages/static/charts.js: pure functions)
run by Node, as a table: each case calls one function with JSON arguments."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

CHARTS = Path(__file__).resolve().parents[2] / "services/jobqueue/flightbase_jobqueue/pages/static/charts.js"

ROWS = [
    {"day": "2026-03-09", "user": "bo", "gpu_hours": 1.5},
    {"day": "2026-03-10", "user": "ana", "gpu_hours": 0.25},
    {"day": "2026-03-10", "user": "bo", "gpu_hours": 2.0},
    {"day": "2026-02-01", "user": "cy", "gpu_hours": 9.0},  # before the window: left out
    {"day": "2026-03-10", "gpu_hours": 4.0},  # no user: left out
]

CASES = [
    ("dayLabels", ["2026-03-01", 3], ["2026-02-27", "2026-02-28", "2026-03-01"]),
    ("dayLabels", ["2026-01-01", 1], ["2026-01-01"]),
    ("usageSeries", [ROWS, "2026-03-10", 3], {
        "labels": ["2026-03-08", "2026-03-09", "2026-03-10"],
        "datasets": [{"label": "ana", "data": [0, 0, 0.25]}, {"label": "bo", "data": [0, 1.5, 2]}],
        "total": 3.75}),
    ("usageSeries", [[], "2026-03-10", 2], {"labels": ["2026-03-09", "2026-03-10"], "datasets": [], "total": 0}),
    ("usageSeries", [[{"day": "2026-03-10", "user": "a", "gpu_hours": 1 / 3}], "2026-03-10", 1],
     {"labels": ["2026-03-10"], "datasets": [{"label": "a", "data": [0.333]}], "total": 0.333}),
    ("hoursByWorkspace", [[{"workspace": "a", "gpu_hours": 1}, {"workspace": "b", "gpu_hours": 2},
                           {"workspace": "a", "gpu_hours": 0.5}, {"gpu_hours": 7}]], {"a": 1.5, "b": 2}),
    ("weekStart", ["2026-03-11"], "2026-03-09"),  # a Wednesday
    ("weekStart", ["2026-03-09"], "2026-03-09"),  # a Monday
    ("weekStart", ["2026-03-15"], "2026-03-09"),  # a Sunday
    ("weekStart", ["2026-03-02"], "2026-03-02"),
]


def test_charts(tmp_path):
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    script = (f"const c = require({json.dumps(str(CHARTS))});\n"
              f"const cases = {json.dumps([[f, a] for f, a, _ in CASES])};\n"
              "console.log(JSON.stringify(cases.map(([f, a]) => c[f](...a))));\n")
    (tmp_path / "run.js").write_text(script)
    out = subprocess.run(["node", str(tmp_path / "run.js")], capture_output=True, text=True, timeout=60, check=True)
    got = json.loads(out.stdout)
    for (function, args, expected), result in zip(CASES, got, strict=True):
        assert result == expected, (function, args)

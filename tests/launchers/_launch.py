"""Helpers for the launcher tests: run a real launcher, collect per-rank results."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).parent / "scripts"
REPO = Path(__file__).resolve().parents[2]
MARK = "FLIGHTBASE-RESULT "
INSTALL_HINT = (
    "run `scripts/install-ml.sh {py}` (installs torch==2.13.0 and builds/caches "
    "horovod 0.28.1; see docs/horovod.md)"
)


def venv_tool(name: str) -> Path:
    """A console script next to the interpreter running the tests."""
    tool = Path(sys.executable).parent / name
    if not tool.exists():
        pytest.fail(f"{tool} not found: " + INSTALL_HINT.format(py=sys.executable))
    return tool


def require_module(code: str, what: str):
    """Fail (not skip) when the ML stack is missing: `make test` installs it."""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        tail = (r.stderr or r.stdout).strip().splitlines()[-3:]
        pytest.fail(
            f"{what} is not usable in {sys.executable}: {' | '.join(tail)}\n"
            + INSTALL_HINT.format(py=sys.executable)
        )


def run_launcher(cmd, timeout=120):
    """Run a launcher command; return (results by rank, combined output, seconds)."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONWARNINGS"] = "ignore"
    started = time.monotonic()
    try:
        r = subprocess.run(
            [str(c) for c in cmd], capture_output=True, text=True, timeout=timeout,
            cwd=REPO, env=env, stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        pytest.fail(f"{cmd[0]} did not finish within {timeout}s; output:\n{out[-4000:]}")
    took = time.monotonic() - started
    out = r.stdout + r.stderr
    assert r.returncode == 0, f"{' '.join(map(str, cmd))} exited {r.returncode}:\n{out[-6000:]}"
    results = {}
    for line in out.splitlines():
        if MARK in line:
            rec = json.loads(line.split(MARK, 1)[1])
            assert rec["rank"] not in results, f"rank {rec['rank']} reported twice:\n{out[-4000:]}"
            results[rec["rank"]] = rec
    return results, out, took


def check_results(results, out, world=2):
    """The checks both launchers must pass."""
    assert sorted(results) == list(range(world)), (
        f"expected a result line from each of ranks 0..{world - 1}, got {sorted(results)}:\n{out[-4000:]}"
    )
    expected_sum = float(sum(r + 1 for r in range(world)))  # ranks contribute 1, 2, ...
    for rank, rec in results.items():
        assert rec["size"] == world
        assert rec["ranks"] == list(range(world))
        assert rec["sum"] == [expected_sum] * 3, rec  # 1 + 2 == 3
        assert rec["avg"] == pytest.approx([expected_sum / world] * 3), rec  # (1 + 2) / 2 == 1.5
        # data-parallel training: every rank ends with the same weights, equal
        # to single-process SGD on the averaged loss of all ranks' batches
        assert rec["max_diff_ranks"] < 1e-6, rec
        assert rec["max_diff_ref"] < 1e-5, rec
        assert rec["losses"][-1] < rec["losses"][0], rec
    # ranks trained on different data, so their local losses differ
    assert results[0]["losses"] != results[1]["losses"]

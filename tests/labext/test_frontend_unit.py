"""The front end's jest unit tests (flightbase_labext/src/__tests__), run through npm so
that `make test` covers them. They mock the request helper with a request table."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

LABEXT = Path(__file__).resolve().parents[2] / "flightbase_labext"


def test_jest_unit_tests_pass():
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed (scripts/system-deps.sh installs it)")
    if not (LABEXT / "node_modules" / ".bin" / "jest").exists():
        pytest.skip("flightbase_labext/node_modules is missing: run make install")
    proc = subprocess.run(["npm", "test", "--silent"], cwd=LABEXT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert " passed" in proc.stderr + proc.stdout

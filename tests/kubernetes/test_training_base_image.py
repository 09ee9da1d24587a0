"""The cluster's training image, ``images/training-base/Dockerfile``, built here for real in
its CPU flavour (the same Dockerfile with build arguments: Debian 12 for both stages, CPU
torch, Horovod with MPI and no NCCL, pip offline; ``tests/kubernetes/images/build.sh``,
cached by content) and run as the training pods run it: uid 1000, no capability.

What this cannot show: the CUDA flavour (the Dockerfile's defaults) is not built here, since
NVIDIA's images cannot be pulled; its Ubuntu 22.04 package pins and the NCCL build of
Horovod are checked on a cluster's first build (images/README.md).  The 2-node Horovod
MPIJob and torchrun Job on this image: ``tests/kubernetes/test_multinode.py``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers.containers import docker
from tests.kubernetes.cluster_images import build

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "tests" / "launchers" / "scripts"
MARK = "FLIGHTBASE-RESULT "
# the MPI Operator's pods rely on these lines (sshd as uid 1000 on port 2222, the keys it mounts in ~/.ssh)
SSHD_CONFIG = ("Port 2222\nHostKey /home/flightbase/.ssh/id_rsa\nPidFile /tmp/sshd.pid\nPermitRootLogin no\n"
               "PasswordAuthentication no\nStrictModes no\nAuthorizedKeysFile /home/flightbase/.ssh/authorized_keys\n")
SSH_CONFIG = "Host *\n  Port 2222\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n"


@pytest.fixture(scope="module")
def image():
    return build("training-base")


def run(image: str, *cmd: str, args: tuple[str, ...] = (), timeout: float = 300) -> str:
    """``cmd`` in a container as the training pods run it: uid 1000, no capability, no network."""
    return docker("run", "--rm", "--user", "1000:1000", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
                  "--network", "none", *args, image, *cmd, timeout=timeout).stdout


def test_the_image_runs_as_user_1000_in_workspace(image):
    config = json.loads(docker("image", "inspect", image).stdout)[0]["Config"]
    assert (config["User"], config["WorkingDir"]) == ("1000", "/workspace")
    assert config["Labels"]["ai.flightbase.content-hash"].startswith("sha256:")
    assert "ai.flightbase.build-stage" not in config["Labels"]  # the build stage's label stays there
    assert run(image, "id").strip() == "uid=1000(flightbase) gid=1000(flightbase) groups=1000(flightbase)"
    assert run(image, "bash", "-c", "echo $HOME; command -v python3 mpirun horovodrun torchrun").split() == [
        "/home/flightbase", "/opt/venv/bin/python3", "/usr/bin/mpirun", "/opt/venv/bin/horovodrun",
        "/opt/venv/bin/torchrun"]


def test_the_cpu_flavour_has_cpu_torch_and_horovod_with_mpi_and_no_nccl(image):
    out = run(image, "horovodrun", "--check-build")
    built = {name: mark for mark, name in re.findall(r"\[(X| )\] (\w+)", out)}
    assert {k: built.get(k) for k in ("PyTorch", "TensorFlow", "MXNet", "MPI", "Gloo", "NCCL")} == {
        "PyTorch": "X", "TensorFlow": " ", "MXNet": " ", "MPI": "X", "Gloo": " ", "NCCL": " "}, out
    versions = run(image, "python3", "-c", "import sys, torch, numpy, horovod; "
                   "print(sys.version.split()[0], torch.__version__, torch.cuda.is_available(), numpy.__version__, "
                   "horovod.__version__)").split()
    assert versions[0].startswith("3.11.") and versions[1:3] == ["2.13.0+cpu", "False"], versions
    assert versions[3].startswith("2.") and versions[4] == "0.28.1", versions


def test_openmpi_is_the_distributions_4_1_with_ucx_and_verbs(image):
    out = run(image, "ompi_info")
    assert re.search(r"Open MPI: 4\.1\.", out), out[:2000]
    assert re.search(r"MCA pml: ucx", out), "OpenMPI without its UCX component"
    libs = run(image, "sh", "-c", "ldconfig -p")
    for lib in ("libucp.so.0", "libibverbs.so.1", "librdmacm.so.1", "libmlx5.so.1"):
        assert lib in libs, f"{lib} is missing (rdma-core / UCX)"


def test_no_build_tools_or_wheels_are_left_in_the_image(image):
    assert run(image, "bash", "-c", "command -v g++ gcc cc cmake || true") == ""
    assert run(image, "ls", "-A", "/tmp") == ""  # no /tmp/build (requirements, wheels, Horovod's sdist)
    packages = run(image, "pip", "list", "--format=freeze")
    assert "horovod==0.28.1" in packages and "tensorflow" not in packages, packages


def test_sshd_accepts_the_config_as_uid_1000_with_the_operators_key(image, tmp_path):
    """The files the MPI Operator's pods rely on, line for line, and sshd's check of that
    config as uid 1000 with an ECDSA P-521 key where the operator mounts its Secret."""
    assert run(image, "cat", "/home/flightbase/.sshd_config") == SSHD_CONFIG
    assert run(image, "cat", "/etc/ssh/ssh_config.d/flightbase.conf") == SSH_CONFIG
    assert run(image, "stat", "-c", "%u:%g", "/home/flightbase/.sshd_config").strip() == "1000:1000"
    ssh = tmp_path / "ssh"
    ssh.mkdir()
    subprocess.run(["ssh-keygen", "-q", "-t", "ecdsa", "-b", "521", "-N", "", "-f", str(ssh / "id_rsa")], check=True)
    shutil.copy(ssh / "id_rsa.pub", ssh / "authorized_keys")
    for path in [ssh, *ssh.iterdir()]:
        os.chown(path, 1000, 1000)
    out = docker("run", "--rm", "--user", "1000:1000", "--cap-drop", "ALL", "--network", "none",
                 "-v", f"{ssh}:/home/flightbase/.ssh:ro", image,
                 "/usr/sbin/sshd", "-t", "-f", "/home/flightbase/.sshd_config", check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def test_a_two_rank_horovod_allreduce_over_mpi(image, tmp_path):
    """Two ranks under ``mpirun`` in one container (the multi-node run across hosts is
    test_multinode's): Horovod's MPI controller and ops, as uid 1000 with no capability
    (so no cross-memory attach between the ranks: vader's single-copy mechanism is off)."""
    code = tmp_path / "code"
    shutil.copytree(SCRIPTS, code)
    out = run(image, "mpirun", "-np", "2", "--bind-to", "none", "--tag-output", "python3", "/code/hvd_allreduce.py",
              args=("-v", f"{code}:/code:ro", "-e", "OMP_NUM_THREADS=1", "-e", "PYTHONWARNINGS=ignore",
                    "-e", "OMPI_MCA_btl_vader_single_copy_mechanism=none"), timeout=240)
    results = {}
    for line in out.splitlines():
        if MARK in line:
            rec = json.loads(line.split(MARK, 1)[1])
            results[rec["rank"]] = rec
    assert sorted(results) == [0, 1], out
    for rec in results.values():
        assert rec["size"] == 2 and rec["gloo_enabled"] is False, rec
        assert rec["sum"] == [3.0] * 3 and rec["avg"] == pytest.approx([1.5] * 3), rec
        assert rec["max_diff_ranks"] < 1e-6 and rec["max_diff_ref"] < 1e-5, rec

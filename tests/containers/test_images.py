"""The embedded deployment's built-in images, made by ``scripts/containers.sh`` (``make test`` runs it as root).

Real Docker: each image runs as an unprivileged uid that has no account in it,
with no capability and ``no-new-privileges``, as the platform runs them. Those
tests skip, with the reason, where the tests do not run as root, where no Docker
engine answers, or where the images are not built. The Dockerfile lint and the
digest need neither.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers.containers import docker, dockerfile_users, lint

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "containers.sh"
EMBEDDED = ROOT / "images" / "embedded"
DOCKERFILES = sorted(EMBEDDED.glob("*/Dockerfile"))
TRAINING, NOTEBOOK = "flightbase/training-base:0.1.0", "flightbase/notebook:0.1.0"
LABEL = "ai.flightbase.content-hash"
# how the platform runs a person's container (backends/docker.py), with a uid the image has no account for
UNPRIVILEGED = ("--user", "12345:12345", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
                "--pids-limit", "512", "--memory", "4g")

ALLREDUCE = r"""
import os, sys, torch, horovod.torch as hvd
hvd.init()
total = hvd.allreduce(torch.tensor([float(hvd.rank() + 1)]), op=hvd.Sum)
sys.stdout.write(f"RESULT {hvd.rank()} {hvd.size()} {float(total[0])} {os.getuid()}\n")  # one write: ranks share stdout
sys.stdout.flush()
"""

TORCHRUN_ALLREDUCE = r"""
import sys, torch, torch.distributed as dist
dist.init_process_group("gloo")
t = torch.tensor([float(dist.get_rank() + 1)])
dist.all_reduce(t)
sys.stdout.write(f"RESULT {dist.get_rank()} {dist.get_world_size()} {float(t[0])}\n")  # one write: ranks share stdout
sys.stdout.flush()
dist.barrier()  # before the teardown: see tests/containers/jobs/ddp_torchrun.py
dist.destroy_process_group()
"""


def run_in(image: str, *command: str, extra: tuple[str, ...] = (), timeout: float = 300) -> str:
    """The output of ``command`` in a fresh container of ``image``, run as an unprivileged uid."""
    result = docker("run", "--rm", *UNPRIVILEGED, *extra, image, *command, timeout=timeout)
    return result.stdout + result.stderr


def results(output: str) -> list[str]:
    return sorted(line.split("RESULT ", 1)[1].strip() for line in output.splitlines() if "RESULT " in line)


@pytest.fixture(scope="module")
def engine():
    if os.geteuid() != 0:
        pytest.skip("the images are built and run as root (`make test` as root builds them)")
    if not shutil.which("docker"):
        pytest.skip("no docker client here (`make test` as root installs the engine)")
    if subprocess.run(["docker", "info"], capture_output=True, timeout=60).returncode != 0:
        pytest.skip("no Docker engine answers here; `make test` as root starts one")


@pytest.fixture(scope="module")
def images(engine):
    for ref in (TRAINING, NOTEBOOK):
        if docker("image", "inspect", ref, check=False).returncode != 0:
            pytest.skip(f"{ref} is not built here (`make test` as root builds it with scripts/containers.sh)")
    return {ref: json.loads(docker("image", "inspect", ref).stdout)[0] for ref in (TRAINING, NOTEBOOK)}


# ---- the Dockerfiles ----------------------------------------------------------------

def test_the_embedded_flavour_has_both_images():
    assert [p.parent.name for p in DOCKERFILES] == ["notebook", "training-base"]
    assert os.access(SCRIPT, os.X_OK)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_hadolint_finds_nothing(dockerfile):
    result = lint(dockerfile)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_without_a_user_given_an_image_runs_as_nobody(dockerfile):
    users = dockerfile_users(dockerfile)
    assert users and users[-1] == "65534:65534"


# ---- the digest the images are labelled with ----------------------------------------

def digest(folder: Path) -> str:
    out = subprocess.run([str(SCRIPT), "digest", str(folder)], capture_output=True, text=True, check=True).stdout
    assert re.fullmatch(r"[0-9a-f]{64}\n", out), out
    return out.strip()


def test_the_digest_follows_contents_modes_and_names_not_times_or_place(tmp_path):
    a = tmp_path / "a"
    (a / "wheels").mkdir(parents=True)
    (a / "Dockerfile").write_text("FROM x\n")
    (a / "wheels" / "w.whl").write_bytes(b"\x00wheel")
    first = digest(a)
    b = tmp_path / "b"
    shutil.copytree(a, b)  # another folder, other timestamps
    os.utime(b / "Dockerfile", (0, 0))
    assert digest(b) == first
    (b / "Dockerfile").write_text("FROM y\n")
    assert digest(b) != first
    (b / "Dockerfile").write_text("FROM x\n")
    assert digest(b) == first
    (b / "Dockerfile").chmod(0o600)
    assert digest(b) != first
    (b / "Dockerfile").chmod((a / "Dockerfile").stat().st_mode & 0o777)
    (b / "wheels" / "w.whl").rename(b / "wheels" / "v.whl")
    assert digest(b) != first
    (b / "wheels" / "v.whl").rename(b / "wheels" / "w.whl")
    (b / "empty").mkdir()
    assert digest(b) != first


def test_the_digest_of_a_missing_folder_is_an_error(tmp_path):
    result = subprocess.run([str(SCRIPT), "digest", str(tmp_path / "nothing")], capture_output=True, text=True)
    assert result.returncode != 0 and "is not a folder" in result.stderr


# ---- the built images ----------------------------------------------------------------

def test_the_images_carry_their_content_hash_and_no_user_but_nobody(images):
    hashes = {ref: (info["Config"]["Labels"] or {}).get(LABEL, "") for ref, info in images.items()}
    for ref, value in hashes.items():
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", value), (ref, value)
        assert images[ref]["Config"]["User"] == "65534:65534"
    assert hashes[TRAINING] != hashes[NOTEBOOK]
    assert images[NOTEBOOK]["Config"]["Cmd"] == ["jupyterhub-singleuser"]
    assert "/opt/flightbase/bin" in next(e for e in images[TRAINING]["Config"]["Env"] if e.startswith("PATH="))


def test_no_process_keeps_the_build_lock(engine):
    """A dockerd that the build started (on a fresh machine `make` starts it) must not inherit the
    build's lock: it would hold it for as long as it runs, and every later build would wait forever."""
    lock = Path(os.environ.get("FLIGHTBASE_CACHE") or Path.home() / ".cache" / "flightbase") / "images" / ".lock"
    holders = set()
    for fd in Path("/proc").glob("[0-9]*/fd/*"):
        try:
            if os.readlink(fd) == str(lock):
                holders.add((fd.parts[2], Path("/proc", fd.parts[2], "comm").read_text().strip()))
        except OSError:
            continue
    assert not holders, f"{sorted(holders)} hold {lock} with no build running"


def test_a_second_build_builds_nothing(images):
    def build() -> str:
        result = subprocess.run([str(SCRIPT), "images"], capture_output=True, text=True, timeout=900, cwd=ROOT)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    build()  # brings the images up to date with this tree, which may have changed since `make` built them
    ids = {ref: json.loads(docker("image", "inspect", ref).stdout)[0]["Id"] for ref in (TRAINING, NOTEBOOK)}
    out = build()
    for ref in (TRAINING, NOTEBOOK):
        assert f"{ref} is up to date" in out, out
        assert json.loads(docker("image", "inspect", ref).stdout)[0]["Id"] == ids[ref]
    assert "building" not in out and "collecting" not in out, out


def test_torch_torchvision_and_horovod_import_as_an_unprivileged_uid_with_no_account(images):
    out = run_in(TRAINING, "python", "-c",
                 "import os, sys, torch, torchvision, horovod, horovod.torch as hvd; "
                 "print(sys.executable, sys.version_info[:2], torch.__version__, torchvision.__version__, "
                 "horovod.__version__, hvd.gloo_built(), os.getuid(), os.getgid(), os.environ.get('HOME'))")
    # PyPI's torchvision calls itself 0.28.0+cu130 (its ops are CUDA-linked: images/README.md)
    assert out.split() == ["/opt/flightbase/bin/python", "(3,", "11)", "2.13.0+cpu", "0.28.0+cu130", "0.28.1", "True",
                           "12345", "12345", "/tmp"], out


def test_a_resnet18_forward_pass_runs(images):
    out = run_in(TRAINING, "python", "-c",
                 "import torch, torchvision; torch.manual_seed(0); "
                 "m = torchvision.models.resnet18().eval(); "
                 "y = m(torch.randn(2, 3, 224, 224)); print('SHAPE', tuple(y.shape), bool(torch.isfinite(y).all()))")
    assert "SHAPE (2, 1000) True" in out, out


def test_a_two_rank_horovodrun_allreduce_in_one_container(images):
    out = run_in(TRAINING, "horovodrun", "--gloo", "-np", "2", "-H", "localhost:2", "python", "-c", ALLREDUCE,
                 timeout=180)
    assert results(out) == ["0 2 3.0 12345", "1 2 3.0 12345"], out[-3000:]


def test_the_platforms_horovod_launcher_runs_in_it(images):
    out = run_in(TRAINING, "python", "-m", "flightbase.quiet_horovodrun", "--gloo", "-np", "2",
                 "-H", "localhost:2", "python", "-c", ALLREDUCE, timeout=180)
    assert results(out) == ["0 2 3.0 12345", "1 2 3.0 12345"], out[-3000:]


def test_a_two_rank_torchrun_allreduce(images):
    out = run_in(TRAINING, "sh", "-c", 'printf "%s" "$SCRIPT" > /tmp/t.py && torchrun --standalone --nproc-per-node 2 /tmp/t.py',
                 extra=("-e", f"SCRIPT={TORCHRUN_ALLREDUCE}"), timeout=180)
    assert results(out) == ["0 2 3.0", "1 2 3.0"], out[-3000:]


def test_mpirun_is_there(images):
    assert "Open MPI" in run_in(TRAINING, "mpirun", "--version")


def test_flightbase_client_side_works_without_the_server_side(images):
    out = run_in(TRAINING, "sh", "-c",
                 "FLIGHTBASE_METRICS_FILE=/tmp/m.jsonl python -c 'from flightbase.metrics import report; "
                 "report(step=3, loss=0.25)' && cat /tmp/m.jsonl && "
                 "python -c 'import flightbase.client, flightbase.quiet_horovodrun; print(\"CLIENT OK\")' && "
                 "flightbase --help >/dev/null && echo 'CLI OK'; "
                 "python -c 'import fastapi' 2>/dev/null || echo 'NO SERVER DEPENDENCIES'")
    record = json.loads(next(line for line in out.splitlines() if line.startswith("{")))
    assert record["step"] == 3 and record["loss"] == 0.25
    assert "CLIENT OK" in out and "CLI OK" in out and "NO SERVER DEPENDENCIES" in out, out


def test_the_venv_is_readable_by_everyone_and_writable_by_nobody_else(images):
    out = run_in(TRAINING, "sh", "-c",
                 "find /opt/flightbase \\( -type d ! -perm -o=rx -o -type f ! -perm -o=r -o ! -user 0 \\) -print | head; "
                 "touch /opt/flightbase/bin/x 2>/dev/null && echo WROTE; "
                 "touch /opt/flightbase/lib/python3.11/site-packages/torch/x 2>/dev/null && echo WROTE; "
                 "ls -A /tmp; echo DONE")  # the build left nothing in the home it gives (HOME=/tmp)
    assert out.strip() == "DONE", out


def test_the_notebook_image_has_jupyterhub_singleuser_and_the_flightbase_extension(images):
    assert run_in(NOTEBOOK, "jupyterhub-singleuser", "--version").strip().startswith("6.1."), "not jupyterhub 6.1"
    listing = re.sub(r"\x1b\[[0-9;]*m", "", run_in(NOTEBOOK, "jupyter", "labextension", "list"))  # no colours
    assert re.search(r"flightbase-labext v\S+ enabled\s+OK", listing), listing
    out = run_in(NOTEBOOK, "python", "-c",
                 "import jupyterlab, ipyparallel, flightbase_labext, flightbase.ipp, flightbase.magics, torch; "
                 "print('LAB', jupyterlab.__version__, ipyparallel.__version__.split('.')[0])")
    assert re.search(r"LAB 4\.6\.\S+ 9", out), out


# ---- the engine step's errors ---------------------------------------------------------

@pytest.mark.skipif(os.geteuid() != 0, reason="the engine step runs as root only (elsewhere containers are off)")
@pytest.mark.parametrize("behaviour, message", [
    ("exit 3", "dockerd exited before it answered"),
    ("exec sleep 60", "did not answer 'docker info' within 2s"),
])
def test_a_dockerd_that_never_answers_is_a_clear_error(tmp_path, behaviour, message):
    """Stand-ins for ``docker`` (no engine answers) and ``dockerd`` on PATH: the real engine is shared with
    the other tests on this machine, so it cannot be stopped or made to fail to show the step's errors."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("docker", "exit 1"), ("dockerd", behaviour)):
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", FLIGHTBASE_CACHE=str(tmp_path / "cache"),
               FLIGHTBASE_DOCKERD_TIMEOUT="2", FLIGHTBASE_DOCKERD_LOG=str(tmp_path / "dockerd.log"))
    result = subprocess.run([str(SCRIPT), "engine"], capture_output=True, text=True, env=env, timeout=60)
    pid = re.search(r"dockerd \(pid (\d+)\)", result.stderr)
    if pid:  # the stand-in that sleeps: end it
        os.kill(int(pid.group(1)), 9)
    assert result.returncode != 0, result.stdout + result.stderr
    assert "no Docker engine answers: starting dockerd" in result.stdout
    assert message in result.stderr, result.stderr

"""Command lines of the launchers, as pure functions (table-tested).

``horovod``: ``horovodrun --gloo`` on this machine (gloo needs no MPI; with
GPUs Horovod still uses NCCL for the allreduce itself). ``torchrun``: PyTorch
elastic's launcher with one process per GPU and rank-tagged output. ``mpi``:
a plain ``mpirun``. ``none``: one process.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

LAUNCHERS = ("horovod", "torchrun", "mpi", "none")


@dataclass(frozen=True)
class Program:
    """What to run: a Python script (``*.py``) or an executable, with its arguments."""

    entrypoint: str
    args: tuple[str, ...] = ()

    def argv(self, python: str) -> list[str]:
        if self.entrypoint.endswith(".py"):
            return [python, "-u", self.entrypoint, *self.args]
        return [self.entrypoint if "/" in self.entrypoint else f"./{self.entrypoint}", *self.args]


def command(launcher: str, program: Program, nprocs: int, *, python: str, bindir: str, hosts: str | None = None) -> list[str]:
    """The full command line for ``nprocs`` processes on this machine (``hosts``: horovod's -H)."""
    if launcher == "none":
        return program.argv(python)
    if launcher == "horovod":
        return [f"{bindir}/horovodrun", "--gloo", "-np", str(nprocs), "-H", hosts or f"localhost:{nprocs}",
                *program.argv(python)]
    if launcher == "torchrun":
        target = [program.entrypoint, *program.args] if program.entrypoint.endswith(".py") else ["--no-python", *program.argv(python)]
        return [f"{bindir}/torchrun", "--standalone", "--nproc-per-node", str(nprocs), "--tee", "3", *target]
    if launcher == "mpi":
        return [shutil.which("mpirun") or "mpirun", "-np", str(nprocs), "--oversubscribe", *program.argv(python)]
    raise ValueError(f"unknown launcher {launcher!r}; known launchers: {', '.join(LAUNCHERS)}")


def missing_tool(launcher: str, bindir: str) -> str | None:
    """Why ``launcher`` cannot run on this machine, or None."""
    if launcher == "horovod" and not Path(bindir, "horovodrun").exists():
        return "horovodrun is not installed on this machine (run scripts/install-ml.sh)"
    if launcher == "torchrun" and not Path(bindir, "torchrun").exists():
        return "torchrun is not installed on this machine (install torch)"
    if launcher == "mpi" and not shutil.which("mpirun"):
        return "mpirun is not installed on this machine (apt-get install openmpi-bin)"
    return None


# Output lines of each launcher start with the rank that wrote them.
RANK_PREFIXES = {
    "horovod": r"^\[(?P<rank>\d+)\]<(?:stdout|stderr)>:",
    "torchrun": r"^\[default(?P<rank>\d+)\]:",
    "mpi": r"^\[\d+,(?P<rank>\d+)\]<(?:stdout|stderr)>:",
}

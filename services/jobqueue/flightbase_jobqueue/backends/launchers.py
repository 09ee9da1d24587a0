"""Command lines of the launchers, as pure functions (table-tested).

``horovod``: ``horovodrun --gloo`` on this machine (gloo needs no MPI; with
GPUs Horovod still uses NCCL for the allreduce itself), through
:mod:`~flightbase.quiet_horovodrun`, which keeps the
environment off the workers' command lines. ``torchrun``: PyTorch
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
    """The full command line for ``nprocs`` processes on this machine (``hosts``: horovod's -H).

    ``bindir``: where the launchers' own commands are (this machine's venv); empty: found on the
    PATH (inside a container, whose image has its own)."""
    def tool(name: str) -> str:
        return f"{bindir}/{name}" if bindir else name

    if launcher == "none":
        return program.argv(python)
    if launcher == "horovod":
        # not bindir/horovodrun: its workers' shell commands carry the whole environment (secrets
        # included) where every account reads them (ps); see quiet_horovodrun
        return [python, "-m", "flightbase.quiet_horovodrun", "--gloo", "-np", str(nprocs),
                "-H", hosts or f"localhost:{nprocs}", *program.argv(python)]
    if launcher == "torchrun":
        target = [program.entrypoint, *program.args] if program.entrypoint.endswith(".py") else ["--no-python", *program.argv(python)]
        return [tool("torchrun"), "--standalone", "--nproc-per-node", str(nprocs), "--tee", "3", *target]
    if launcher == "mpi":
        return [(shutil.which("mpirun") or "mpirun") if bindir else "mpirun", "-np", str(nprocs), "--oversubscribe", *program.argv(python)]
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


# -- GPU communication --------------------------------------------------------------------
# The two per-job switches, as NCCL/UCX settings every backend applies the same way
# (https://docs.nvidia.com/deeplearning/nccl/user-guide/docs/env.html; docs/kubernetes.md):
# - GPUDirect P2P: NCCL_P2P_DISABLE=0 lets GPUs of a node copy to each other directly
#   (NVLink/PCIe); 1 forbids it.
# - GPUDirect RDMA: InfiniBand on (NCCL_IB_DISABLE=0) with NICs reading and writing GPU
#   memory when close enough (NCCL_NET_GDR_LEVEL), UCX over RDMA transports; off,
#   InfiniBand off and UCX over TCP and shared memory.
RDMA_DEFAULTS = {"ib_hca": "", "gdr_level": "PHB", "ucx_tls": "rc,sm,self,cuda_copy,gdr_copy"}


def communication_env(p2p: bool, rdma: bool, *, ib_hca: str = "", gdr_level: str = "PHB",
                      ucx_tls: str = RDMA_DEFAULTS["ucx_tls"]) -> dict[str, str]:
    env = {"NCCL_P2P_DISABLE": "0" if p2p else "1"}
    if rdma:
        env.update({"NCCL_IB_DISABLE": "0", "NCCL_NET_GDR_LEVEL": gdr_level, "UCX_TLS": ucx_tls})
        if ib_hca:
            env["NCCL_IB_HCA"] = ib_hca
    else:
        env.update({"NCCL_IB_DISABLE": "1", "UCX_TLS": "tcp,sm,self"})
    return env

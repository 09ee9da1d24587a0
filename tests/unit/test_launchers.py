"""The launchers' command lines and the GPUDirect switches, as tables."""

import pytest

from flightbase_jobqueue.backends import launchers

P = launchers.Program


@pytest.mark.parametrize(
    ("launcher", "program", "n", "expected"),
    [
        ("none", P("train.py", ("--lr", "1")), 1, ["/py", "-u", "train.py", "--lr", "1"]),
        ("none", P("run.sh"), 1, ["./run.sh"]),
        ("horovod", P("train.py"), 2, ["/py", "-m", "flightbase.quiet_horovodrun", "--gloo", "-np", "2",
                                       "-H", "localhost:2", "/py", "-u", "train.py"]),
        ("torchrun", P("train.py", ("--x",)), 4, ["/bin/torchrun", "--standalone", "--nproc-per-node", "4", "--tee", "3", "train.py", "--x"]),
        ("torchrun", P("run.sh"), 2, ["/bin/torchrun", "--standalone", "--nproc-per-node", "2", "--tee", "3", "--no-python", "./run.sh"]),
    ],
)
def test_command(launcher, program, n, expected):
    assert launchers.command(launcher, program, n, python="/py", bindir="/bin") == expected


def test_unknown_launcher_is_an_error():
    with pytest.raises(ValueError, match="known launchers"):
        launchers.command("slurm", P("x.py"), 1, python="/py", bindir="/bin")


@pytest.mark.parametrize(
    ("p2p", "rdma", "env"),
    [
        (False, False, {"NCCL_P2P_DISABLE": "1", "NCCL_IB_DISABLE": "1", "UCX_TLS": "tcp,sm,self"}),
        (True, False, {"NCCL_P2P_DISABLE": "0", "NCCL_IB_DISABLE": "1", "UCX_TLS": "tcp,sm,self"}),
        (False, True, {"NCCL_P2P_DISABLE": "1", "NCCL_IB_DISABLE": "0", "NCCL_NET_GDR_LEVEL": "PHB",
                       "UCX_TLS": "rc,sm,self,cuda_copy,gdr_copy"}),
    ],
)
def test_gpudirect_switches(p2p, rdma, env):
    assert launchers.communication_env(p2p, rdma) == env

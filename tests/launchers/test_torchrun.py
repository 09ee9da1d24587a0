"""A real 2-process torchrun run: torch.distributed gloo all_reduce and DDP."""
from ._launch import SCRIPTS, check_results, require_module, run_launcher, venv_tool


def test_torchrun_gloo_two_processes():
    require_module(
        "import torch, torch.distributed as d; "
        "assert torch.__version__.split('+')[0] == '2.13.0', torch.__version__; "
        "assert d.is_available() and d.is_gloo_available()",
        "torch 2.13.0 with torch.distributed (gloo)",
    )
    torchrun = venv_tool("torchrun")
    results, out, took = run_launcher(
        [torchrun, "--standalone", "--nproc_per_node", "2", SCRIPTS / "torch_allreduce.py"],
        timeout=120,
    )
    check_results(results, out)
    for rank, rec in results.items():
        assert rec["backend"] == "gloo"
        assert rec["local_rank"] == rank
    print(f"torchrun 2 procs took {took:.1f}s")

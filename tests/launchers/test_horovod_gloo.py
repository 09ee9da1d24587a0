"""A real 2-process Horovod run (gloo controller and ops, CPU) via horovodrun."""
import sys

from ._launch import MARK, SCRIPTS, check_results, require_module, run_launcher, venv_tool


def test_horovodrun_gloo_two_processes():
    require_module(
        "import horovod, horovod.torch as hvd; "
        "assert horovod.__version__ == '0.28.1', horovod.__version__; "
        "assert hvd.gloo_built(), 'horovod built without gloo'",
        "horovod 0.28.1 (torch, gloo)",
    )
    horovodrun = venv_tool("horovodrun")
    results, out, took = run_launcher(
        [horovodrun, "--gloo", "-np", "2", "-H", "localhost:2",
         sys.executable, SCRIPTS / "hvd_allreduce.py"],
        timeout=120,
    )
    check_results(results, out)
    assert all(rec["gloo_enabled"] for rec in results.values())
    # horovodrun tags each process's output with its rank: both ranks spoke
    tagged = [line for line in out.splitlines() if MARK in line]
    for rank in (0, 1):
        assert any(line.startswith(f"[{rank}]<stdout>:{MARK}") and f'"rank": {rank},' in line
                   for line in tagged), out[-4000:]
    print(f"horovodrun 2 procs took {took:.1f}s")

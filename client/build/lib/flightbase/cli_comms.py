"""GPU communication on the command line: a job's NCCL record, and the all-reduce benchmark.

    flightbase jobs show JOB [--json]          the job, with what NCCL did and the GPUDirect flags
    flightbase bench allreduce --gpus 2        all-reduce bus bandwidth, 8 B .. 1 GiB, as a platform job
    flightbase bench allreduce --gpus 2 --max-bytes 1M --json

The benchmark is submitted through the API like any training (its code is
:mod:`flightbase.bench_allreduce_job`), so its figures are those a job gets:
NCCL on the job's GPUs, gloo on CPU slots. Bandwidths are nccl-tests' (its
``doc/PERFORMANCE.md``): ``algbw = size / time``, ``busbw = algbw * 2(n-1)/n``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from flightbase.cli_common import workspace_arg

JOB_SCRIPT = Path(__file__).with_name("bench_allreduce_job.py")
MARKER = "FLIGHTBASE_ALLREDUCE"
GPU_MAX_BYTES = 1 << 30
CPU_MAX_BYTES = 32 << 20  # gloo over loopback on CPU slots: a sweep of seconds, not minutes

# Bus bandwidth one can expect of an all-reduce on a machine of this kind, GB/s: rough figures
# of published nccl-tests all_reduce_perf runs at large sizes, about 80% of the links' bandwidth
# in one direction. They say whether a job is in the right range, not to the last GB/s.
EXPECTED_NVLINK = [  # (GPU name contains, busbw GB/s, the interconnect)
    ("H200", 360.0, "NVLink 4 (900 GB/s per GPU, 450 each way)"),
    ("H100", 360.0, "NVLink 4 (900 GB/s per GPU, 450 each way)"),
    ("H800", 160.0, "NVLink 4, 8 links (400 GB/s per GPU)"),
    ("A100", 230.0, "NVLink 3 (600 GB/s per GPU, 300 each way)"),
    ("A800", 160.0, "NVLink 3, 8 links (400 GB/s per GPU)"),
    ("V100", 130.0, "NVLink 2 (300 GB/s per GPU)"),
]
EXPECTED_PCIE = {3: 10.0, 4: 20.0, 5: 40.0}  # x16, per direction about 80%


def expected(hw: dict, world: int, comm: dict | None = None) -> dict:
    """The figure expected for the hardware the job found: ``{"busbw_gbps", "basis"}`` (busbw None: no reference).

    NVLink counts where NVML saw active links or NCCL's record says it used them (``comm``)."""
    if world < 2:
        return {"busbw_gbps": None, "basis": "one rank: an all-reduce moves nothing between ranks (busbw is 0)"}
    if hw.get("backend") != "nccl":
        return {"busbw_gbps": None,
                "basis": "gloo on CPU slots: no reference figure (loopback TCP, bound by the CPU's memory copies)"}
    device = hw.get("device", "")
    summary = (comm or {}).get("summary") or {}
    if any(k.startswith("NET/") for k in summary):
        return {"busbw_gbps": None, "basis": f"{device}: between nodes, bound by the network ({', '.join(summary)})"}
    nvlink = hw.get("nvlink_links") or (comm or {}).get("path_intra") in ("NVL", "NVB") or "P2P/NVLink" in summary
    if nvlink:
        for name, busbw, what in EXPECTED_NVLINK:
            if name in device:
                return {"busbw_gbps": busbw, "basis": f"{device}: {what}"}
    gen, width = hw.get("pcie_gen"), hw.get("pcie_width") or 16
    if gen in EXPECTED_PCIE:
        return {"busbw_gbps": EXPECTED_PCIE[gen] * width / 16, "basis": f"{device}: PCIe gen {gen} x{width}"}
    return {"busbw_gbps": None, "basis": f"{device}: no reference figure for this GPU and link"}


def parse_bytes(text: str) -> int:
    """``8``, ``64K``, ``1M``, ``1G`` (powers of 1024) -> bytes."""
    m = re.fullmatch(r"\s*(\d+)\s*([KMG]?)i?B?\s*", text, re.IGNORECASE)
    if not m:
        raise argparse.ArgumentTypeError(f"expected a size such as 1048576, 64K, 1M or 1G, got {text!r}")
    return int(m[1]) << {"": 0, "K": 10, "M": 20, "G": 30}[m[2].upper()]


def result_of(log: str) -> dict | None:
    """The benchmark's result line in the job's output (rank-tagged by torchrun or not)."""
    for line in log.splitlines():
        at = line.find(MARKER + " ")
        if at >= 0:
            try:
                return json.loads(line[at + len(MARKER) + 1:])
            except ValueError:
                continue
    return None


def add_bench_parser(bench_sub) -> None:
    p = bench_sub.add_parser("allreduce", help="all-reduce bus bandwidth, 8 B .. 1 GiB, as a platform job")
    workspace_arg(p)
    p.add_argument("-g", "--gpus", type=int, default=2, help="GPUs (or CPU slots) of the job, one rank each (default 2)")
    p.add_argument("--max-bytes", type=parse_bytes, default=None,
                   help=f"largest buffer (default 1G on GPUs, {CPU_MAX_BYTES >> 20}M on CPU slots)")
    p.add_argument("--min-bytes", type=parse_bytes, default=8, help="smallest buffer (default 8)")
    p.add_argument("--iters", type=int, default=20, help="timed iterations per size (default 20)")
    p.add_argument("--timeout", type=float, default=1800, help="seconds to wait for the job (default 1800)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bench_allreduce)


def cmd_bench_allreduce(args) -> int:
    from flightbase.client import Client

    if args.gpus < 1:
        raise ValueError("gpus: must be at least 1")
    if args.iters < 1:
        raise ValueError("iters: must be at least 1")
    with Client() as c:
        ws = c.resolve_workspace(args.workspace)
        gpu_kind = c.info().get("gpu_kind")
        max_bytes = args.max_bytes or (GPU_MAX_BYTES if gpu_kind == "gpu" else CPU_MAX_BYTES)
        if args.min_bytes > max_bytes:
            raise ValueError("max-bytes: must not be below min-bytes")
        t = c.submit(ws, str(JOB_SCRIPT), entrypoint=JOB_SCRIPT.name, name="bench-allreduce", gpus=args.gpus,
                     launcher="torchrun" if args.gpus > 1 else "none",
                     args=["--min-bytes", str(args.min_bytes), "--max-bytes", str(max_bytes), "--iters", str(args.iters)])
        job_id = t["jobs"][0]["id"]
        if not args.json:
            print(f"job {job_id}: all-reduce on {args.gpus} {'GPU' if gpu_kind == 'gpu' else 'CPU slot'}(s), "
                  f"{args.min_bytes} B .. {max_bytes} B", file=sys.stderr)
        try:
            job = c.wait(job_id, timeout=args.timeout)
        except TimeoutError as exc:
            raise ValueError(f"timeout: {exc} after {args.timeout:g} s (it keeps running; cancel it with "
                             f"`flightbase cancel {job_id}`)") from None
        log = c.logs(job_id)
        detail = c.job(job_id)
    result = result_of(log if isinstance(log, str) else "")
    if job["state"] != "succeeded" or result is None:
        tail = "\n".join((log if isinstance(log, str) else "").splitlines()[-5:])
        raise ValueError(f"bench: job {job_id} ended {job['state']} without a result; its output ends:\n{tail}")
    peak = max((r["busbw_gbps"] for r in result["results"]), default=0.0)
    comm = detail.get("communication") or {}
    exp = expected(result["hardware"], result["world_size"], comm)
    out = {"job": job_id, "training": t["id"], "workspace": ws, "gpu_kind": gpu_kind, **result,
           "peak_busbw_gbps": peak, "expected": {**exp, "fraction": (peak / exp["busbw_gbps"]) if exp["busbw_gbps"] else None},
           "communication": {k: comm.get(k) for k in ("summary", "network", "path_intra", "used", "flags", "notes")}}
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    hw = result["hardware"]
    print(f"# all-reduce (sum, float32), {result['world_size']} rank(s), {hw['backend']} on {hw.get('device')} "
          f"- job {job_id}")
    print(f"# {'size (B)':>12} {'count':>11} {'time (us)':>11} {'algbw (GB/s)':>13} {'busbw (GB/s)':>13}")
    for r in result["results"]:
        print(f"  {r['size_bytes']:>12} {r['count']:>11} {r['time_us']:>11.1f} {r['algbw_gbps']:>13.3f} "
              f"{r['busbw_gbps']:>13.3f}")
    print(f"peak bus bandwidth: {peak:.3f} GB/s")
    if exp["busbw_gbps"]:
        print(f"expected: about {exp['busbw_gbps']:.0f} GB/s ({exp['basis']}): {100 * peak / exp['busbw_gbps']:.0f}%")
    else:
        print(f"expected: {exp['basis']}")
    for line in communication_lines(comm):
        print(line)
    return 0


# -- a job's record ----------------------------------------------------------------------------

def communication_lines(comm: dict | None) -> list[str]:
    """A job's communication record in a few lines (``flightbase jobs show``)."""
    if not comm:
        return ["communication: not recorded"]
    lines = []
    if comm.get("source") == "nccl":
        net = comm.get("network")
        head = (f"communication: NCCL {comm.get('nccl_version') or ''}".rstrip() +
                f", {comm.get('ranks')} rank(s), network {net if isinstance(net, str) else ','.join(net or []) or '-'}")
        if comm.get("path_intra"):
            head += f", GPU path {comm['path_intra']}"
        lines.append(head)
        for label, n in (comm.get("summary") or {}).items():
            lines.append(f"  {label:<16} {n} channel connection(s)")
        for ch, order in (comm.get("rings") or {}).items():
            lines.append(f"  ring {int(ch):02d}: {' -> '.join(map(str, order))}")
        for ch, nodes in (comm.get("trees") or {}).items():
            edges = [f"{r}->{n['parent']}" for r, n in nodes.items() if n.get("parent", -1) >= 0]
            lines.append(f"  tree {int(ch):02d}: {', '.join(edges) or 'root only'}")
    else:
        lines.append("communication: no NCCL log")
    asked = [f for f, on in (comm.get("requested") or {}).items() if on]
    if asked:
        used = comm.get("used") or {}
        lines.append("  asked for: " + ", ".join(
            f"{f} ({'used' if used.get(f) else 'not used' if used.get(f) is False else 'cannot tell'})" for f in asked))
    for f in comm.get("flags") or []:
        lines.append(f"  FLAG {f['feature']}: {f['reason']}")
    for n in comm.get("notes") or []:
        lines.append(f"  note: {n}")
    return lines


def cmd_job_show(job_id: str, as_json: bool) -> int:
    from flightbase.client import Client

    with Client() as c:
        job = c.job(job_id)
    if as_json:
        print(json.dumps(job, indent=1))
        return 0
    where = ",".join(f"{h}:{','.join(map(str, g))}" for h, g in (job.get("placement") or {}).items())
    print(f"job {job['id']} ({job['name']}) in {job['workspace']}: {job['state']}, {job['gpus']} "
          f"{'slot' if job['gpu_kind'] == 'cpu-slot' else 'gpu'}(s){' on ' + where if where else ''}"
          f"{', exit code ' + str(job['exit_code']) if job.get('exit_code') is not None else ''}")
    if job.get("reason"):
        print(f"  reason: {job['reason']}")
    for line in communication_lines(job.get("communication")):
        print(line)
    return 0

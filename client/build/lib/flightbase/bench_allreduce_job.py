"""The all-reduce bandwidth sweep that ``flightbase bench allreduce`` runs as a platform job.

One process per GPU (torchrun) or per CPU slot: ``torch.distributed`` all-reduce
(sum of float32) over NCCL where the job holds GPUs, over gloo on CPU slots,
for every size from ``--min-bytes`` to ``--max-bytes``, doubling. Each size is
timed as nccl-tests times it (warm-up iterations, then the mean of ``--iters``)
and reported with nccl-tests' two bandwidths (nccl-tests, doc/PERFORMANCE.md):

- algorithm bandwidth ``algbw = size / time``;
- bus bandwidth ``busbw = algbw * 2 (n - 1) / n`` for all-reduce with n ranks,
  which is comparable with the hardware's link bandwidth whatever n is.

Rank 0 prints one line ``FLIGHTBASE_ALLREDUCE {json}`` with every figure and the
hardware it found, and reports each size's figures as metrics. This file runs
inside the job on its own (it is uploaded as the job's code): it imports nothing
of Flightbase but, when present, :func:`flightbase.metrics.report`.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time

MARKER = "FLIGHTBASE_ALLREDUCE"


def sizes(lo: int, hi: int) -> list[int]:
    out, size = [], max(4, lo)
    while size <= hi:
        out.append(size)
        size *= 2
    return out


def iterations(size: int, iters: int) -> int:
    """Fewer iterations for big buffers: the sweep's time stays bounded (at least 2 each)."""
    return max(2, min(iters, (256 << 20) // max(size, 1)))


def _nvml_handle(pynvml, props):
    """NVML's handle on this rank's GPU (NVML numbers GPUs without regard to CUDA_VISIBLE_DEVICES)."""
    uuid = getattr(props, "uuid", None)
    if uuid is not None:
        try:
            return pynvml.nvmlDeviceGetHandleByUUID(f"GPU-{uuid}")
        except pynvml.NVMLError:
            pass
    if hasattr(props, "pci_bus_id"):
        bus = f"{getattr(props, 'pci_domain_id', 0):08x}:{props.pci_bus_id:02x}:{getattr(props, 'pci_device_id', 0):02x}.0"
        try:
            return pynvml.nvmlDeviceGetHandleByPciBusId(bus)
        except pynvml.NVMLError:
            pass
    return pynvml.nvmlDeviceGetHandleByIndex(0)


def hardware(torch, backend: str) -> dict:
    info: dict = {"backend": backend, "host": socket.gethostname()}
    if backend == "nccl":
        info["device"] = torch.cuda.get_device_name(0)
        info["nccl_version"] = ".".join(map(str, torch.cuda.nccl.version()))
        try:  # NVLink links and PCIe link of this rank's GPU, where NVML is at hand
            import pynvml

            pynvml.nvmlInit()
            try:
                handle = _nvml_handle(pynvml, torch.cuda.get_device_properties(torch.cuda.current_device()))
                links = 0
                for link in range(18):
                    try:
                        links += int(pynvml.nvmlDeviceGetNvLinkState(handle, link) == 1)
                    except pynvml.NVMLError:
                        break
                info["nvlink_links"] = links
                info["pcie_gen"] = int(pynvml.nvmlDeviceGetCurrPcieLinkGeneration(handle))
                info["pcie_width"] = int(pynvml.nvmlDeviceGetCurrPcieLinkWidth(handle))
            finally:
                pynvml.nvmlShutdown()
        except Exception as exc:  # noqa: BLE001 - the figures stand without it
            info["nvml"] = f"unavailable: {exc}"
    else:
        info["device"] = "CPU"
        info["cpus"] = os.cpu_count()
    return info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--min-bytes", type=int, default=8)
    p.add_argument("--max-bytes", type=int, default=1 << 30)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    args = p.parse_args(argv)

    import torch
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if world == 1:  # one process, no launcher: a group of one
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            os.environ.setdefault("MASTER_PORT", str(s.getsockname()[1]))
        os.environ.setdefault("RANK", "0")
        os.environ.setdefault("WORLD_SIZE", "1")
    use_gpu = bool(os.environ.get("CUDA_VISIBLE_DEVICES")) and torch.cuda.is_available()
    backend = "nccl" if use_gpu else "gloo"
    if use_gpu:
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
        device = torch.device("cuda", torch.cuda.current_device())
    else:
        device = torch.device("cpu")
        if int(os.environ.get("LOCAL_WORLD_SIZE", world)) == world:
            os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # every rank on this machine
    dist.init_process_group(backend)

    def sync():
        if use_gpu:
            torch.cuda.synchronize()

    results = []
    factor = 2 * (world - 1) / world
    for step, size in enumerate(sizes(args.min_bytes, args.max_bytes)):
        count = max(1, size // 4)
        buf = torch.ones(count, dtype=torch.float32, device=device)
        n = iterations(size, args.iters)
        for _ in range(min(args.warmup, n)):
            dist.all_reduce(buf)
        sync()
        dist.barrier()
        start = time.perf_counter()
        for _ in range(n):
            dist.all_reduce(buf)
        sync()
        seconds = (time.perf_counter() - start) / n
        # the slowest rank's time is the collective's (nccl-tests reports the same)
        t = torch.tensor([seconds], dtype=torch.float64, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        seconds = float(t.item())
        algbw = count * 4 / seconds / 1e9
        row = {"size_bytes": count * 4, "count": count, "iterations": n, "time_us": seconds * 1e6,
               "algbw_gbps": algbw, "busbw_gbps": algbw * factor}
        results.append(row)
        if rank == 0:
            try:
                from flightbase.metrics import report

                report(step=step, **{k: float(v) for k, v in row.items()})
            except ImportError:
                pass
        del buf
    if rank == 0:
        out = {"world_size": world, "hardware": hardware(torch, backend), "results": results,
               "definition": "nccl-tests doc/PERFORMANCE.md: algbw = size/time; busbw = algbw * 2(n-1)/n"}
        print(MARKER, json.dumps(out), flush=True)
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())

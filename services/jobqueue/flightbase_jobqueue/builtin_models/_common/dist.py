"""One interface over the three ways a script runs: Horovod, torchrun, a single process.

Which one is read from the environment the launcher sets (``HOROVOD_RANK`` for
``horovodrun``, ``TORCHELASTIC_RUN_ID``/``WORLD_SIZE`` for ``torchrun``).
Horovod averages gradients in its ``DistributedOptimizer`` (with
``hvd.Compression.fp16`` when asked); torchrun wraps the model in
``DistributedDataParallel`` (with the ``fp16_compress_hook`` communication hook
when asked, on GPUs). See https://horovod.readthedocs.io/en/stable/pytorch.html
and https://pytorch.org/docs/stable/ddp_comm_hooks.html.
"""

from __future__ import annotations

import contextlib
import os
import sys

import torch


def exit_done() -> None:
    """Leave the process with status 0 once a script has done all its work.

    Called from a script's ``__main__`` after :meth:`Dist.close`: everything it
    writes is closed and its output flushed here, and the interpreter's own
    teardown is skipped.  A DistributedDataParallel model still alive in that
    teardown can abort the rank (gloo, SIGABRT, "terminate called without an active
    exception") after every collective has completed, which would fail a training
    that succeeded (measured in docs/horovod.md, "A torchrun rank that aborts after
    all its work")."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(0)


def detect() -> str:
    if "HOROVOD_RANK" in os.environ or "OMPI_COMM_WORLD_RANK" in os.environ:
        return "horovod"
    if "TORCHELASTIC_RUN_ID" in os.environ or ("WORLD_SIZE" in os.environ and "RANK" in os.environ):
        return "torchrun"
    return "single"


class Dist:
    def __init__(self, kind: str | None = None):
        self.kind = kind or detect()
        self.hvd = None
        if self.kind == "horovod":
            import horovod.torch as hvd

            hvd.init()
            self.hvd = hvd
            self.rank, self.size, self.local_rank = hvd.rank(), hvd.size(), hvd.local_rank()
        elif self.kind == "torchrun":
            import torch.distributed as td

            self.rank, self.size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
            self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
            if torch.cuda.is_available():
                torch.cuda.set_device(self.local_rank)
            td.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        elif self.kind == "single":
            self.rank, self.size, self.local_rank = 0, 1, 0
        else:
            raise ValueError(f"unknown distribution {self.kind!r} (horovod, torchrun, single)")
        if torch.cuda.is_available():
            torch.cuda.set_device(self.local_rank % torch.cuda.device_count())
            self.device = torch.device("cuda", torch.cuda.current_device())
        else:
            self.device = torch.device("cpu")
            threads = os.environ.get("OMP_NUM_THREADS")
            if threads:
                torch.set_num_threads(int(threads))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # -- model and optimizer ---------------------------------------------------------
    def wrap(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, *, fp16_compression: bool,
             accumulation: int):
        """(model, optimizer) ready for data-parallel training; parameters equal on every rank."""
        if self.kind == "horovod":
            hvd = self.hvd
            hvd.broadcast_parameters(model.state_dict(), root_rank=0)
            hvd.broadcast_optimizer_state(optimizer, root_rank=0)
            compression = hvd.Compression.fp16 if fp16_compression else hvd.Compression.none
            optimizer = hvd.DistributedOptimizer(optimizer, named_parameters=model.named_parameters(),
                                                 compression=compression, backward_passes_per_step=accumulation)
            return model, optimizer
        if self.kind == "torchrun":
            from torch.nn.parallel import DistributedDataParallel

            ddp = DistributedDataParallel(model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
            if fp16_compression:
                if self.device.type == "cuda":
                    from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

                    ddp.register_comm_hook(None, default_hooks.fp16_compress_hook)
                elif self.is_main:
                    print("note: fp16 gradient compression applies on GPUs only under torchrun; ignored on CPU",
                          flush=True)
            return ddp, optimizer
        return model, optimizer

    def no_sync(self, model, optimizer, last_micro_step: bool):
        """Skip the gradient exchange on all but the last micro-batch of an accumulation."""
        if self.kind == "torchrun" and not last_micro_step:
            return model.no_sync()
        return contextlib.nullcontext()  # Horovod counts backward passes itself (backward_passes_per_step)

    def step(self, optimizer, scaler=None) -> None:
        if scaler is None:
            optimizer.step()
            return
        if self.kind == "horovod":  # gradients must be reduced before they are unscaled
            optimizer.synchronize()
            scaler.unscale_(optimizer)
            with optimizer.skip_synchronize():
                scaler.step(optimizer)
        else:
            scaler.step(optimizer)
        scaler.update()

    # -- collectives on small tensors -------------------------------------------------
    def sum(self, values: list[float]) -> list[float]:
        t = torch.tensor(values, dtype=torch.float64)
        if self.kind == "horovod":
            t = self.hvd.allreduce(t, op=self.hvd.Sum, name=None)
        elif self.kind == "torchrun":
            import torch.distributed as td

            t = t.to(self.device)
            td.all_reduce(t)
        return [float(v) for v in t.cpu()]

    def gather(self, value: float) -> list[float]:
        t = torch.tensor([value], dtype=torch.float64)
        if self.kind == "horovod":
            t = self.hvd.allgather(t)
        elif self.kind == "torchrun":
            import torch.distributed as td

            parts = [torch.zeros_like(t, device=self.device) for _ in range(self.size)]
            td.all_gather(parts, t.to(self.device))
            t = torch.cat(parts)
        return [float(v) for v in t.cpu()]

    def barrier(self) -> None:
        if self.size > 1:
            self.sum([0.0])

    def close(self) -> None:
        if self.kind == "torchrun":
            import torch.distributed as td

            # every rank is past its last collective before any tears the group down: a gloo
            # group destroyed while a peer still finishes an all-reduce can abort the process
            # in a C++ destructor after all its work ("terminate called without an active
            # exception"), which would fail a training that did everything it should
            self.barrier()
            td.destroy_process_group()
        elif self.kind == "horovod":
            self.hvd.shutdown()

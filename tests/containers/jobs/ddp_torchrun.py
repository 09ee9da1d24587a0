"""A DistributedDataParallel training as PyTorch's own elastic example writes it (torchrun sets the env).

The ranks meet at a barrier, then drop the DDP model and collect it before they tear
the process group down. A DDP model left to the interpreter's teardown makes a rank
abort after all its work: "terminate called without an active exception" from a
C++ thread (gloo, torch 2.13 CPU; CI runs of 2026-12-02 and 2026-12-05). In
training-base on two CPUs, torchrun of this script without those two lines failed 3
of 60 times, and 8 of 60 with PYTHONFAULTHANDLER set (its dump shows no Python frame:
the interpreter was finalizing); with the model put inside a function as in
PyTorch's example, 6 of 60 or more; with them, 0 of 60 with the handler and 0 of 100
without. Built-in models avoid the same abort by leaving with ``os._exit``
(``builtin_models/_common/dist.py``).
"""
import gc
import os

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.optim as optim
from torch.nn.parallel import DistributedDataParallel as DDP

dist.init_process_group("gloo")
rank = dist.get_rank()
model = DDP(nn.Linear(10, 5))
optimizer = optim.SGD(model.parameters(), lr=0.001)
for _ in range(3):
    optimizer.zero_grad()
    model(torch.randn(20, 10)).sum().backward()
    optimizer.step()
weights = model.module.weight.detach().clone()
dist.all_reduce(weights)
same = torch.allclose(weights / dist.get_world_size(), model.module.weight.detach(), atol=1e-6)
print(f"rank {rank} of {dist.get_world_size()} (LOCAL_RANK={os.environ['LOCAL_RANK']}): in sync: {same}", flush=True)
dist.barrier()
del model, optimizer
gc.collect()  # the DDP model holds the group: free it now, not in the interpreter's teardown
dist.destroy_process_group()

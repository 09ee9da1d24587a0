"""A DistributedDataParallel training as PyTorch's own elastic example writes it (torchrun sets the env).

The ranks meet at a barrier before they tear the process group down, as most DDP
scripts do. Without it, rank 0 once aborted in the teardown ("terminate called
without an active exception", gloo, torch 2.13 CPU; a CI run of 2026-12-02)
after both ranks had printed their result, while rank 1 could still have been
finishing the last all-reduce. 50 runs on the development machine (torchrun on
the host, and in training-base on one CPU) did not show it again.
"""
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
dist.destroy_process_group()

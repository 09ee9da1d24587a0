"""A DistributedDataParallel training as PyTorch's own elastic example writes it (torchrun sets the env)."""
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
dist.destroy_process_group()

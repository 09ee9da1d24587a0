"""A Horovod training written the way Horovod's own PyTorch examples are (pytorch_synthetic_benchmark.py):
a torchvision model, hvd.DistributedOptimizer, broadcast of parameters and optimizer state, synthetic data."""
import timeit

import horovod.torch as hvd
import torch
import torch.nn.functional as F
import torch.optim as optim
from torchvision import models

hvd.init()
torch.manual_seed(42)
model = models.resnet18()
optimizer = optim.SGD(model.parameters(), lr=0.01 * hvd.size())
optimizer = hvd.DistributedOptimizer(optimizer, named_parameters=model.named_parameters(),
                                     compression=hvd.Compression.fp16)
hvd.broadcast_parameters(model.state_dict(), root_rank=0)
hvd.broadcast_optimizer_state(optimizer, root_rank=0)
data = torch.randn(4, 3, 64, 64)
target = torch.LongTensor(4).random_() % 1000


def step():
    optimizer.zero_grad()
    loss = F.cross_entropy(model(data), target)
    loss.backward()
    optimizer.step()


elapsed = timeit.timeit(step, number=3)
first = hvd.allreduce(next(model.parameters()).detach().sum(), name="check")  # the ranks agree
print(f"rank {hvd.rank()} of {hvd.size()}: 3 steps in {elapsed:.1f} s, "
      f"in sync: {abs(float(first) - float(next(model.parameters()).detach().sum())) < 1e-3}", flush=True)

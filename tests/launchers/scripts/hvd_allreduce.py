"""Run under `horovodrun --gloo -np 2 ...`: allreduce of rank-dependent tensors
and a few steps of a tiny model with hvd.DistributedOptimizer."""
import os
import sys

import torch
import horovod.torch as hvd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import LR, batch, flat, new_model, reference_params, report, train  # noqa: E402

hvd.init()
rank, size = hvd.rank(), hvd.size()

t = torch.full((3,), float(rank + 1))
avg = hvd.allreduce(t, name="avg")  # default op: Average
tot = hvd.allreduce(t, name="sum", op=hvd.Sum)
gathered = hvd.allgather(torch.tensor([rank]), name="ranks")

model = new_model()
hvd.broadcast_parameters(model.state_dict(), root_rank=0)
opt = hvd.DistributedOptimizer(
    torch.optim.SGD(model.parameters(), lr=LR), named_parameters=model.named_parameters()
)
losses = train(model, opt, *batch(rank))

params = flat(model)
max_diff_ref = (params - reference_params(size)).abs().max().item()
all_params = hvd.allgather(params.unsqueeze(0), name="params")
max_diff_ranks = (all_params - all_params[0]).abs().max().item()

report(
    launcher="horovod",
    rank=rank,
    size=size,
    gloo_enabled=hvd.gloo_enabled(),
    avg=avg.tolist(),
    sum=tot.tolist(),
    ranks=sorted(gathered.tolist()),
    losses=losses,
    max_diff_ref=max_diff_ref,
    max_diff_ranks=max_diff_ranks,
)
hvd.shutdown()

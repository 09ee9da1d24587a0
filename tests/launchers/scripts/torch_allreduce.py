"""Run under `torchrun --nproc_per_node 2 ...`: torch.distributed (gloo)
all_reduce of rank-dependent tensors and a few DDP steps of a tiny model."""
import os
import sys

import torch
import torch.distributed as dist

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import LR, batch, leave, flat, new_model, reference_params, report, train  # noqa: E402

dist.init_process_group("gloo")
rank, size = dist.get_rank(), dist.get_world_size()

t = torch.full((3,), float(rank + 1))
tot = t.clone()
dist.all_reduce(tot, op=dist.ReduceOp.SUM)
avg = tot / size
gathered = [torch.zeros(1, dtype=torch.long) for _ in range(size)]
dist.all_gather(gathered, torch.tensor([rank]))

model = torch.nn.parallel.DistributedDataParallel(new_model())
opt = torch.optim.SGD(model.parameters(), lr=LR)
losses = train(model, opt, *batch(rank))

params = flat(model.module)
max_diff_ref = (params - reference_params(size)).abs().max().item()
all_params = [torch.zeros_like(params) for _ in range(size)]
dist.all_gather(all_params, params)
max_diff_ranks = max((p - all_params[0]).abs().max().item() for p in all_params)

report(
    launcher="torchrun",
    rank=rank,
    size=size,
    local_rank=int(os.environ["LOCAL_RANK"]),
    backend=dist.get_backend(),
    avg=avg.tolist(),
    sum=tot.tolist(),
    ranks=sorted(int(g.item()) for g in gathered),
    losses=losses,
    max_diff_ref=max_diff_ref,
    max_diff_ranks=max_diff_ranks,
)
# Both ranks are done before either tears its gloo group down, and then each leaves without
# the interpreter's exit handlers: PyTorch's gloo group can still abort in a C++ destructor at
# interpreter exit ("terminate called without an active exception", SIGABRT) after all the
# work, even behind the barrier (seen once in a clean-clone CI run, exit 1 from torchrun).
# What this test checks is the collective's results, reported above.
dist.barrier()
dist.destroy_process_group()
leave()

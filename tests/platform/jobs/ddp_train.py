"""Two ranks under torchrun: a gloo all_reduce whose result is known."""
import torch
import torch.distributed as dist

dist.init_process_group("gloo")
t = torch.full((2,), float(dist.get_rank() + 1))
dist.all_reduce(t)
print(f"rank {dist.get_rank()} of {dist.get_world_size()}: sum={t.tolist()}", flush=True)
dist.barrier()  # before the teardown: see tests/containers/jobs/ddp_torchrun.py
dist.destroy_process_group()

"""Two ranks under horovodrun: an allreduce whose result is known, and a metric from rank 0."""
import torch
import horovod.torch as hvd

from flightbase.metrics import report

hvd.init()
t = torch.full((2,), float(hvd.rank() + 1))
avg = hvd.allreduce(t, name="avg")
tot = hvd.allreduce(t, name="sum", op=hvd.Sum)
print(f"rank {hvd.rank()} of {hvd.size()}: avg={avg.tolist()} sum={tot.tolist()}", flush=True)
if hvd.rank() == 0:
    report(step=0, allreduced_sum=float(tot[0]))

"""Shared bits of the tiny launcher test scripts (no test framework here)."""
import json
import sys
import os

import torch

MARK = "FLIGHTBASE-RESULT "
STEPS = 3
LR = 0.1


def batch(rank: int):
    """Rank-dependent training data, reproducible from the rank alone."""
    g = torch.Generator().manual_seed(1000 + rank)
    x = torch.randn(8, 4, generator=g)
    y = x.sum(dim=1, keepdim=True) + 0.5 * (rank + 1)
    return x, y


def new_model():
    torch.manual_seed(0)
    return torch.nn.Linear(4, 1)


def reference_params(world: int):
    """What data-parallel SGD over `world` ranks must produce: plain SGD on the
    average of the per-rank losses (equal batch sizes, so averaging the
    gradients is the same thing)."""
    model = new_model()
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    batches = [batch(r) for r in range(world)]
    for _ in range(STEPS):
        opt.zero_grad()
        loss = sum(torch.nn.functional.mse_loss(model(x), y) for x, y in batches) / world
        loss.backward()
        opt.step()
    return flat(model)


def train(model, opt, x, y) -> list[float]:
    """``STEPS`` steps of SGD on this rank's batch (the launcher's wrapper averages the gradients): the losses."""
    losses = []
    for _ in range(STEPS):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def flat(model):
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def report(**fields):
    # one write(2) of the whole line: the ranks share one pipe, and print() may split a
    # line into two writes that another rank's output lands between
    sys.stdout.flush()
    os.write(1, (MARK + json.dumps(fields, sort_keys=True) + "\n").encode())


def leave():
    """Exit 0 now, without the interpreter's exit handlers (see torch_allreduce.py)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)

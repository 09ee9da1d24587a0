"""The training loop shared by the built-in models.

A model's ``train.py`` supplies two functions, ``load(args) -> Data`` (read and
check the dataset; raise :class:`~_common.data.DatasetError`) and
``build(meta, params) -> nn.Module``, and calls :func:`run`. This module does
the rest, the same way for every model:

- the dataset is read before any distributed set-up, so a bad one stops every
  rank with exit code 2 and a message naming the file;
- each epoch every worker takes an equal shard of a shuffled permutation;
  ``batch_size`` is per worker and the learning rate is scaled by the number
  of workers times the accumulation steps (``scale_lr``), as in Horovod's
  examples;
- mixed precision: ``torch.autocast`` in bf16 on CPU, bf16 on GPUs that have
  it, else fp16 with a ``GradScaler``;
- a checkpoint is written to ``$FLIGHTBASE_CHECKPOINT_DIR`` after every epoch
  (rank 0, atomically, the last two kept) and a restarted job resumes from
  the latest one, so a preemption loses at most one epoch;
- rank 0 reports metrics through ``flightbase.metrics.report`` and writes the
  final model (``model.pt``) and ``report.json`` to ``$FLIGHTBASE_ARTIFACTS_DIR``.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from _common.cli import parse_args
from _common.data import DatasetError, fail
from _common.dist import Dist

try:
    from flightbase.metrics import report as _report
except ImportError:  # outside Flightbase's environment: the platform also reads key=value lines
    def _report(step=None, **values):
        pairs = ([f"step={step}"] if step is not None else []) + [f"{k}={float(v)}" for k, v in values.items()]
        print(" ".join(pairs), flush=True)


@dataclass
class Data:
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    task: str = "classification"  # or "regression"
    meta: dict = field(default_factory=dict)  # what build() and the saved model need (classes, vocabulary, ...)


def split(n: int, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train indices, validation indices), the same on every rank."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = min(n - 1, max(1, round(n * val_fraction))) if val_fraction > 0 and n > 1 else 0
    return perm[n_val:], perm[:n_val]


def checkpoint_dir(args) -> Path:
    return Path(args.checkpoint_dir or os.environ.get("FLIGHTBASE_CHECKPOINT_DIR") or "checkpoints")


def artifacts_dir(args) -> Path:
    return Path(args.artifacts_dir or os.environ.get("FLIGHTBASE_ARTIFACTS_DIR") or "artifacts")


def latest_checkpoint(directory: Path) -> Path | None:
    found = sorted(directory.glob("checkpoint-epoch*.pt"))
    return found[-1] if found else None


def save_checkpoint(directory: Path, state: dict, keep: int = 2) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"checkpoint-epoch{state['epoch']:05d}.pt"
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # a preemption mid-write leaves the previous checkpoint intact
    for old in sorted(directory.glob("checkpoint-epoch*.pt"))[:-keep]:
        old.unlink(missing_ok=True)
    return path


def amp_settings(device: torch.device, enabled: bool):
    """(autocast dtype or None, GradScaler or None)."""
    if not enabled:
        return None, None
    if device.type == "cpu" or torch.cuda.is_bf16_supported():
        return torch.bfloat16, None
    return torch.float16, torch.amp.GradScaler("cuda")


def make_optimizer(params: dict, model: nn.Module, lr: float) -> torch.optim.Optimizer:
    name = params.get("optimizer", "adamw")
    wd = params.get("weight_decay", 0.0)
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=wd)
    if name == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd)
    raise ValueError(f"unknown optimizer {name!r}")


def run(model_dir: Path, load: Callable[[object], Data], build: Callable[[dict, dict], nn.Module], argv=None) -> dict:
    manifest, args = parse_args(model_dir, argv)
    params = args.params
    try:
        data = load(args)
    except DatasetError as exc:
        fail(exc)
    dist = Dist()
    torch.manual_seed(params.get("seed", 0))
    device = dist.device
    net = build(data.meta, params).to(device)
    accumulation = args.grad_accumulation
    scale = dist.size * accumulation if params.get("scale_lr", True) else 1
    optimizer = make_optimizer(params, net, params["lr"] * scale)
    amp_dtype, scaler = amp_settings(device, args.mixed_precision)
    epochs = params["epochs"]

    ckpt_dir, out_dir = checkpoint_dir(args), artifacts_dir(args)
    start_epoch, step, history, resumed = 0, 0, [], None
    found = latest_checkpoint(ckpt_dir)
    if found is not None:
        state = torch.load(found, map_location=device, weights_only=False)
        if state.get("model") != manifest["name"]:
            raise SystemExit(f"{found}: a checkpoint of {state.get('model')!r}, not {manifest['name']!r}")
        net.load_state_dict(state["model_state"])
        optimizer.load_state_dict(state["optimizer_state"])
        if scaler is not None and state.get("scaler_state"):
            scaler.load_state_dict(state["scaler_state"])
        start_epoch, step, history = state["epoch"], state["step"], state.get("history", [])
        resumed = {"epoch": start_epoch, "step": step, "checkpoint": found.name}
        if dist.is_main:
            print(f"resumed from {found.name}: epoch {start_epoch}, step {step}", flush=True)
    model, optimizer = dist.wrap(net, optimizer, fp16_compression=args.fp16_compression, accumulation=accumulation)
    loss_fn = nn.CrossEntropyLoss() if data.task == "classification" else nn.MSELoss()

    n_train = len(data.train_x)
    per_rank = n_train // dist.size
    batch = max(1, min(params["batch_size"], per_rank // accumulation))
    steps_per_epoch = per_rank // (batch * accumulation)  # whole optimizer steps only: ranks stay in step
    if steps_per_epoch == 0:
        fail(DatasetError(args.data if hasattr(args, "data") else "dataset",
                          f"has {n_train} training rows, too few for {dist.size} workers x {accumulation} accumulation",
                          f"at least {dist.size * accumulation} rows"))
    if dist.is_main:
        print(f"{manifest['name']}: {dist.kind} x{dist.size} on {device}, {n_train} train / {len(data.val_x)} val, "
              f"batch {batch}/worker, accumulation {accumulation}, lr {params['lr'] * scale:g}, "
              f"amp {amp_dtype}, fp16 compression {args.fp16_compression}, from epoch {start_epoch}", flush=True)

    log_every = max(1, steps_per_epoch // 4)
    began = time.time()
    samples_seen = 0
    for epoch in range(start_epoch, epochs):
        model.train()
        perm = torch.randperm(n_train, generator=torch.Generator().manual_seed(params.get("seed", 0) * 1000 + epoch))
        shard = perm[dist.rank::dist.size][:steps_per_epoch * accumulation * batch]
        totals = [0.0, 0.0, 0.0]  # loss sum, correct, count
        window, window_n, t_epoch, t_window = 0.0, 0, time.time(), time.time()
        optimizer.zero_grad()
        for i in range(steps_per_epoch * accumulation):
            idx = shard[i * batch:(i + 1) * batch]
            x, y = data.train_x[idx].to(device, non_blocking=True), data.train_y[idx].to(device, non_blocking=True)
            last = (i + 1) % accumulation == 0
            with dist.no_sync(model, optimizer, last):
                with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                    out = model(x)
                    loss = loss_fn(out.float(), y)
                (scaler.scale(loss / accumulation) if scaler else loss / accumulation).backward()
            if last:
                dist.step(optimizer, scaler)
                optimizer.zero_grad()
                step += 1
            value = float(loss.detach())
            totals[0] += value * len(idx)
            totals[2] += len(idx)
            if data.task == "classification":
                totals[1] += float((out.argmax(1) == y).sum())
            window += value
            window_n += 1
            if last and step % log_every == 0 and dist.is_main:
                rate = window_n * batch / max(1e-9, time.time() - t_window)
                values = {"loss": window / window_n, "throughput": rate * dist.size, "epoch": epoch + (i + 1) / (steps_per_epoch * accumulation)}
                if not history and step == log_every and resumed is None:
                    values["start_loss"] = values["loss"]
                _report(step=step, **values)
                window, window_n, t_window = 0.0, 0, time.time()
        seconds = time.time() - t_epoch
        train_loss, correct, count = dist.sum(totals)
        samples_seen += count
        record = {"epoch": epoch + 1, "step": step, "loss": train_loss / count,
                  "throughput": count / seconds, "throughput_per_worker": count / seconds / dist.size}
        if data.task == "classification":
            record["accuracy"] = correct / count
        record.update(evaluate(model, data, dist, amp_dtype, loss_fn))
        history.append(record)
        if dist.is_main:
            _report(**{k: v for k, v in record.items() if k != "epoch"} | {"epoch": epoch + 1})
            save_checkpoint(ckpt_dir, {"model": manifest["name"], "epoch": epoch + 1, "step": step, "history": history,
                                       "params": params, "model_state": net.state_dict(),
                                       "optimizer_state": optimizer.state_dict(),
                                       "scaler_state": scaler.state_dict() if scaler else None})

    summary = {
        "model": manifest["name"], "params": params, "workers": dist.size, "distribution": dist.kind,
        "device": str(device), "options": {"mixed_precision": args.mixed_precision, "amp_dtype": str(amp_dtype),
                                           "grad_accumulation": accumulation, "fp16_compression": args.fp16_compression},
        "batch_size_per_worker": batch, "effective_lr": params["lr"] * scale, "epochs": epochs, "steps": step,
        "resumed_from": resumed, "seconds": time.time() - began, "history": history,
        "final": history[-1] if history else {},
    }
    if dist.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        torch.save({"model": manifest["name"], "params": params, "meta": data.meta, "state_dict": net.state_dict()},
                   out_dir / "model.pt")
        (out_dir / "report.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
        print(f"done: {step} steps; model and report in {out_dir}", flush=True)
    dist.close()
    return summary


@torch.no_grad()
def evaluate(model, data: Data, dist: Dist, amp_dtype, loss_fn) -> dict:
    model.eval()
    val = torch.arange(len(data.val_x))[dist.rank::dist.size]
    sums = [0.0, 0.0, 0.0, 0.0]  # loss sum, correct, count, squared deviations of the targets (regression)
    for chunk in val.split(256):
        x, y = data.val_x[chunk].to(dist.device), data.val_y[chunk].to(dist.device)
        with torch.autocast(dist.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            out = model(x).float()
        sums[0] += float(loss_fn(out, y)) * len(chunk)
        sums[2] += len(chunk)
        if data.task == "classification":
            sums[1] += float((out.argmax(1) == y).sum())
        else:
            sums[3] += float(((y - y.mean()) ** 2).sum()) if len(chunk) > 1 else 0.0
    loss, correct, count, spread = dist.sum(sums)
    if count == 0:
        return {}
    result = {"val_loss": loss / count}
    if data.task == "classification":
        result["val_accuracy"] = correct / count
    else:  # targets are standardised with the training set's mean and std: RMSE in the target's own units
        std = data.meta.get("target_mean_std", (0.0, 1.0))[1]
        result["val_rmse"] = math.sqrt(loss / count) * std
        if spread > 0:
            result["val_r2"] = 1.0 - loss / spread
    return result

"""Synthetic benchmark: images/s of the ResNet training step on random data, per worker and in all.

Follows Horovod's ``examples/pytorch/pytorch_synthetic_benchmark.py``: warm-up
steps, then ``num_iters`` timed iterations of ``num_batches_per_iter`` steps;
the rate is reported as mean +- 1.96 standard deviations. With ``baseline``,
rank 0 first runs the same steps alone with a plain optimizer (no allreduce)
while the other ranks wait; scaling efficiency = mean per-worker rate in the
distributed run / that single-worker rate. There is nothing to resume: a
restarted benchmark measures again from the start.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from _common.cli import parse_args  # noqa: E402
from _common.dist import Dist, exit_done  # noqa: E402
from _common.resnet import ResNet  # noqa: E402
from _common.trainer import _report, amp_settings, artifacts_dir  # noqa: E402


def make_step(model, optimizer, dist, data, target, amp_dtype, scaler, distributed: bool):
    def step():
        optimizer.zero_grad()
        with torch.autocast(data.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            loss = F.cross_entropy(model(data).float(), target)
        (scaler.scale(loss) if scaler else loss).backward()
        if distributed:
            dist.step(optimizer, scaler)
        elif scaler:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()

    return step


def measure(step, p, device) -> list[float]:
    """Images/s of each timed iteration."""
    for _ in range(p["num_warmup_batches"]):
        step()
    rates = []
    for _ in range(p["num_iters"]):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(p["num_batches_per_iter"]):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        rates.append(p["batch_size"] * p["num_batches_per_iter"] / (time.perf_counter() - t0))
    return rates


def main(argv=None) -> dict:
    manifest, args = parse_args(HERE, argv)
    p = args.params
    dist = Dist()
    device = dist.device
    torch.manual_seed(p["seed"])
    amp_dtype, scaler = amp_settings(device, args.mixed_precision)
    data = torch.randn(p["batch_size"], 3, p["image_size"], p["image_size"], device=device)
    target = torch.randint(0, p["num_classes"], (p["batch_size"],), device=device)

    def fresh():
        m = ResNet(p["arch"], p["num_classes"], 3, p["width"], p["image_size"]).to(device)
        return m, torch.optim.SGD(m.parameters(), lr=p["lr"], momentum=0.9)

    if dist.is_main:
        print(f"synthetic benchmark: {p['arch']} width {p['width']}, {p['image_size']}px, batch {p['batch_size']}/worker, "
              f"{dist.kind} x{dist.size} on {device}, amp {amp_dtype}, fp16 compression {args.fp16_compression}",
              flush=True)
    baseline = None
    if p["baseline"] and dist.size > 1:
        if dist.is_main:
            model, opt = fresh()
            rates = measure(make_step(model, opt, dist, data, target, amp_dtype, scaler, False), p, device)
            baseline = statistics.mean(rates)
            print(f"baseline (rank 0 alone): {baseline:.1f} img/s", flush=True)
            del model, opt
        dist.barrier()  # the others wait here while rank 0 measures alone
    model, opt = fresh()
    model, opt = dist.wrap(model, opt, fp16_compression=args.fp16_compression, accumulation=1)
    rates = measure(make_step(model, opt, dist, data, target, amp_dtype, scaler, True), p, device)
    mine = statistics.mean(rates)
    per_worker = dist.gather(mine)
    mean = statistics.mean(per_worker)
    conf = 1.96 * statistics.stdev(rates) if len(rates) > 1 else 0.0
    if baseline is None and dist.size == 1:
        baseline = mine
    result = {
        "model": manifest["name"], "params": p, "workers": dist.size, "distribution": dist.kind, "device": str(device),
        "options": {"mixed_precision": args.mixed_precision, "amp_dtype": str(amp_dtype),
                    "fp16_compression": args.fp16_compression},
        "img_per_sec_per_worker": mean, "img_per_sec_per_worker_conf": conf, "img_per_sec_total": sum(per_worker),
        "per_worker": per_worker, "baseline_img_per_sec": baseline,
        "scaling_efficiency": (mean / baseline) if baseline else None,
    }
    if dist.is_main:
        print(f"img/sec per worker: {mean:.1f} +-{conf:.1f}", flush=True)
        print(f"total img/sec on {dist.size} worker(s): {sum(per_worker):.1f} +-{conf * dist.size:.1f}", flush=True)
        if result["scaling_efficiency"] is not None:
            print(f"scaling efficiency: {result['scaling_efficiency']:.3f}", flush=True)
        _report(step=p["num_iters"], throughput=sum(per_worker), throughput_per_worker=mean,
                **({"scaling_efficiency": result["scaling_efficiency"]} if result["scaling_efficiency"] else {}))
        out = artifacts_dir(args)
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.json").write_text(json.dumps(result, indent=1) + "\n")
    dist.close()
    return result


if __name__ == "__main__":
    main()
    exit_done()

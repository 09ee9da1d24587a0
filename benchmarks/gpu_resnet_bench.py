"""Single-GPU images/s of the built-in ResNet: our training step against a plain PyTorch loop.

    python benchmarks/gpu_resnet_bench.py --steps 50 --batch 64 [--arch resnet18] [--image-size 224] [--amp]

Self-contained: needs only torch and services/jobqueue/flightbase_jobqueue/builtin_models/ (put on sys.path here). "ours" is the
step of services/jobqueue/flightbase_jobqueue/builtin_models/_common/trainer.py as the image-classification script runs it
(single process: autocast when --amp, loss on float logits, optimizer.step, zero_grad,
per-step loss read back to the host for the metrics); "plain" is the same model and
optimizer in the textbook loop (no per-step host read). Without CUDA it runs on the CPU
and says so in "note". Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "services/jobqueue/flightbase_jobqueue/builtin_models"))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from _common.resnet import ResNet  # noqa: E402
from _common.trainer import amp_settings  # noqa: E402


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def run(kind: str, args, device) -> float:
    torch.manual_seed(0)
    model = ResNet(args.arch, 1000, 3, 64, args.image_size).to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(args.batch, 3, args.image_size, args.image_size, device=device)
    y = torch.randint(0, 1000, (args.batch,), device=device)
    amp_dtype, scaler = amp_settings(device, args.amp)

    def backward_and_step(loss):
        # the same in both loops (with --amp, through the gradient scaler): what differs is around it
        (scaler.scale(loss) if scaler else loss).backward()
        if scaler:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()

    def ours():
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            loss = F.cross_entropy(model(x).float(), y)
        backward_and_step(loss)
        opt.zero_grad()
        return float(loss.detach())  # what the trainer does for its metrics

    def plain():
        opt.zero_grad()
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            loss = F.cross_entropy(model(x), y)
        backward_and_step(loss)

    step = ours if kind == "ours" else plain
    for _ in range(args.warmup):
        step()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync(device)
    return args.batch * args.steps / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--arch", default="resnet18")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--amp", action="store_true", help="mixed precision (bf16, or fp16 + GradScaler)")
    args = p.parse_args()
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    if cuda:
        torch.backends.cudnn.benchmark = True
    result = {"device": torch.cuda.get_device_name(0) if cuda else "cpu", "torch": torch.__version__,
              "arch": args.arch, "image_size": args.image_size, "batch": args.batch, "steps": args.steps, "amp": args.amp}
    if not cuda:
        result["note"] = "no CUDA device: measured on the CPU; these figures say nothing about GPU speed"
    # alternate the two so clock and thermal drift hit both alike
    rates = {"ours": [], "plain": []}
    for _ in range(2):
        for kind in ("plain", "ours"):
            rates[kind].append(run(kind, args, device))
    result["plain_img_per_sec"] = max(rates["plain"])
    result["ours_img_per_sec"] = max(rates["ours"])
    result["ours_over_plain"] = result["ours_img_per_sec"] / result["plain_img_per_sec"]
    if cuda:
        result["max_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

"""A tiny training: prints who it is, reports a metric per step, exits with --code."""
import argparse
import json
import os
import time

from flightbase.metrics import report

p = argparse.ArgumentParser()
p.add_argument("--code", type=int, default=0)
p.add_argument("--lr", type=float, default=1.0)
p.add_argument("--batch", type=int, default=1)
p.add_argument("--sleep", type=float, default=0.0, help="seconds to wait before exiting")
args = p.parse_args()
print("env", json.dumps({k: os.environ.get(k) for k in (
    "CUDA_VISIBLE_DEVICES", "FLIGHTBASE_CPU_SLOTS", "FLIGHTBASE_GPU_KIND", "FLIGHTBASE_PARAM_LR", "USER")}), flush=True)
print("whoami", os.getuid(), flush=True)
for step in range(3):
    report(step=step, loss=args.lr * args.batch / (step + 1))
print(f"loss={args.lr * args.batch / 3:.4f} step=3", flush=True)
time.sleep(args.sleep)
raise SystemExit(args.code)

"""Command-line arguments of a built-in model's script, built from its manifest.

The platform (``flightbase_jobqueue.builtin.launch_fields``) turns a validated
request into exactly these arguments: ``--data``, one ``--<param> VALUE`` per
parameter and the GPU options. Running a script by hand takes the same ones.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

_TYPES = {"integer": int, "number": float, "string": str}


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean (true/false)")


def load_manifest(model_dir: Path) -> dict:
    return json.loads((Path(model_dir) / "manifest.json").read_text())


def parse_args(model_dir: Path, argv=None) -> tuple[dict, argparse.Namespace]:
    """(manifest, arguments): parameters keep their manifest names (``args.params[name]``)."""
    manifest = load_manifest(model_dir)
    p = argparse.ArgumentParser(prog=manifest["name"], description=manifest["description"])
    if manifest.get("dataset"):
        p.add_argument("--data", required=True, help="the dataset's folder (" + manifest["dataset"]["layout"] + ")")
    for name, spec in manifest["parameters"].items():
        kind = _bool if spec["type"] == "boolean" else _TYPES[spec["type"]]
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind, default=spec["default"],
                       choices=spec.get("enum"), help=spec["help"])
    p.add_argument("--mixed-precision", action="store_true", help="autocast: bf16 on CPU, fp16/bf16 on GPU")
    p.add_argument("--grad-accumulation", type=int, default=1, help="micro-batches per optimizer step")
    p.add_argument("--fp16-compression", action="store_true", help="allreduce gradients in fp16")
    p.add_argument("--checkpoint-dir", default=None, help="default: $FLIGHTBASE_CHECKPOINT_DIR or ./checkpoints")
    p.add_argument("--artifacts-dir", default=None, help="default: $FLIGHTBASE_ARTIFACTS_DIR or ./artifacts")
    args = p.parse_args(argv)
    args.params = {name: getattr(args, name) for name in manifest["parameters"]}
    if args.grad_accumulation < 1:
        p.error("--grad-accumulation must be at least 1")
    return manifest, args

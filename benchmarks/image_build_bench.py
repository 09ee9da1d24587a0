"""Images: how long ``scripts/containers.sh`` takes to make the base and both built-in images, cold and cached.

Two runs of ``scripts/containers.sh all`` (what ``make run`` / ``make test`` do
as root), each timed from the outside, with the script's own per-step times
("made ... in Ns", "built ... in Ns") read from its output:

1. the first run: with ``--cold``, what a fresh machine does. The Debian base,
   both images, their build stages and the collected wheels, the wheels built
   here and the assembled contexts are removed first. What stays: Horovod's
   wheel (``scripts/install-ml.sh`` builds it, 10-15 minutes, docs/horovod.md),
   and the engine itself (its install and start are not timed); with
   ``--no-pip-cache`` pip's HTTP cache is not used either, so every wheel but
   torch's (on local disk) comes from PyPI, as on a fresh machine;
2. the second run, right after: nothing changed, so it must build nothing
   (the digest check of every run).

Root and a Docker engine are needed (``scripts/containers.sh engine`` starts one).

    .venv/bin/python benchmarks/image_build_bench.py --cold --no-pip-cache [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import platform as host
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "containers.sh"
ENV = dict(os.environ)
REFS = ("flightbase/notebook:0.1.0", "flightbase/training-base:0.1.0", "flightbase/debian:bookworm")


def docker(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True)


def cache_dir() -> Path:
    return Path(os.environ.get("FLIGHTBASE_CACHE") or Path.home() / ".cache" / "flightbase") / "images"


def make_cold() -> None:
    """Remove what a fresh machine does not have (the images, their build stages, the collected wheels)."""
    for ref in REFS:
        docker("rmi", "-f", ref)
    stages = docker("images", "-q", "--no-trunc", "--filter", "label=ai.flightbase.build-stage").stdout.split()
    if stages:
        docker("rmi", "-f", *stages)
    shutil.rmtree(cache_dir(), ignore_errors=True)
    left = [ref for ref in REFS if docker("image", "inspect", ref).returncode == 0]
    if left:
        sys.exit(f"could not remove {left} (a container still uses them?)")


def timed_run(label: str) -> dict:
    print(f"--- {label}: scripts/containers.sh all", flush=True)
    began = time.perf_counter()
    proc = subprocess.run([str(SCRIPT), "all"], cwd=ROOT, capture_output=True, text=True, env=ENV)
    seconds = time.perf_counter() - began
    sys.stdout.write(proc.stdout)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        sys.exit(f"{label}: scripts/containers.sh exited {proc.returncode}")
    steps = {m.group(1): int(m.group(2)) for m in re.finditer(r"(?:made|built) (\S+) in (\d+)s", proc.stdout)}
    return {"seconds": round(seconds, 1), "steps": steps, "built_anything": "building " in proc.stdout
            or "making " in proc.stdout}


def size_mb(ref: str) -> float:
    return round(int(docker("image", "inspect", "-f", "{{.Size}}", ref).stdout.strip() or 0) / 1e6, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", action="store_true", help="remove the images and collected wheels first")
    parser.add_argument("--no-pip-cache", action="store_true", help="pip downloads every wheel again (PIP_NO_CACHE_DIR)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: scripts/containers.sh builds images as root only")
    if args.no_pip_cache:
        ENV["PIP_NO_CACHE_DIR"] = "1"
    subprocess.run([str(SCRIPT), "engine"], check=True)
    if args.cold:
        make_cold()
    first = timed_run("first run" + (" (cold)" if args.cold else ""))
    second = timed_run("second run (cached)")
    if second["built_anything"]:
        sys.exit("the second run built something: the content-hash cache does not hold")
    figures = {
        "command": " ".join(["benchmarks/image_build_bench.py"] + (["--cold"] if args.cold else [])
                            + (["--no-pip-cache"] if args.no_pip_cache else [])),
        "machine": f"{os.cpu_count()} cores, {host.platform()}, docker {docker('version', '-f', '{{.Server.Version}}').stdout.strip()}",
        "first": first, "cached": second,
        "sizes_mb": {ref: size_mb(ref) for ref in REFS},
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()

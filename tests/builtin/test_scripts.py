"""The training scripts run by hand (no platform): resume from a checkpoint, dataset errors, readers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from flightbase_jobqueue.builtin import DEFAULT_ROOT

import numpy as np
import pytest

MODELS = DEFAULT_ROOT  # flightbase_jobqueue/builtin_models, the package data


def script(model: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLIGHTBASE_", "HOROVOD_", "OMPI_"))}
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run([sys.executable, str(MODELS / model / "train.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_resume_continues_from_the_saved_step(datasets, tmp_path):
    common = ["--data", str(datasets["tabular"]), "--ignore-columns", "label", "--batch-size", "16",
              "--checkpoint-dir", str(tmp_path / "ckpt"), "--artifacts-dir", str(tmp_path / "out")]
    first = script("tabular", *common, "--epochs", "2", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    done = json.loads((tmp_path / "out" / "report.json").read_text())
    assert done["resumed_from"] is None and done["steps"] == 20 and len(done["history"]) == 2
    assert sorted(p.name for p in (tmp_path / "ckpt").glob("checkpoint-*")) == ["checkpoint-epoch00001.pt",
                                                                                 "checkpoint-epoch00002.pt"]
    # the job is restarted (as after a preemption) with more epochs to go
    second = script("tabular", *common, "--epochs", "4", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "resumed from checkpoint-epoch00002.pt: epoch 2, step 20" in second.stdout
    again = json.loads((tmp_path / "out" / "report.json").read_text())
    assert again["resumed_from"] == {"epoch": 2, "step": 20, "checkpoint": "checkpoint-epoch00002.pt"}
    assert again["steps"] == 40 and [h["epoch"] for h in again["history"]] == [1, 2, 3, 4]
    assert again["history"][:2] == done["history"]  # the first two epochs were not run again
    steps = [int(line.split("step=")[1].split()[0]) for line in second.stdout.splitlines() if "step=" in line]
    assert min(steps) > 20
    assert again["history"][-1]["loss"] < done["history"][0]["loss"]
    # a run that has nothing left to do ends at once with the same model
    third = script("tabular", *common, "--epochs", "4", cwd=tmp_path)
    assert third.returncode == 0 and json.loads((tmp_path / "out" / "report.json").read_text())["steps"] == 40


def files(root: Path, tree: dict) -> None:
    """Write ``tree`` (path -> text or bytes; a path ending in / is an empty folder) under ``root``."""
    for rel, content in tree.items():
        path = root / rel
        if rel.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())


@pytest.mark.parametrize(("model", "tree", "message"), [
    ("image_classification", {"cats/a.txt": "x", "dogs/": None},
     "{d}/cats/a.txt: is not an image file; expected <class>/<image>"),
    ("image_classification", {"cats/": None}, "{d}: has 1 class folder(s) (cats); expected <class>/<image>"),
    ("image_classification", {"cats/x.png": b"no", "dogs/y.npy": b"no"}, "{d}/cats/x.png: cannot be read (not a PNG file)"),
    ("image_classification", {"cats/": None, "dogs/a.npy": b""}, "{d}/cats: is an empty class folder"),
    ("text_classification", {"data.csv": "sentence,label\nhello,a\n"},
     "{d}/data.csv: has no column text (its header is ['sentence', 'label']); "
     "expected a CSV file with a header and the columns text,label"),
    ("text_classification", {"notes.txt": "x"}, "{d}: has no .csv file (found: notes.txt); expected a CSV file"),
    ("tabular", {"data.csv": "x,target\n"}, "{d}/data.csv: has a header but no rows"),
    ("tabular", {"data.csv": "a,b,target\n1,2\n"}, "{d}/data.csv, line 2: has 2 fields, the header has 3"),
    ("tabular", {"data.csv": "a,b\n1,2\n"}, "{d}/data.csv: has no column target (its header is ['a', 'b'])"),
])
def test_a_mismatched_dataset_exits_2_naming_the_file(model, tree, message, tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    files(d, tree)
    run = script(model, "--data", str(d), "--val-fraction", "0", cwd=tmp_path)
    assert run.returncode == 2, run.stderr
    assert f"dataset error: {message.format(d=d)}" in run.stderr
    assert "Traceback" not in run.stderr


def common_data():
    """The built-in models' ``_common.data`` module, imported from their folder."""
    sys.path.insert(0, str(MODELS))
    try:
        from _common import data
    finally:
        sys.path.remove(str(MODELS))
    return data


def test_image_readers_agree(tmp_path):
    data = common_data()
    read_image, write_png, write_ppm = data.read_image, data.write_png, data.write_ppm
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    write_png(tmp_path / "a.png", rgb)
    write_ppm(tmp_path / "a.ppm", rgb)
    np.save(tmp_path / "a.npy", rgb)
    for name in ("a.png", "a.ppm", "a.npy"):
        assert np.array_equal(read_image(tmp_path / name), rgb), name
    grey = rgb[:, :, 0]
    write_png(tmp_path / "g.png", grey)
    assert read_image(tmp_path / "g.png").shape == (5, 7, 1)


def test_png_with_every_filter(tmp_path):
    """A PNG written with filters 1-4 (as other encoders do) decodes to the same pixels."""
    import struct
    import zlib

    read_image = common_data().read_image
    img = np.random.default_rng(1).integers(0, 256, (5, 4, 3), dtype=np.int32)
    flat = img.reshape(5, 12)
    rows, prev = [], np.zeros(12, dtype=np.int32)
    for y, f in enumerate([1, 2, 3, 4, 0]):
        cur = flat[y]
        left = np.concatenate([np.zeros(3, dtype=np.int32), cur[:-3]])
        upleft = np.concatenate([np.zeros(3, dtype=np.int32), prev[:-3]])
        if f == 0:
            pred = np.zeros(12, dtype=np.int32)
        elif f == 1:
            pred = left
        elif f == 2:
            pred = prev
        elif f == 3:
            pred = (left + prev) // 2
        else:
            p = left + prev - upleft
            pa, pb, pc = abs(p - left), abs(p - prev), abs(p - upleft)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prev, upleft))
        rows.append(bytes([f]) + ((cur - pred) & 255).astype(np.uint8).tobytes())
        prev = cur

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    (tmp_path / "f.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 5, 8, 2, 0, 0, 0))
                                     + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b""))
    assert np.array_equal(read_image(tmp_path / "f.png"), img.astype(np.uint8))

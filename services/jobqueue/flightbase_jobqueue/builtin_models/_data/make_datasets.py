"""Small generated datasets with learnable structure, for the tests and the quick start.

Nothing is downloaded::

    python services/jobqueue/flightbase_jobqueue/builtin_models/_data/make_datasets.py OUT_DIR [--size small|tiny]

writes ``OUT_DIR/images`` (``stripes/``, ``blobs/``, ``checks/``: 16x16 RGB PNG,
PPM and .npy images with noise), ``OUT_DIR/text/data.csv`` (``text,label``:
sentences from templates, label = sentiment) and ``OUT_DIR/tabular/data.csv``
(numeric and categorical features; ``target`` = a formula plus noise, and
``label`` = whether target > 0).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common.data import write_png, write_ppm  # noqa: E402

SIZES = {"tiny": (24, 120, 200), "small": (80, 600, 1000)}  # images per class, text rows, tabular rows


def images(out: Path, per_class: int, rng: np.random.Generator, size: int = 16) -> None:
    yy, xx = np.mgrid[0:size, 0:size]
    for kind in ("stripes", "blobs", "checks"):
        (out / kind).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            if kind == "stripes":
                period = rng.integers(3, 6)
                img = ((xx + rng.integers(0, period)) % period < period / 2).astype(float)
                if rng.random() < 0.5:
                    img = img.T
            elif kind == "blobs":
                cy, cx, r = rng.uniform(4, size - 4), rng.uniform(4, size - 4), rng.uniform(2, 5)
                img = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
            else:
                cell = rng.integers(2, 5)
                img = (((yy // cell) + (xx // cell)) % 2).astype(float)
            colour = rng.uniform(0.3, 1.0, size=3)
            rgb = np.clip(img[:, :, None] * colour + rng.normal(0, 0.1, (size, size, 3)), 0, 1)
            name = out / kind / f"{i:04d}"
            if i % 3 == 0:
                write_png(name.with_suffix(".png"), (rgb * 255).astype(np.uint8))
            elif i % 3 == 1:
                write_ppm(name.with_suffix(".ppm"), (rgb * 255).astype(np.uint8))
            else:
                np.save(name.with_suffix(".npy"), (rgb * 255).astype(np.uint8))


POSITIVE = ["great", "wonderful", "excellent", "lovely", "fantastic", "good", "superb", "delightful"]
NEGATIVE = ["terrible", "awful", "bad", "boring", "horrible", "poor", "dreadful", "disappointing"]
THINGS = ["film", "meal", "book", "service", "hotel", "concert", "game", "trip"]
TEMPLATES = ["the {thing} was {word}", "what a {word} {thing}", "i found the {thing} {word} overall",
             "honestly a {word} {thing} from start to end", "{word} , simply {word} {thing}",
             "my friends said the {thing} was {word} and i agree"]


def text(out: Path, rows: int, rng: np.random.Generator) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "data.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for _ in range(rows):
            label = rng.random() < 0.5
            words = POSITIVE if label else NEGATIVE
            t = TEMPLATES[rng.integers(len(TEMPLATES))]
            w.writerow([t.format(thing=THINGS[rng.integers(len(THINGS))], word=words[rng.integers(len(words))]),
                        "positive" if label else "negative"])


def tabular(out: Path, rows: int, rng: np.random.Generator) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "data.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["x1", "x2", "x3", "colour", "target", "label"])
        for _ in range(rows):
            x1, x2, x3 = rng.normal(size=3)
            colour = ["red", "green", "blue"][rng.integers(3)]
            target = 2 * x1 - x2 ** 2 + 0.5 * x1 * x3 + {"red": 1.0, "green": 0.0, "blue": -1.0}[colour] + rng.normal(0, 0.1)
            w.writerow([f"{x1:.4f}", f"{x2:.4f}", f"{x3:.4f}", colour, f"{target:.4f}", int(target > 0)])


def make_all(out: Path, size: str = "small", seed: int = 0) -> dict[str, Path]:
    per_class, text_rows, tab_rows = SIZES[size]
    rng = np.random.default_rng(seed)
    out = Path(out)
    images(out / "images", per_class, rng)
    text(out / "text", text_rows, rng)
    tabular(out / "tabular", tab_rows, rng)
    return {"images": out / "images", "text": out / "text", "tabular": out / "tabular"}


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--size", choices=sorted(SIZES), default="small")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    for name, path in make_all(a.out, a.size, a.seed).items():
        print(f"{name}: {path}")

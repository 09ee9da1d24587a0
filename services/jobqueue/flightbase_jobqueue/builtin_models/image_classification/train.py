"""Image classification: a ResNet trained on ``<class>/<image>`` folders (see manifest.json).

Runs under horovodrun, torchrun or alone; ``python train.py --help`` lists the options.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from _common.data import IMAGE_SUFFIXES, DatasetError, data_root, read_image  # noqa: E402
from _common.dist import exit_done  # noqa: E402
from _common.resnet import ResNet  # noqa: E402
from _common.trainer import Data, run, split  # noqa: E402

EXPECTED = "<class>/<image> (one folder per class with .png, .ppm, .pgm or .npy images)"


def load(args) -> Data:
    root = data_root(args.data, EXPECTED)
    size = args.params["image_size"]
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    strays = sorted(p.name for p in root.iterdir() if p.is_file() and not p.name.startswith("."))
    if strays:
        raise DatasetError(root / strays[0], "is a file at the top of the dataset", EXPECTED)
    if len(classes) < 2:
        raise DatasetError(root, f"has {len(classes)} class folder(s) ({', '.join(classes) or 'none'})",
                           f"{EXPECTED}, at least 2 classes")
    images, labels, channels = [], [], None
    for label, name in enumerate(classes):
        files = sorted(p for p in (root / name).iterdir() if not p.name.startswith("."))
        if not files:
            raise DatasetError(root / name, "is an empty class folder", EXPECTED)
        for f in files:
            if f.is_dir() or f.suffix.lower() not in IMAGE_SUFFIXES:
                raise DatasetError(f, "is not an image file" if not f.is_dir() else "is a folder inside a class folder",
                                   EXPECTED)
            try:
                a = read_image(f)
            except (ValueError, OSError, IndexError) as exc:
                raise DatasetError(f, f"cannot be read ({exc})", EXPECTED) from None
            c = min(a.shape[2], 3)  # alpha is dropped
            a = a[:, :, :c]
            if channels is None:
                channels = c
            elif c != channels:
                raise DatasetError(f, f"has {c} channel(s), the first image had {channels}",
                                   "images of one kind (all grey or all colour)")
            t = torch.from_numpy(np.array(a)).permute(2, 0, 1).float()
            if a.dtype == np.uint8:
                t = t / 255.0
            if t.shape[1:] != (size, size):
                t = F.interpolate(t[None], size=(size, size), mode="bilinear", align_corners=False)[0]
            images.append(t)
            labels.append(label)
    x, y = torch.stack(images), torch.tensor(labels)
    mean, std = x.mean(dim=(0, 2, 3), keepdim=True), x.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    x = (x - mean) / std
    tr, va = split(len(y), args.params["val_fraction"], args.params["seed"])
    meta = {"classes": classes, "channels": channels, "image_size": size,
            "normalise": {"mean": mean.flatten().tolist(), "std": std.flatten().tolist()}}
    return Data(x[tr], y[tr], x[va], y[va], "classification", meta)


def build(meta: dict, params: dict) -> torch.nn.Module:
    return ResNet(params["arch"], len(meta["classes"]), meta["channels"], params["width"], meta["image_size"])


if __name__ == "__main__":
    run(HERE, load, build)
    exit_done()

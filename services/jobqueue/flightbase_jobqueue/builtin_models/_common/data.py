"""Dataset readers and the one error a script gives for a dataset that does not fit.

:class:`DatasetError` names the file and what was expected; :func:`fail` prints
it and exits with status 2 (before any distributed set-up, so every rank stops
the same way). Images are read without torchvision: PNG (8-bit grey, grey+alpha,
RGB, RGBA; not interlaced), binary PPM/PGM (P6/P5, 8-bit) and NumPy ``.npy``
arrays (HxW or HxWxC).
"""

from __future__ import annotations

import csv
import struct
import sys
import zlib
from pathlib import Path

import numpy as np

EXIT_DATASET = 2
IMAGE_SUFFIXES = (".png", ".ppm", ".pgm", ".npy")


class DatasetError(Exception):
    def __init__(self, path, problem: str, expected: str):
        super().__init__(f"{path}: {problem}; expected {expected}")
        self.path, self.problem, self.expected = str(path), problem, expected


def fail(exc: DatasetError) -> None:
    sys.stderr.write(f"dataset error: {exc}\n")
    sys.stderr.flush()
    sys.exit(EXIT_DATASET)


def data_root(path: str, expected: str) -> Path:
    root = Path(path)
    if not root.is_dir():
        raise DatasetError(root, "is not a folder", expected)
    return root


def find_csv(root: Path, expected: str) -> Path:
    """The dataset's CSV file: the only ``*.csv`` of its top folder (or ``data.csv``/``train.csv``)."""
    for name in ("data.csv", "train.csv"):
        if (root / name).is_file():
            return root / name
    found = sorted(root.glob("*.csv"))
    if len(found) == 1:
        return found[0]
    if not found:
        names = ", ".join(sorted(p.name for p in root.iterdir())[:10]) or "nothing"
        raise DatasetError(root, f"has no .csv file (found: {names})", expected)
    raise DatasetError(root, f"has {len(found)} .csv files and none is named data.csv", expected)


def read_csv(path: Path, required: list[str], expected: str) -> tuple[list[str], list[dict]]:
    """(header, rows) of a CSV file with a header line that has the ``required`` columns."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header = list(reader.fieldnames or [])
            missing = [c for c in required if c not in header]
            if missing:
                raise DatasetError(path, f"has no column {', '.join(missing)} (its header is {header})", expected)
            rows = []
            for line, row in enumerate(reader, start=2):
                if None in row or any(v is None for v in row.values()):
                    raise DatasetError(f"{path}, line {line}", f"has {len(row) - 1 + len(row.get(None) or [])} fields, "
                                       f"the header has {len(header)}", expected)
                rows.append(row)
    except UnicodeDecodeError as exc:
        raise DatasetError(path, f"is not UTF-8 text ({exc.reason})", expected) from None
    except csv.Error as exc:
        raise DatasetError(path, f"is not valid CSV ({exc})", expected) from None
    if not rows:
        raise DatasetError(path, "has a header but no rows", expected)
    return header, rows


# -- images -------------------------------------------------------------------------
def read_image(path: Path) -> np.ndarray:
    """HxWxC uint8 (or float for .npy) array; ValueError with the reason if unreadable."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        a = np.load(path, allow_pickle=False)
        if a.ndim == 2:
            a = a[:, :, None]
        if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
            raise ValueError(f"array of shape {a.shape} is not HxW or HxWxC with C in 1, 3, 4")
        return a
    data = path.read_bytes()
    if suffix in (".ppm", ".pgm"):
        return _read_pnm(data)
    if suffix == ".png":
        return _read_png(data)
    raise ValueError(f"unsupported image type {suffix!r}")


def _read_pnm(data: bytes) -> np.ndarray:
    fields, pos = [], 0
    while len(fields) < 4:
        while pos < len(data) and data[pos:pos + 1].isspace():
            pos += 1
        if data[pos:pos + 1] == b"#":
            pos = data.index(b"\n", pos)
            continue
        start = pos
        while pos < len(data) and not data[pos:pos + 1].isspace():
            pos += 1
        fields.append(data[start:pos])
    magic, width, height, maxval = fields[0], int(fields[1]), int(fields[2]), int(fields[3])
    if magic not in (b"P5", b"P6") or maxval > 255:
        raise ValueError("not a binary 8-bit PPM/PGM (P6/P5, maxval <= 255)")
    channels = 3 if magic == b"P6" else 1
    pixels = np.frombuffer(data, dtype=np.uint8, count=width * height * channels, offset=pos + 1)
    return pixels.reshape(height, width, channels)


def _read_png(data: bytes) -> np.ndarray:
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG file")
    pos, idat, header = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if header is None:
        raise ValueError("PNG without IHDR")
    width, height, depth, color, _, _, interlace = header
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(color)
    if depth != 8 or channels is None or interlace:
        raise ValueError(f"PNG kind not supported (bit depth {depth}, colour type {color}, interlace {interlace}); "
                         "use 8-bit grey/RGB/RGBA, not interlaced")
    raw = zlib.decompress(b"".join(idat))
    stride = width * channels
    out = np.zeros((height, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.int32)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = np.frombuffer(raw, dtype=np.uint8, count=stride, offset=y * (stride + 1) + 1).astype(np.int32)
        if f == 0:
            cur = line
        elif f == 2:
            cur = (line + prev) & 255
        elif f in (1, 3, 4):  # these depend on the pixel to the left: one pass along the line
            cur = np.zeros(stride, dtype=np.int32)
            for x in range(stride):
                a = cur[x - channels] if x >= channels else 0
                b = prev[x]
                if f == 1:
                    pred = a
                elif f == 3:
                    pred = (a + b) // 2
                else:
                    c = prev[x - channels] if x >= channels else 0
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                cur[x] = (line[x] + pred) & 255
        else:
            raise ValueError(f"bad PNG filter {f} on row {y}")
        out[y] = cur
        prev = cur
    return out.reshape(height, width, channels)


def write_png(path: Path, image: np.ndarray) -> None:
    """Write an 8-bit grey or RGB image (used by the dataset generator and the tests)."""
    image = np.asarray(image, dtype=np.uint8)
    if image.ndim == 2:
        image = image[:, :, None]
    height, width, channels = image.shape
    color = {1: 0, 3: 2, 4: 6}[channels]
    raw = b"".join(b"\x00" + image[y].tobytes() for y in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, color, 0, 0, 0))
                           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def write_ppm(path: Path, image: np.ndarray) -> None:
    image = np.asarray(image, dtype=np.uint8)
    magic = b"P6" if image.ndim == 3 and image.shape[2] == 3 else b"P5"
    Path(path).write_bytes(magic + f"\n{image.shape[1]} {image.shape[0]}\n255\n".encode() + image.tobytes())

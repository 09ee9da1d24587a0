"""Tabular classification or regression: an MLP over a CSV file's columns (see manifest.json)."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from _common.data import DatasetError, data_root, find_csv, read_csv  # noqa: E402
from _common.dist import exit_done  # noqa: E402
from _common.trainer import Data, run, split  # noqa: E402


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def load(args) -> Data:
    p = args.params
    target = p["target"]
    expected = f"a CSV file with a header line and a target column {target!r}"
    path = find_csv(data_root(args.data, expected), expected)
    header, rows = read_csv(path, [target], expected)
    ignored = {c.strip() for c in p["ignore_columns"].split(",") if c.strip()}
    unknown = sorted(ignored - set(header))
    if unknown:
        raise DatasetError(path, f"has no column {', '.join(unknown)} (named in ignore_columns)", expected)
    features = [c for c in header if c != target and c not in ignored]
    if not features:
        raise DatasetError(path, "has no feature column besides the target", expected)
    tr, va = split(len(rows), p["val_fraction"], p["seed"])
    train_rows = [rows[i] for i in tr.tolist()]
    encoders = []  # (column, "numeric", (mean, std)) or (column, "onehot", categories)
    for col in features:
        values = [_number(r[col]) for r in train_rows]
        if all(v is not None for v in values):
            t = torch.tensor(values, dtype=torch.float64)
            encoders.append((col, "numeric", (float(t.mean()), float(t.std()) or 1.0)))
        else:
            encoders.append((col, "onehot", sorted({r[col] for r in train_rows})))
    columns = []
    for col, kind, spec in encoders:
        if kind == "numeric":
            vals = []
            for line, r in enumerate(rows, start=2):
                v = _number(r[col])
                if v is None:
                    raise DatasetError(f"{path}, line {line}", f"column {col} has {r[col]!r}, not a number", expected)
                vals.append((v - spec[0]) / spec[1])
            columns.append(torch.tensor(vals, dtype=torch.float32)[:, None])
        else:
            columns.append(torch.tensor([[float(r[col] == c) for c in spec] for r in rows]))
    x = torch.cat(columns, dim=1)
    raw = [r[target].strip() for r in rows]
    numeric = [_number(v) for v in raw]
    objective = p["objective"]
    if objective == "auto":
        objective = "regression" if all(v is not None for v in numeric) and len(set(raw)) > 20 else "classification"
    meta = {"features": features, "encoders": encoders, "objective": objective, "inputs": x.shape[1]}
    if objective == "regression":
        for line, v in enumerate(numeric, start=2):
            if v is None:
                raise DatasetError(f"{path}, line {line}", f"target {target} is {raw[line - 2]!r}, not a number",
                                   "a numeric target for regression")
        y = torch.tensor(numeric, dtype=torch.float32)
        mean, std = float(y[tr].mean()), float(y[tr].std()) or 1.0
        y = (y - mean) / std
        meta.update(target_mean_std=(mean, std), outputs=1)
        return Data(x[tr], y[tr], x[va], y[va], "regression", meta)
    classes = sorted(set(raw))
    if len(classes) < 2:
        raise DatasetError(path, f"target {target} has {len(classes)} distinct value(s)", "at least 2 classes")
    y = torch.tensor([classes.index(v) for v in raw])
    meta.update(classes=classes, outputs=len(classes))
    return Data(x[tr], y[tr], x[va], y[va], "classification", meta)


class MLP(nn.Module):
    def __init__(self, inputs: int, outputs: int, hidden: int, layers: int, dropout: float, regression: bool):
        super().__init__()
        parts, width = [], inputs
        for _ in range(layers):
            parts += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden
        parts.append(nn.Linear(width, outputs))
        self.net = nn.Sequential(*parts)
        self.regression = regression

    def forward(self, x):
        out = self.net(x)
        return out.squeeze(-1) if self.regression else out


def build(meta: dict, params: dict) -> nn.Module:
    return MLP(meta["inputs"], meta["outputs"], params["hidden"], params["layers"], params["dropout"],
               meta["objective"] == "regression")


if __name__ == "__main__":
    run(HERE, load, build)
    exit_done()

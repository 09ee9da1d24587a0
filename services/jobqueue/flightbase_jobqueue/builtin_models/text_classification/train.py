"""Text classification: a small transformer encoder over a CSV of text and labels (see manifest.json)."""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from _common.data import DatasetError, data_root, find_csv, read_csv  # noqa: E402
from _common.dist import exit_done  # noqa: E402
from _common.trainer import Data, run, split  # noqa: E402

WORD = re.compile(r"[\w']+|[^\w\s]")
PAD, UNK = 0, 1


def tokens(text: str) -> list[str]:
    return WORD.findall(text.lower())


def load(args) -> Data:
    p = args.params
    text_col, label_col = p["text_column"], p["label_column"]
    expected = f"a CSV file with a header and the columns {text_col},{label_col}"
    path = find_csv(data_root(args.data, expected), expected)
    _, rows = read_csv(path, [text_col, label_col], expected)
    for line, row in enumerate(rows, start=2):
        if not row[label_col].strip():
            raise DatasetError(f"{path}, line {line}", f"has an empty {label_col}", expected)
    classes = sorted({r[label_col].strip() for r in rows})
    if len(classes) < 2:
        raise DatasetError(path, f"has {len(classes)} distinct label(s) in column {label_col}", "at least 2 labels")
    tr, va = split(len(rows), p["val_fraction"], p["seed"])
    counts = Counter(w for i in tr.tolist() for w in tokens(rows[i][text_col]))
    vocab = ["<pad>", "<unk>"] + [w for w, _ in counts.most_common(p["vocab_size"] - 2)]
    index = {w: i for i, w in enumerate(vocab)}
    x = torch.full((len(rows), p["max_length"]), PAD, dtype=torch.long)
    for i, row in enumerate(rows):
        ids = [index.get(w, UNK) for w in tokens(row[text_col])][:p["max_length"]] or [UNK]
        x[i, :len(ids)] = torch.tensor(ids)
    y = torch.tensor([classes.index(r[label_col].strip()) for r in rows])
    meta = {"classes": classes, "vocab": vocab, "max_length": p["max_length"], "tokenizer": WORD.pattern}
    return Data(x[tr], y[tr], x[va], y[va], "classification", meta)


class TextTransformer(nn.Module):
    def __init__(self, vocab: int, classes: int, max_length: int, d_model: int, heads: int, layers: int, dropout: float):
        super().__init__()
        self.embed = nn.Embedding(vocab, d_model, padding_idx=PAD)
        self.position = nn.Parameter(torch.zeros(1, max_length, d_model))
        nn.init.normal_(self.position, std=0.02)
        layer = nn.TransformerEncoderLayer(d_model, heads, 4 * d_model, dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, classes)

    def forward(self, ids):
        pad = ids == PAD
        h = self.encoder(self.embed(ids) + self.position[:, :ids.shape[1]], src_key_padding_mask=pad)
        keep = (~pad).unsqueeze(-1).to(h.dtype)
        return self.head((h * keep).sum(1) / keep.sum(1).clamp_min(1))  # mean over the real tokens


def build(meta: dict, params: dict) -> nn.Module:
    if params["d_model"] % params["heads"]:
        raise SystemExit(f"d_model ({params['d_model']}) must be a multiple of heads ({params['heads']})")
    return TextTransformer(len(meta["vocab"]), len(meta["classes"]), meta["max_length"], params["d_model"],
                           params["heads"], params["layers"], params["dropout"])


if __name__ == "__main__":
    run(HERE, load, build)
    exit_done()

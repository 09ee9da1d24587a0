"""Pieces every ``flightbase`` subcommand uses: tables, KEY=VALUE arguments, the workspace flag."""

from __future__ import annotations

import os


def table(rows: list[dict], columns: list[str]) -> None:
    """Print ``rows`` as aligned columns with a header."""
    cells = [[("" if r.get(c) is None else str(r.get(c))) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)))


def key_values(pairs: list[str], field: str) -> dict[str, str]:
    """``["a=1", "b=x"]`` -> ``{"a": "1", "b": "x"}``; a malformed pair is a ValueError naming ``field``."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"{field}: expected KEY=VALUE, got {pair!r}")
        out[key] = value
    return out


def workspace_arg(parser) -> None:
    parser.add_argument("-w", "--workspace", default=os.environ.get("FLIGHTBASE_WORKSPACE"),
                        help="workspace (default: $FLIGHTBASE_WORKSPACE)")

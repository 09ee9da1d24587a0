"""What a notebook cell run by nbclient showed (tests/notebook)."""

from __future__ import annotations


def text(cell: dict, name: str | None = None) -> str:
    """Everything a cell showed: its streams (only ``name`` if given) and its displays' plain text."""
    parts = []
    for out in cell["outputs"]:
        if out["output_type"] == "stream" and (name is None or out["name"] == name):
            parts.append(out["text"])
        elif name is None and out["output_type"] in ("display_data", "execute_result"):
            parts.append(out["data"].get("text/plain", "") + "\n")
    return "".join(parts)


def errors(cell: dict) -> list[dict]:
    """The cell's error outputs (an exception raised in it)."""
    return [out for out in cell["outputs"] if out["output_type"] == "error"]

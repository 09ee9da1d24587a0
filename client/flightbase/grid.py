"""The one grammar of a sweep's parameter grid, for the CLI, the API and the JupyterLab dialog.

    lr=[0.1,0.01] batch=[32,64]
    warmup=[true,false]

Parameters are ``NAME=[v1,v2,...]``, separated by spaces or new lines; every
combination becomes a job, the last parameter varying fastest. Names are
letters, digits and ``_`` (not starting with a digit). Values are typed:
whole numbers, then decimal numbers, then ``true``/``false``, else text (one
pair of surrounding quotes removed). The CLI's ``--grid`` and the dialog's
text box send this text as ``sweep.grid``; the jobqueue parses it here, so
that all three read it alike and a mistake is answered naming its field.

A client module: it imports nothing of the services.
"""

from __future__ import annotations

import re

PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
Scalar = str | int | float | bool
SYNTAX = "NAME=[v1,v2,...]"


class SweepError(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def check_name(name: str, field: str) -> None:
    if not PARAM_NAME.match(name):
        raise SweepError(field, f"parameter name {name!r} must be letters, digits and '_' (not starting with a digit)")


def scalar(text: str) -> Scalar:
    """A value as typed text: int, then float, then true/false, else the text without its quotes."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def parse_grid(text: str) -> dict[str, list[Scalar]]:
    """``lr=[0.1,0.01] batch=[32,64]`` -> ``{"lr": [0.1, 0.01], "batch": [32, 64]}``."""
    grid: dict[str, list[Scalar]] = {}
    for match in re.finditer(r"(\S+?)=\[([^\]]*)\]|(\S+)", text.strip()):
        if match.group(3):
            raise SweepError("sweep.grid", f"expected {SYNTAX}, got {match.group(3)!r}")
        name, body = match.group(1), match.group(2)
        check_name(name, "sweep.grid")
        if name in grid:
            raise SweepError(f"sweep.grid.{name}", "is named twice")
        values = [scalar(v.strip()) for v in body.split(",") if v.strip()]
        if not values:
            raise SweepError(f"sweep.grid.{name}", "must list at least one value")
        grid[name] = values
    if not grid:
        raise SweepError("sweep.grid", f"is empty: write {SYNTAX}, one parameter a word or a line")
    return grid

"""A job's metrics as the jobqueue reads them back: its metrics file, then the
``key=value`` lines of its log, in the format the client's :mod:`flightbase.metrics`
writes and defines (``report`` and ``parse_line``)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Iterable

from flightbase.metrics import parse_line
from flightbase_server.hostfs import read_tail

# The most of a metrics file that is read back: the job writes it and may make it endless.
READ_LIMIT = 8 << 20


def read(metrics_file: Path | None, log_lines: Iterable[str] = ()) -> list[dict[str, float]]:
    """Every metric record of a job: its metrics file, then key=value lines of its log.

    The file is the job's to write, so it is read as :mod:`flightbase_server.hostfs`
    reads such files: never through a link, never a FIFO or device, and only
    its last ``READ_LIMIT`` bytes (a record cut by that limit is skipped).
    """
    records: list[dict[str, float]] = []
    if metrics_file is not None:
        for line in read_tail(metrics_file, READ_LIMIT).decode(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append({k: float(v) for k, v in record.items() if isinstance(v, (int, float))})
    for line in log_lines:
        # launchers tag lines with the rank; the tag is not part of the metric line
        parsed = parse_line(re.sub(r"^\[[^\]]*\](?:<std(?:out|err)>)?:", "", line))
        if parsed:
            records.append(parsed)
    return records


def latest(records: Iterable[dict[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for record in records:
        for key, value in record.items():
            if key != "time" and math.isfinite(value):
                out[key] = value
    return out

"""Report metrics from a training script, and read them back.

In a job::

    from flightbase.metrics import report
    report(step=10, loss=0.42, accuracy=0.91)

appends one JSON line to ``$FLIGHTBASE_METRICS_FILE`` (outside a Flightbase job
it prints the values instead). Only rank 0 should report (Horovod:
``hvd.rank() == 0``). Scripts that cannot import Flightbase may instead print
lines made only of ``key=value`` pairs with numbers, e.g. ``loss=0.42 step=10``;
those count too.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from pathlib import Path
from typing import Iterable

_PAIR = re.compile(r"([A-Za-z_][A-Za-z0-9_./-]{0,63})=(-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)")
_LINE = re.compile(rf"^\s*(?:{_PAIR.pattern}\s*)+$")


def report(step: int | None = None, **values: float) -> None:
    record = {k: float(v) for k, v in values.items()}
    if step is not None:
        record["step"] = step
    record["time"] = time.time()
    path = os.environ.get("FLIGHTBASE_METRICS_FILE")
    if not path:
        print(" ".join(f"{k}={v}" for k, v in record.items() if k != "time"), flush=True)
        return
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def parse_line(line: str) -> dict[str, float] | None:
    """The metrics on a ``key=value`` line, or None if the line is anything else."""
    if not _LINE.match(line):
        return None
    return {k: float(v) for k, v in _PAIR.findall(line)}


# The most of a metrics file that is read back: the job writes it and may make it endless.
READ_LIMIT = 8 << 20


def read(metrics_file: Path | None, log_lines: Iterable[str] = ()) -> list[dict[str, float]]:
    """Every metric record of a job: its metrics file, then key=value lines of its log.

    The file is the job's to write, so it is read as :mod:`flightbase.hostfs`
    reads such files: never through a link, never a FIFO or device, and only
    its last ``READ_LIMIT`` bytes (a record cut by that limit is skipped).
    """
    from flightbase.hostfs import read_tail

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

"""Report metrics from a training script (the jobqueue reads them back: flightbase_jobqueue.job_metrics).

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
import os
import re
import time

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

"""Reading trace CSVs (``job_id,submit_time,num_gpus,duration,group,user,queue_delay,status``).

Malformed rows are collected with their line numbers and reported together
(:class:`TraceError`); fractional GPU requests (the Alibaba trace) are
rounded up to whole GPUs and counted, so the report can say so.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass

REQUIRED = ("job_id", "submit_time", "num_gpus", "duration", "group")


class TraceError(ValueError):
    """A trace that cannot be replayed; the message is one line."""


@dataclass(frozen=True, slots=True)
class TraceJob:
    id: str
    submit_time: float
    gpus: int
    duration: float
    group: str


@dataclass(frozen=True)
class Trace:
    jobs: list[TraceJob]
    rounded_up: int  # fractional GPU requests rounded up to whole GPUs


DAY = 86400.0


def window(trace: Trace, start_day: float, days: float = 14.0) -> Trace:
    """The jobs of ``trace`` submitted from ``start_day`` days after its first submission, for
    ``days`` days, their submission times counted from the window's start: how the 14-day
    windows of the Philly trace in docs/benchmarks.md are cut (``flightbase bench replay
    --start-day``, ``benchmarks/replay_bench.py --windows``).  ``rounded_up`` stays the
    file's count.  Empty when no job falls in the window."""
    if not trace.jobs:
        return trace
    t0 = min(j.submit_time for j in trace.jobs) + start_day * DAY
    t1 = t0 + days * DAY
    return Trace([TraceJob(j.id, j.submit_time - t0, j.gpus, j.duration, j.group)
                  for j in trace.jobs if t0 <= j.submit_time < t1], trace.rounded_up)


def _number(row: dict, col: str) -> float:
    raw = (row.get(col) or "").strip()
    try:
        v = float(raw)
    except ValueError:
        raise ValueError(f"{col}: {raw!r} is not a number") from None
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"{col}: {raw!r} must be a finite number >= 0")
    return v


def read_trace(path: str, limit: int | None = None) -> Trace:
    try:
        f = open(path, newline="", encoding="utf-8")
    except OSError as e:
        raise TraceError(f"cannot read trace {path}: {e.strerror or e}") from None
    jobs: list[TraceJob] = []
    bad: list[str] = []
    nbad = 0
    rounded = 0
    seen: set[str] = set()
    with f:
        try:
            reader = csv.DictReader(f)
            missing = [c for c in REQUIRED if c not in (reader.fieldnames or ())]
            if missing:
                raise TraceError(f"{path}: not a trace CSV (missing column(s) {', '.join(missing)})")
            for row in reader:
                if limit is not None and len(jobs) >= limit:
                    break
                line = reader.line_num
                try:
                    jid = (row.get("job_id") or "").strip()
                    if not jid:
                        raise ValueError("job_id is empty")
                    if jid in seen:
                        raise ValueError(f"job_id {jid!r} repeats")
                    submit = _number(row, "submit_time")
                    g = _number(row, "num_gpus")
                    if g <= 0:
                        raise ValueError(f"num_gpus: {row.get('num_gpus')!r} must be > 0")
                    dur = _number(row, "duration")
                except ValueError as e:
                    nbad += 1
                    if len(bad) < 5:
                        bad.append(f"line {line} ({e})")
                    continue
                gpus = math.ceil(g)
                if gpus != g:
                    rounded += 1
                seen.add(jid)
                jobs.append(TraceJob(jid, submit, gpus, dur, (row.get("group") or "").strip() or "default"))
        except (csv.Error, UnicodeDecodeError) as e:
            raise TraceError(f"{path}: unreadable CSV: {e}") from None
    if nbad:
        more = f" and {nbad - len(bad)} more" if nbad > len(bad) else ""
        raise TraceError(f"{path}: {nbad} malformed row(s): {'; '.join(bad)}{more}")
    if not jobs:
        raise TraceError(f"{path}: no jobs")
    jobs.sort(key=lambda j: (j.submit_time, j.id))
    return Trace(jobs, rounded)

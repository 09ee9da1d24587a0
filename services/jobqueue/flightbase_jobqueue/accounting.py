"""GPU usage accounting: intervals of GPU time, clipped to a window, split by UTC day, grouped.

Pure functions over plain data (no I/O, no clock reads). The store records one
:class:`Interval` per run of a job: opened when the job enters STARTING with
its placement, closed when it leaves the GPU-holding states (it ended, was
preempted, was found lost). A preempted job's restart opens a new interval, so
the time it waited in the queue between two runs is never counted.

- :func:`clip` cuts an interval to a window ``[start, end)``; an interval that
  is still open counts up to ``now``.
- :func:`day_pieces` splits a stretch of time at UTC midnights (POSIX time has
  no leap seconds, so a UTC day is ``[k * 86400, (k + 1) * 86400)``).
- :func:`aggregate` adds up GPU-seconds per group of any of ``workspace``,
  ``user`` and ``day``.
- :func:`default_window` is the API's default window and :func:`to_csv` writes
  the CSV export; the parameters the API and the CLI both read are
  :mod:`flightbase.usage_params`'s (a client module).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

from flightbase.usage_params import DEFAULT_GROUP_BY, GROUP_KEYS, iso, parse_group_by, parse_time

__all__ = ["DEFAULT_GROUP_BY", "GROUP_KEYS", "iso", "parse_group_by", "parse_time"]  # the API reads them here too

DAY = 86400.0
DEFAULT_DAYS = 30

# How an interval ended: the state the job left its GPUs for, or "lost" (its
# processes were gone when the jobqueue restarted).
OUTCOMES = ("succeeded", "failed", "cancelled", "preempted", "lost")


@dataclass(frozen=True, slots=True)
class Interval:
    """One stretch of time a job held ``gpus`` GPUs; ``ended_at`` is None while it still holds them."""

    workspace: str
    user: str
    gpus: int
    started_at: float
    ended_at: float | None = None
    job_id: str = ""
    training_id: str = ""
    kind: str = "training"
    outcome: str | None = None

    def gpu_seconds(self, now: float) -> float:
        """Its whole GPU time, counting an open interval up to ``now``."""
        end = self.ended_at if self.ended_at is not None else now
        return self.gpus * max(0.0, end - self.started_at)


@dataclass(frozen=True, slots=True)
class UsageRow:
    """GPU-seconds of one group; ``key`` holds the group's values in ``group_by`` order."""

    key: tuple[str, ...]
    gpu_seconds: float

    @property
    def gpu_hours(self) -> float:
        return self.gpu_seconds / 3600.0


def clip(interval: Interval, start: float, end: float, now: float) -> tuple[float, float] | None:
    """The part of ``interval`` inside ``[start, end)`` (an open one ends at ``now``); None if nothing."""
    s = max(interval.started_at, start)
    e = min(interval.ended_at if interval.ended_at is not None else now, end)
    return (s, e) if e > s else None


def day_of(t: float) -> str:
    """The UTC day of epoch second ``t``, as ``YYYY-MM-DD``."""
    return dt.datetime.fromtimestamp(math.floor(t / DAY) * DAY, dt.timezone.utc).date().isoformat()


def day_pieces(start: float, end: float) -> Iterator[tuple[str, float, float]]:
    """``[start, end)`` cut at each UTC midnight: (day, piece start, piece end), in order."""
    midnight = math.floor(start / DAY) * DAY
    while midnight < end:
        s, e = max(start, midnight), min(end, midnight + DAY)
        if e > s:
            yield day_of(midnight), s, e
        midnight += DAY


def aggregate(intervals: Iterable[Interval], *, start: float, end: float, now: float,
              group_by: Sequence[str] = DEFAULT_GROUP_BY) -> list[UsageRow]:
    """GPU-seconds inside ``[start, end)`` per group, sorted by group; groups with no usage are absent."""
    unknown = [g for g in group_by if g not in GROUP_KEYS]
    if unknown:
        raise ValueError(f"group_by: unknown key {unknown[0]!r}; use {', '.join(GROUP_KEYS)}")
    by_day = "day" in group_by
    totals: dict[tuple[str, ...], float] = defaultdict(float)
    for iv in intervals:
        part = clip(iv, start, end, now)
        if part is None:
            continue
        pieces = day_pieces(*part) if by_day else [("", *part)]
        for day, s, e in pieces:
            key = tuple(day if g == "day" else getattr(iv, g) for g in group_by)
            totals[key] += iv.gpus * (e - s)
    return [UsageRow(key, seconds) for key, seconds in sorted(totals.items())]


def default_window(now: float, days: int = DEFAULT_DAYS) -> tuple[float, float]:
    """The last ``days`` UTC days, today included (so by day: ``days`` buckets, today's up to now)."""
    return math.floor(now / DAY) * DAY - (days - 1) * DAY, now


def to_csv(rows: Sequence[UsageRow], group_by: Sequence[str]) -> str:
    """The rows as CSV with a header row: the group's columns, then gpu_seconds and gpu_hours."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*group_by, "gpu_seconds", "gpu_hours"])
    for row in rows:
        writer.writerow([*row.key, f"{row.gpu_seconds:.3f}", f"{row.gpu_hours:.6f}"])
    return out.getvalue()

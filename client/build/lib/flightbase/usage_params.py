"""The usage API's parameters, read alike by the jobqueue and by ``flightbase usage``.

A client module: it imports nothing of the services (the CLI checks its flags
with it before it asks the platform).
"""

from __future__ import annotations

import datetime as dt

GROUP_KEYS = ("workspace", "user", "day")
DEFAULT_GROUP_BY = ("workspace",)


def parse_group_by(text: str | None) -> tuple[str, ...]:
    """``"day,user"`` -> ``("day", "user")``; None -> the default (``workspace``). ValueError names the key."""
    if text is None:
        return DEFAULT_GROUP_BY
    keys = tuple(k.strip() for k in text.split(","))
    if not any(keys):
        raise ValueError(f"give one or more of {', '.join(GROUP_KEYS)}, separated by commas")
    for k in keys:
        if k not in GROUP_KEYS:
            raise ValueError(f"unknown key {k!r}; use {', '.join(GROUP_KEYS)}, separated by commas")
    if len(set(keys)) != len(keys):
        raise ValueError("a key is named twice")
    return keys


def parse_time(text: str) -> float:
    """An ISO date (midnight UTC) or datetime (UTC unless it carries an offset) as epoch seconds."""
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except (ValueError, AttributeError):
        raise ValueError(f"expected an ISO date (2026-12-01) or datetime (2026-12-01T08:00:00Z), got {text!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when.timestamp()


def iso(t: float) -> str:
    """Epoch seconds as an ISO datetime in UTC (``...Z``)."""
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat().replace("+00:00", "Z")

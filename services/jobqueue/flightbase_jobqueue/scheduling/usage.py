"""Decayed GPU-seconds per workspace, for fair share.

Each workspace's usage decays exponentially with ``half_life`` seconds, so
past usage counts less and less.  The coordinator charges GPU-seconds as
jobs run (``charge``) and hands ``view(now)`` to the core.
"""

from __future__ import annotations

import math
from typing import Iterator, Mapping


class UsageLedger:
    def __init__(self, half_life: float = 7 * 86400.0):
        self.half_life = half_life
        self._value: dict[str, tuple[float, float]] = {}

    def _decayed(self, ws: str, now: float) -> float:
        v, t = self._value.get(ws, (0.0, now))
        if now <= t:
            return v
        return v * math.exp2(-(now - t) / self.half_life)

    def charge(self, workspace: str, gpu_seconds: float, at: float) -> None:
        self._value[workspace] = (self._decayed(workspace, at) + gpu_seconds, at)

    def view(self, now: float) -> Mapping[str, float]:
        """Decayed usage per workspace at ``now``.  The ledger's values are
        copied now and decayed when read: most policies never read them, and
        the coordinator asks at every step."""
        return _UsageView(dict(self._value), now, self.half_life)


class _UsageView(Mapping[str, float]):
    __slots__ = ("_value", "_now", "_half_life")

    def __init__(self, value: dict[str, tuple[float, float]], now: float, half_life: float):
        self._value = value
        self._now = now
        self._half_life = half_life

    def __getitem__(self, ws: str) -> float:
        v, t = self._value[ws]
        if self._now <= t:
            return v
        return v * math.exp2(-(self._now - t) / self._half_life)

    def __iter__(self) -> Iterator[str]:
        return iter(self._value)

    def __len__(self) -> int:
        return len(self._value)

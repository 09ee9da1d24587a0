"""Decayed GPU-seconds per workspace, for fair share.

Each workspace's usage decays exponentially with ``half_life`` seconds, so
past usage counts less and less.  The coordinator charges GPU-seconds as
jobs run (``charge``) and hands ``view(now)`` to the core.
"""

from __future__ import annotations

import math


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

    def view(self, now: float) -> dict[str, float]:
        return {ws: self._decayed(ws, now) for ws in self._value}

"""Decayed GPU-seconds per workspace, for fair share.

Each workspace's usage decays exponentially with ``half_life`` seconds, so
past usage counts less and less.  The coordinator charges GPU-seconds as
jobs run (``charge``) and hands ``view(now)`` to the core.

Persistence (the service's; the core never sees it): each workspace's entry
is its usage at the time of its last charge and that time, ``(gpu_seconds,
at)``, from which the decayed value at any later time follows.  ``state()``
returns the entries and ``restore()`` puts saved ones back (after a restart),
so a round trip keeps every decayed value exactly.  ``dirty`` says whether a
charge came since the owner last saved (and cleared it): the coordinator
saves only then, and at most every few seconds (docs/scheduling.md,
"Fair-share usage across restarts").
"""

from __future__ import annotations

import math
from typing import Iterator, Mapping


class UsageLedger:
    def __init__(self, half_life: float = 7 * 86400.0):
        self.half_life = half_life
        self._value: dict[str, tuple[float, float]] = {}
        self.dirty = False  # charged since last saved (the saver clears it)

    def _decayed(self, ws: str, now: float) -> float:
        v, t = self._value.get(ws, (0.0, now))
        return decay(v, now - t, self.half_life)

    def charge(self, workspace: str, gpu_seconds: float, at: float) -> None:
        self._value[workspace] = (self._decayed(workspace, at) + gpu_seconds, at)
        self.dirty = True

    def state(self) -> dict[str, tuple[float, float]]:
        """Each workspace's ``(gpu_seconds, at)``: its usage as of ``at``, its last charge
        (decay from then on)."""
        return dict(self._value)

    def restore(self, saved: Mapping[str, tuple[float, float]]) -> None:
        """Add saved entries back (start-up).  Usage adds up: a workspace already charged here
        gets the sum of both, each decayed to the later of their two times."""
        for ws, (value, at) in saved.items():
            value, at = float(value), float(at)
            if not (math.isfinite(value) and math.isfinite(at)) or value < 0:
                continue  # a damaged row counts as no usage, not as a crash at start-up
            mine = self._value.get(ws)
            if mine is None:
                self._value[ws] = (value, at)
            else:
                t = max(at, mine[1])
                self._value[ws] = (decay(value, t - at, self.half_life) + decay(mine[0], t - mine[1], self.half_life), t)

    def view(self, now: float) -> Mapping[str, float]:
        """Decayed usage per workspace at ``now``.  The ledger's values are
        copied now and decayed when read: most policies never read them, and
        the coordinator asks at every step."""
        return _UsageView(dict(self._value), now, self.half_life)


def decay(value: float, elapsed: float, half_life: float) -> float:
    """``value`` decayed over ``elapsed`` seconds with ``half_life`` (the ledger's one formula;
    the queue's projection decays its usage with it too)."""
    return value if elapsed <= 0 else value * math.exp2(-elapsed / half_life)


class _UsageView(Mapping[str, float]):
    __slots__ = ("_value", "_now", "_half_life")

    def __init__(self, value: dict[str, tuple[float, float]], now: float, half_life: float):
        self._value = value
        self._now = now
        self._half_life = half_life

    @property
    def half_life(self) -> float:
        return self._half_life

    def entries(self) -> Mapping[str, tuple[float, float]]:
        """Each workspace's ``(gpu_seconds, at)`` (:meth:`UsageLedger.state`), as of this view:
        the queue's projection decays them to each of its moments."""
        return self._value

    def __getitem__(self, ws: str) -> float:
        v, t = self._value[ws]
        return decay(v, self._now - t, self._half_life)

    def __iter__(self) -> Iterator[str]:
        return iter(self._value)

    def __len__(self) -> int:
        return len(self._value)

"""One call in flight per key: the services' lookups of the hub and the registry under load."""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Hashable


class InFlight:
    """Calls in flight, by key: while one is under way, whoever asks for the same key awaits
    it instead of making another (fifty requests that need the same expired answer send the
    hub or the registry one request, not fifty). A call is forgotten once it ends, failed or
    not: its failure reaches those who awaited it, and the next caller calls again."""

    def __init__(self) -> None:
        self._calls: dict[Hashable, asyncio.Future] = {}

    async def run(self, key: Hashable, call: Callable[[], Awaitable[Any]], *, anew: bool = False) -> Any:
        """``await call()``'s result, shared with the others who ask for ``key`` meanwhile;
        ``anew``: make a new call even if one is under way (later callers await the new one).
        A caller that is cancelled does not cancel the call the others await."""
        pending = None if anew else self._calls.get(key)
        if pending is None:
            pending = asyncio.ensure_future(call())
            self._calls[key] = pending
            pending.add_done_callback(
                lambda _: self._calls.pop(key, None) if self._calls.get(key) is pending else None)
        return await asyncio.shield(pending)

    def any(self) -> asyncio.Future | None:
        """One of the calls under way (None if there is none)."""
        return next(iter(self._calls.values()), None)

    def forget(self) -> None:
        """Let the next callers call again (what is under way may predate a change they must see)."""
        self._calls.clear()

    def __len__(self) -> int:
        return len(self._calls)

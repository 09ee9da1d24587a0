"""The simulator: the real scheduling core and coordinator against an
in-memory store (``memstore``), a simulated backend with a virtual clock
(``backend``), trace reading (``trace``), the replay (``replay``) and its CLI
(``cli``: ``flightbase bench replay`` / ``python -m flightbase_jobqueue.sim``)."""

from .replay import format_report, replay

__all__ = ["replay", "format_report"]

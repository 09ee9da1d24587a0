"""Execution backends behind the coordinator's :class:`~flightbase_jobqueue.ports.Backend` port."""

from __future__ import annotations

BACKENDS = ("local",)


class UnknownBackend(ValueError):
    def __init__(self, name: str):
        super().__init__(f"unknown execution backend {name!r}; known backends: {', '.join(BACKENDS)}")

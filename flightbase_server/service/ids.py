"""Random ids for new rows, without a system call for each.

A row's id is random hex from the system's source (``os.urandom``). Reading it is a
system call, and on a service's event loop a system call is where its other threads
(a backend's, the audit writer's) take the GIL: at a few hundred submissions a second
that hand-off showed up in profiles of the jobqueue (docs/benchmarks.md, "Scale of the
live service"). So the bytes are read 4 KiB at a time and handed out in order; each
byte is used once. A child process made by ``fork`` starts with an empty buffer, so it
never hands out its parent's bytes.
"""

from __future__ import annotations

import os
import threading

CHUNK_BYTES = 4096

_lock = threading.Lock()
_buffer = b""
_used = 0  # bytes of _buffer handed out


def _reset() -> None:
    global _buffer, _used
    _buffer, _used = b"", 0


os.register_at_fork(after_in_child=_reset)


def random_hex(digits: int) -> str:
    """``digits`` (even, 2 or more) random hex digits, from the system's random source."""
    if digits < 2 or digits % 2:
        raise ValueError(f"digits: an even number, 2 or more (got {digits})")
    global _buffer, _used
    size = digits // 2
    with _lock:
        if len(_buffer) - _used < size:
            _buffer, _used = os.urandom(max(CHUNK_BYTES, size)), 0
        start, _used = _used, _used + size
        return _buffer[start:_used].hex()

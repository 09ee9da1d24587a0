"""Start a service under uvicorn on the port its settings name."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os
from urllib.parse import urlparse

import uvicorn

from flightbase_server.settings import HubServiceEnv, PlatformSettings


def serve(name: str, build) -> None:
    logging.basicConfig(level=logging.INFO, format=f"[%(levelname)1.1s %(asctime)s {name}] %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    limit_malloc_arenas()
    settings = PlatformSettings.from_env()
    app = build(settings)
    app = freeze_after_startup(app)
    url = urlparse(HubServiceEnv.from_env().service_url or f"http://127.0.0.1:{getattr(settings, name + '_port')}")
    # access_log off: request lines would carry ?token= query strings if a client sent one.
    uvicorn.run(app, host=url.hostname or "127.0.0.1", port=url.port, log_level="info", access_log=False)


MALLOC_ARENAS = 2
M_ARENA_MAX = -8  # glibc's malloc.h


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Let glibc's malloc keep at most ``arenas`` arenas in this process (``mallopt(M_ARENA_MAX)``).

    glibc gives each thread an arena of its own at its first allocation, up to eight per core,
    and an arena's freed memory is rarely given back. A service's threads
    (the thread pool's, the audit writer, a backend's) each came to hold their own arenas; the
    interpreter's GIL lets one thread allocate at a time anyway. Called first thing, before
    the service starts any thread. An operator's ``MALLOC_ARENA_MAX`` in the environment
    (which glibc reads itself) is left to apply; not glibc (musl): nothing to do. Returns
    whether the limit was set here."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(M_ARENA_MAX, arenas) == 1


YOUNG_GC_THRESHOLD = 5000


def freeze_after_startup(app):
    """``app``, whose objects are frozen for the cycle collector once its start-up has completed.

    A full collection walks every object the collector tracks. Once a service has started, most
    of them are the imported code and the libraries' tables, which live as long as the process:
    under a burst of submissions full collections came every second or two and each stopped the
    jobqueue's event loop (and its threads) for 150-300 ms, which was the API's p99
    (docs/benchmarks.md, "Submission throughput"). Frozen (``gc.freeze``) when the application
    reports its start-up complete, they are no longer walked (about 7 ms per full collection);
    what the service allocates afterwards is collected as before.

    The youngest generation is then collected every ``YOUNG_GC_THRESHOLD`` allocations instead
    of CPython's 700: the objects of a request or a scheduling pass are mostly freed by their
    reference counts before the collector ever sees them, and fewer survive into the older
    generations whose collections walk the whole heap. Over Kueue's 15,000 workloads
    (``benchmarks/scale_bench.py``) this took the jobqueue's time in the collector from about
    4.6 s to 2.3 s, its collections of the oldest generation from 55 to 4, at the same peak
    memory (docs/benchmarks.md, "Scale of the live service"). Only the service's own process
    does this (tests that run an application in-process do not freeze theirs)."""

    async def application(scope, receive, send):
        if scope["type"] != "lifespan":
            return await app(scope, receive, send)

        async def watched(message):
            if message["type"] == "lifespan.startup.complete":
                gc.collect()
                gc.freeze()
                gc.set_threshold(YOUNG_GC_THRESHOLD, *gc.get_threshold()[1:])
            await send(message)

        return await app(scope, receive, watched)

    return application

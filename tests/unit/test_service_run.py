"""A service process freezes its start-up objects for the cycle collector (flightbase_server/service/run.py).

The application is a real ASGI application driven through the lifespan protocol and one HTTP
request, as uvicorn drives it; the test unfreezes what it froze and puts the collector's
thresholds back.
"""

from __future__ import annotations

import asyncio
import gc

from flightbase_server.service.run import YOUNG_GC_THRESHOLD, freeze_after_startup


def test_objects_are_frozen_once_start_up_completes_and_requests_pass_through():
    seen = []

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            message = await receive()
            assert message["type"] == "lifespan.startup"
            seen.append(("frozen before startup.complete", gc.get_freeze_count()))
            await send({"type": "lifespan.startup.complete"})
            return
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    wrapped = freeze_after_startup(app)
    sent = []

    async def run():
        inbox = asyncio.Queue()
        await inbox.put({"type": "lifespan.startup"})

        async def record(message):
            sent.append((message["type"], gc.get_freeze_count()))

        await wrapped({"type": "lifespan"}, inbox.get, record)
        await wrapped({"type": "http", "method": "GET", "path": "/"}, inbox.get, record)

    thresholds = gc.get_threshold()
    gc.unfreeze()
    try:
        asyncio.run(run())
        after = gc.get_threshold()
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
    # the youngest generation is collected less often from then on; the older ones as before
    assert after == (YOUNG_GC_THRESHOLD, *thresholds[1:]) and YOUNG_GC_THRESHOLD > thresholds[0]
    assert seen == [("frozen before startup.complete", 0)]
    (kind, frozen), *answer = sent
    assert kind == "lifespan.startup.complete" and frozen > 1000  # the imported code, at least
    assert [k for k, _ in answer] == ["http.response.start", "http.response.body"]

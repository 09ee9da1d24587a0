"""Plumbing every route of both services uses."""

from __future__ import annotations

from typing import Annotated, Callable, TypeVar

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from flightbase_server.authz import Identity
from flightbase_server.service.auth import current_identity

T = TypeVar("T")

CurrentIdentity = Annotated[Identity, Depends(current_identity)]


async def in_session(request: Request, fn: Callable[..., T], *args) -> T:
    """Run ``fn(session, *args)`` in a worker thread inside one transaction."""

    def work():
        with request.app.state.sessions.begin() as session:
            return fn(session, *args)

    return await run_in_threadpool(work)

"""What this installation offers: its GPUs (or CPU slots) and scheduler policy."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Request

from flightbase_server.authz import Identity
from flightbase_server.service.access import Person, admin
from flightbase_jobqueue.schemas import InfoOut, NodeOut

router = APIRouter(tags=["info"])


def gpu_kind(gpus) -> str:
    return gpus[0]["kind"] if gpus else "none"


@router.get("/info", response_model=InfoOut)
async def info(request: Request, identity: Person):
    settings = request.app.state.settings
    return InfoOut(
        version=request.app.version,
        deployment=settings.deployment,
        gpu_kind=gpu_kind(settings.gpus),
        gpus=list(settings.gpus),
        scheduler_policy=settings.scheduler_policy,
        user=identity.name,
        admin=identity.is_admin,
    )


@router.get("/nodes", response_model=list[NodeOut], summary="The nodes and their GPUs (administrators)")
async def nodes(request: Request, identity: Annotated[Identity, admin("only administrators may list nodes")]):
    settings = request.app.state.settings
    from flightbase_server import topology

    interconnect = await asyncio.to_thread(topology.cached)  # NVML or nvidia-smi, once per process
    return [NodeOut(name="local", gpu_kind=gpu_kind(settings.gpus), gpus=list(settings.gpus),
                    labels=topology.placement_labels(interconnect), interconnect=interconnect)]

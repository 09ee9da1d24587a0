"""The node inventory read from the Kubernetes API (the coordinator's NodeInventory port).

A GPU node is a node with allocatable ``nvidia.com/gpu`` (the NVIDIA device
plugin's resource; the name is a setting).  Its GPU model and count come from
the labels of NVIDIA GPU Feature Discovery (``nvidia.com/gpu.product``,
``nvidia.com/gpu.count``), its place from the topology labels, and RDMA from
the RDMA device plugin's allocatable resource.  Cordoned nodes
(``spec.unschedulable``) and nodes that are not Ready stay in the list with
``schedulable=False``, so that what runs on them is still accounted while
nothing new is placed there.  Nodes without GPUs are left out.
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Sequence

from flightbase_jobqueue.scheduling.types import Node

from .client import KubeClient
from .settings import KubernetesSettings

log = logging.getLogger("flightbase.jobqueue.kubernetes")

KEPT_LABELS = (
    "nvidia.com/gpu.product",
    "nvidia.com/gpu.count",
    "nvidia.com/gpu.memory",
    "nvidia.com/gpu.family",
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
    "kubernetes.io/hostname",
)


def _quantity(value) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return 0


def node_from_api(obj: dict, settings: KubernetesSettings) -> Node | None:
    """One API Node -> a scheduling Node, or None when it has no GPU."""
    meta, spec, status = obj.get("metadata", {}), obj.get("spec", {}), obj.get("status", {})
    allocatable = status.get("allocatable") or {}
    gpus = _quantity(allocatable.get(settings.gpu_resource))
    if gpus <= 0:
        return None
    api_labels = meta.get("labels") or {}
    labels = {k: v for k, v in api_labels.items() if k in KEPT_LABELS}
    rdma = _quantity(allocatable.get(settings.rdma_resource))
    if rdma:
        labels["flightbase.io/rdma"] = str(rdma)
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or ())
    return Node(
        name=meta["name"],
        total=gpus,
        free=tuple(range(gpus)),
        labels=labels,
        schedulable=ready and not spec.get("unschedulable", False),
    )


class KubernetesNodes:
    """NodeInventory over the API, cached for ``ttl`` seconds (the coordinator re-reads
    it on ``refresh_nodes``; an API error keeps the last good answer)."""

    def __init__(self, client: KubeClient, settings: KubernetesSettings, *, ttl: float = 15.0,
                 clock: Callable[[], float] = time.monotonic):
        self.client = client
        self.settings = settings
        self.ttl = ttl
        self.clock = clock
        self._cached: tuple[Node, ...] = ()
        self._at: float | None = None

    def nodes(self) -> Sequence[Node]:
        now = self.clock()
        if self._at is not None and now - self._at < self.ttl:
            return self._cached
        try:
            items, _ = self.client.list("Node", "")
        except Exception as exc:
            log.warning("listing nodes failed (%s); keeping the last inventory", exc)
            return self._cached
        found = (node_from_api(o, self.settings) for o in items)
        self._cached = tuple(sorted((n for n in found if n is not None), key=lambda n: n.name))
        self._at = now
        return self._cached

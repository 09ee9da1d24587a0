"""Which GPUs of one node a job gets: those joined by NVLink, else those under one PCIe switch.

A pure function of the node's free GPUs and its labels (the snapshot): the local
backend labels its node with the groups it found (:func:`flightbase_server.topology.placement_labels`,
``flightbase.io/gpus-nvlink: "0,1,2,3;4,5,6,7"``); a node without them gets its
first free GPUs, as before. Within a level the group that holds the job with the
fewest free GPUs to spare wins (best fit, as between nodes), so whole groups stay
free for the jobs that need them.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from flightbase_server.topology import NVLINK_LABEL, PCIE_LABEL

LEVELS = (NVLINK_LABEL, PCIE_LABEL)


def _groups(spec: str) -> list[list[int]]:
    out = []
    for part in spec.split(";"):
        try:
            group = [int(x) for x in part.split(",") if x.strip()]
        except ValueError:
            continue
        if group:
            out.append(group)
    return out


def choose(free: Sequence[int], need: int, labels: Mapping[str, str]) -> tuple[int, ...]:
    """``need`` GPUs out of ``free`` (sorted), preferring one NVLink group, then one PCIe switch."""
    if need <= 0 or need >= len(free) or not labels:
        return tuple(free[:need])
    have = set(free)
    for key in LEVELS:
        fits = [held for g in _groups(labels.get(key, "")) if len(held := sorted(x for x in g if x in have)) >= need]
        if fits:
            best = min(fits, key=len)  # ties: the group listed first
            return tuple(best[:need])
    return tuple(free[:need])

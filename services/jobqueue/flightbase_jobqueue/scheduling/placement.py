"""Gang placement: which concrete GPUs a job gets, all at once or none.

Rules (pure functions over a working copy of the free GPUs):

- A job that fits on one node goes on one node, best fit: the node with the
  fewest free GPUs that still holds it, so that whole nodes stay free for big
  jobs.  Ties go to the node listed first.
- A larger job takes whole (fully free) nodes, preferring nodes that share a
  topology label.  ``topology_keys`` are tried most specific first (NVLink
  domain, then InfiniBand switch, then rack by default): the smallest group
  that holds the whole job wins; failing every key, the job spans groups.
  The last node gives only the GPUs still needed (a 12-GPU job on 8-GPU
  nodes takes one whole node and 4 GPUs of a second, fully free, node).
- An ``N x G`` request (``gpus_per_node``) takes N nodes with G free GPUs
  each, best fit per node, with the same topology preference.
- Within a node, a job gets GPUs joined by NVLink, else under one PCIe switch, where the
  node's labels say which (:func:`.gpu_choice.choose`); otherwise its first free GPUs.
- :func:`check_admissible` rejects at submission a job that can never fit.

:class:`FreeMap` keeps nodes in buckets by free-GPU count, so finding a best
fit costs O(GPUs per node), not O(nodes).
"""

from __future__ import annotations

from bisect import bisect_left, insort
from typing import Iterable, Mapping, Sequence

from .gpu_choice import choose
from .types import Job, Node, Placement, WorkspaceLimits

DEFAULT_TOPOLOGY_KEYS: tuple[str, ...] = (
    "topology.flightbase.io/nvlink-domain",
    "topology.flightbase.io/ib-switch",
    "topology.flightbase.io/rack",
)


class FreeMap:
    """A mutable working copy of the free GPUs of the schedulable nodes."""

    __slots__ = ("names", "index", "total", "free", "labels", "buckets",
                 "total_free", "max_size", "topology_keys", "_own")

    def __init__(self, nodes: Sequence[Node], topology_keys: Sequence[str] = DEFAULT_TOPOLOGY_KEYS):
        self.topology_keys = tuple(topology_keys)
        self.names: list[str] = []
        self.index: dict[str, int] = {}
        self.total: list[int] = []
        self.free: list[list[int]] = []
        self.labels: list[Mapping[str, str]] = []
        self.max_size = max((n.total for n in nodes if n.schedulable), default=0)
        self.buckets: list[list[int]] = [[] for _ in range(self.max_size + 1)]
        self.total_free = 0
        names, index, total, frees, labels, buckets = (self.names, self.index, self.total,
                                                        self.free, self.labels, self.buckets)
        tf = 0
        for node in nodes:
            if not node.schedulable:
                continue
            i = len(names)
            names.append(node.name)
            index[node.name] = i
            total.append(node.total)
            free = sorted(node.free)
            frees.append(free)
            labels.append(node.labels)
            buckets[len(free)].append(i)
            tf += len(free)
        self.total_free = tf
        # Copy-on-write (see copy_freemap): indices of the per-node free lists
        # this map may change in place; None: all of them.
        self._own: set[int] | None = None

    # -- mutation ------------------------------------------------------------
    def _move(self, i: int, old: int, new: int) -> None:
        b = self.buckets[old]
        del b[bisect_left(b, i)]
        insort(self.buckets[new], i)

    def _mine(self, i: int) -> list[int]:
        """Node ``i``'s free list, copied first if another map shares it."""
        free = self.free[i]
        own = self._own
        if own is not None and i not in own:
            free = self.free[i] = list(free)
            own.add(i)
        return free

    def take(self, placement: Placement) -> None:
        for name, gpus in placement.items():
            i = self.index[name]
            free = self._mine(i)
            old = len(free)
            for g in gpus:
                free.remove(g)
            self._move(i, old, len(free))
            self.total_free -= len(gpus)

    def give(self, placement: Placement) -> None:
        for name, gpus in placement.items():
            i = self.index.get(name)
            if i is None:  # node gone or cordoned: nothing to give back here
                continue
            free = self._mine(i)
            old = len(free)
            for g in gpus:
                insort(free, g)
            self._move(i, old, len(free))
            self.total_free += len(gpus)

    def set_free(self, name: str, free: Iterable[int]) -> None:
        """Replace a node's free GPUs (the coordinator keeps its map current
        this way; copies made earlier keep what they had)."""
        i = self.index.get(name)
        if i is None:
            return
        new = sorted(free)
        old = len(self.free[i])
        self.free[i] = new
        if self._own is not None:
            self._own.add(i)
        if len(new) != old:
            self._move(i, old, len(new))
            self.total_free += len(new) - old

    # -- queries ---------------------------------------------------------------
    def find(self, job: Job) -> Placement | None:
        """Where ``job`` would go now, or None; does not take the GPUs."""
        need = job.gpus
        if need > self.total_free or need <= 0:
            return None
        per = job.gpus_per_node
        if per is not None and per < need:
            count = need // per
            cands = [i for c in range(per, self.max_size + 1) for i in self.buckets[c]]
            if len(cands) < count:
                return None
            chosen = self._topology_pick(cands, count)
            return {self.names[i]: choose(self.free[i], per, self.labels[i]) for i in chosen}
        if per is not None or need <= self.max_size:
            for c in range(need, self.max_size + 1):
                b = self.buckets[c]
                if b:
                    i = b[0]
                    return {self.names[i]: choose(self.free[i], need, self.labels[i])}
            return None
        # Larger than any node: whole nodes, biggest first within a group.
        whole = [i for c in range(1, self.max_size + 1) for i in self.buckets[c]
                 if self.total[i] == c]
        if sum(self.total[i] for i in whole) < need:
            return None
        chosen = self._topology_pick(whole, need, by_gpus=True)
        out: dict[str, tuple[int, ...]] = {}
        left = need
        for i in chosen:
            take = min(left, len(self.free[i]))
            out[self.names[i]] = tuple(self.free[i][:take])
            left -= take
        return out

    def place(self, job: Job) -> Placement | None:
        p = self.find(job)
        if p is not None:
            self.take(p)
        return p

    def _topology_pick(self, cands: list[int], need: int, by_gpus: bool = False) -> list[int]:
        """Choose nodes among ``cands`` (already in best-fit order) so that
        ``need`` nodes (or GPUs, when ``by_gpus``) share a topology label."""

        def size(group: Iterable[int]) -> int:
            return sum(self.total[i] for i in group) if by_gpus else sum(1 for _ in group)

        def take(group: list[int]) -> list[int]:
            if by_gpus:
                group = sorted(group, key=lambda i: (-self.total[i], i))
            out, got = [], 0
            for i in group:
                if got >= need:
                    break
                out.append(i)
                got += self.total[i] if by_gpus else 1
            return out

        for key in self.topology_keys:
            groups: dict[str, list[int]] = {}
            for i in cands:
                v = self.labels[i].get(key)
                if v is not None:
                    groups.setdefault(v, []).append(i)
            fitting = [(size(g), v) for v, g in groups.items() if size(g) >= need]
            if fitting:
                _, v = min(fitting)
                return take(groups[v])
        # No single group holds the job: span groups, biggest groups first so
        # that the job touches as few of them as possible.
        key = self.topology_keys[-1] if self.topology_keys else None
        if key is not None:
            groups = {}
            for i in cands:
                groups.setdefault(self.labels[i].get(key, ""), []).append(i)
            ordered = [i for _, _, g in sorted((-size(g), v, g) for v, g in groups.items()) for i in g]
            return take(ordered)
        return take(cands)


def check_admissible(request: Job, cluster: Sequence[Node],
                     workspace_limits: WorkspaceLimits | None = None) -> str | None:
    """Why ``request`` can never run, in words; None when it may run some day.

    Called at submission so that an impossible job is rejected with a clear
    message instead of waiting forever.  ``cluster`` lists every node
    (cordoned ones too: they may come back).
    """
    limits = workspace_limits or WorkspaceLimits()
    g = request.gpus
    if g < 1:
        return f"a job needs at least 1 GPU (asked for {g})"
    total = sum(n.total for n in cluster)
    biggest = max((n.total for n in cluster), default=0)
    if limits.max_gpus_per_job is not None and g > limits.max_gpus_per_job:
        return (f"needs {g} GPUs but workspace {request.workspace} allows at most "
                f"{limits.max_gpus_per_job} GPUs per job")
    if g > total:
        return f"needs {g} GPUs but the cluster has {total} GPUs in all"
    per = request.gpus_per_node
    if per is not None:
        if per < 1 or g % per:
            return f"{g} GPUs cannot be split into nodes of {per} GPUs each"
        if per > biggest:
            return f"needs {per} GPUs on each node but the largest node has {biggest}"
        if sum(1 for n in cluster if n.total >= per) < g // per:
            return f"needs {g // per} nodes with {per} GPUs each; the cluster has fewer"
    from .core import BLOCKED, quota_verdict  # here: core imports this module

    if quota_verdict(limits, 0, request) == BLOCKED:
        if not limits.allow_borrowing:
            return (f"needs {g} GPUs but workspace {request.workspace} has a quota of "
                    f"{limits.quota} GPUs and may not borrow")
        if not request.preemptible:
            return (f"a non-preemptible job must fit in the workspace quota: needs {g} GPUs, "
                    f"quota is {limits.quota}")
        return (f"needs {g} GPUs but workspace {request.workspace} may hold at most "
                f"{limits.quota + limits.borrowing_limit} GPUs (quota {limits.quota}, borrowing limit "
                f"{limits.borrowing_limit})")
    return None


def copy_freemap(fm: FreeMap, topology_keys: Sequence[str] | None = None) -> FreeMap:
    """An independent working copy (a pass's working map, look-ahead for
    reservations and insight).  Copy-on-write: the per-node free lists are
    shared until either map changes one (the copy costs O(nodes) pointer
    copies, not O(GPUs)), so ``fm`` stops owning its lists too."""
    new = FreeMap.__new__(FreeMap)
    new.topology_keys = fm.topology_keys if topology_keys is None else tuple(topology_keys)
    new.names = fm.names
    new.index = fm.index
    new.total = fm.total
    new.labels = fm.labels
    new.max_size = fm.max_size
    new.free = list(fm.free)
    new.buckets = [list(b) for b in fm.buckets]
    new.total_free = fm.total_free
    new._own = set()
    fm._own = set()
    return new


def take_available(fm: FreeMap, placement: Placement) -> None:
    """Take from ``fm`` those GPUs of ``placement`` that it still has free."""
    part = {}
    for name, gpus in placement.items():
        i = fm.index.get(name)
        if i is None:
            continue
        have = set(fm.free[i])
        got = tuple(g for g in gpus if g in have)
        if got:
            part[name] = got
    if part:
        fm.take(part)

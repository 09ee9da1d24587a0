import pytest

from flightbase_jobqueue.scheduling import FreeMap, check_admissible
from flightbase_jobqueue.scheduling.placement import DEFAULT_TOPOLOGY_KEYS

from scheduling_factories import job, node, quota


@pytest.mark.parametrize("nodes, request_, expected", [
    # best fit: the fullest node that still holds the job
    ([node("a", free=range(8)), node("b", free=[5, 6, 7])], job("j", 2), {"b": (5, 6)}),
    ([node("a", free=[0, 1]), node("b", free=[0, 1])], job("j", 2), {"a": (0, 1)}),  # tie: first listed
    ([node("a", free=[0]), node("b", free=[0, 1, 2])], job("j", 4), None),           # no gang split
    # larger than a node: whole nodes, same rack preferred
    ([node("a", rack="r1"), node("b", rack="r2"), node("c", rack="r2")], job("j", 16),
     {"b": tuple(range(8)), "c": tuple(range(8))}),
    # a partly used node is not a whole node
    ([node("a", free=range(7)), node("b"), node("c")], job("j", 16),
     {"b": tuple(range(8)), "c": tuple(range(8))}),
    # 12 GPUs: one whole node and 4 GPUs of another fully free one
    ([node("a"), node("b")], job("j", 12), {"a": tuple(range(8)), "b": (0, 1, 2, 3)}),
    # N x G: two nodes with 2 free GPUs each, best fit per node
    ([node("a"), node("b", free=[6, 7]), node("c", free=[1, 2, 3])], job("j", 4, gpus_per_node=2),
     {"b": (6, 7), "c": (1, 2)}),
    # cordoned nodes are skipped
    ([node("a", schedulable=False), node("b", free=[3])], job("j", 1), {"b": (3,)}),
])
def test_find(nodes, request_, expected):
    assert FreeMap(nodes, DEFAULT_TOPOLOGY_KEYS).find(request_) == expected


def test_topology_prefers_smallest_group_that_fits():
    nodes = [node("a", rack="big"), node("b", rack="big"), node("c", rack="big"),
             node("d", rack="small"), node("e", rack="small")]
    assert set(FreeMap(nodes).find(job("j", 16))) == {"d", "e"}


def test_place_takes_the_gpus():
    fm = FreeMap([node("a", free=[0, 1, 2])])
    assert fm.place(job("x", 2)) == {"a": (0, 1)}
    assert fm.place(job("y", 2)) is None
    assert fm.place(job("z", 1)) == {"a": (2,)}
    assert fm.total_free == 0


CLUSTER = [node("a"), node("b")]


@pytest.mark.parametrize("request_, limits, reason", [
    (job("j", 8), None, None),
    (job("j", 16), None, None),
    (job("j", 17), None, "needs 17 GPUs but the cluster has 16 GPUs in all"),
    (job("j", 0), None, "a job needs at least 1 GPU (asked for 0)"),
    (job("j", 4, ws="t"), quota(8, max_gpus_per_job=2),
     "needs 4 GPUs but workspace t allows at most 2 GPUs per job"),
    (job("j", 12, ws="t"), quota(8, borrow=False),
     "needs 12 GPUs but workspace t has a quota of 8 GPUs and may not borrow"),
    (job("j", 12, ws="t"), quota(8), None),
    (job("j", 12, preemptible=False), quota(8),
     "a non-preemptible job must fit in the workspace quota: needs 12 GPUs, quota is 8"),
    (job("j", 6, gpus_per_node=4), None, "6 GPUs cannot be split into nodes of 4 GPUs each"),
    (job("j", 16, gpus_per_node=16), None, "needs 16 GPUs on each node but the largest node has 8"),
])
def test_check_admissible(request_, limits, reason):
    assert check_admissible(request_, CLUSTER, limits) == reason

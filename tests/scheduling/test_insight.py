"""Queue insight: positions, estimates and reasons say what is true now."""

from __future__ import annotations

from flightbase_jobqueue.scheduling import lease
from flightbase_jobqueue.scheduling.insight import explain

from scheduling_factories import job, node, quota, running, snap


def test_the_quota_in_a_reason_is_what_the_workspace_holds_now():
    """Two jobs wait behind a workspace's full quota: both reasons say 1/1 in use (the
    projection of the first one's start must not count as in use for the second)."""
    s = snap([lease("nb", "t"), job("b", 1, ws="t", t=1)], [running(job("x", 1, ws="t", max_runtime=100), {"n": [0]})],
             [node("n", total=1, free=[])], limits={"t": quota(1, borrow=False)})
    found = {i.job_id: i for i in explain(s)}
    assert [found["nb"].position, found["b"].position] == [1, 2]
    assert [found["nb"].workspace_position, found["b"].workspace_position] == [1, 2]
    for job_id in ("nb", "b"):
        assert "workspace quota 1/1 in use" in found[job_id].reason, found[job_id].reason
    assert found["nb"].estimated_start is not None
    assert found["b"].estimated_start >= found["nb"].estimated_start

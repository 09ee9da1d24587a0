"""The dashboard's queue rows carry the start estimate's range (#17, part 2)."""

from __future__ import annotations

from types import SimpleNamespace

from flightbase_jobqueue import figures
from flightbase_jobqueue.scheduling.insight import QueueInsight


def queued(id):
    return SimpleNamespace(id=id, state="queued", gpus=1, kind="training", placement=None, started_at=None,
                           finished_at=None, workspace="ws", created_by="ana", training_id="t1", name="t1-0",
                           priority=0, restarts=0, held=False, submitted_at=50.0, reason=None)


def test_queue_rows_carry_the_range_of_the_estimate():
    insights = {"a": QueueInsight("a", 1, 1, 300.0, "needs 2 GPUs", (200.0, 900.0)),
                "b": QueueInsight("b", 2, 2, None, "no estimate: not enough schedulable GPUs")}
    rows = {r.job_id: r for r in figures.queue_rows([queued("a"), queued("b")], insights, {})}
    assert rows["a"].estimated_start == 300.0 and rows["a"].estimated_start_range == [200.0, 900.0]
    assert rows["b"].estimated_start is None and rows["b"].estimated_start_range is None

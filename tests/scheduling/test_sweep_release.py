"""A sweep's held job released after hours waits from its release, not from its submission.

The coordinator and ``las`` on the jobqueue's SQL store (a real SQLite database); the backend
records instead of running anything (these tests are about what the scheduler decides)."""

from __future__ import annotations

import pytest

from flightbase_server.service import db
from flightbase_jobqueue.app import MIGRATIONS
from flightbase_jobqueue.coordinator import Coordinator
from flightbase_jobqueue.ports import Started
from flightbase_jobqueue.scheduling import make_policy
from flightbase_jobqueue.store import SqlStore
from tests.helpers.jobqueue_store import OneNode, RecordingBackend, add_jobs

H = 3600.0


class StopRecorder(RecordingBackend):
    def __init__(self):
        super().__init__()
        self.stopped: list[tuple[str, str]] = []

    def stop(self, job_id, grace_seconds, reason):
        self.stopped.append((job_id, reason))


@pytest.fixture
def sessions(tmp_path):
    engine = db.make_engine(f"sqlite:///{tmp_path / 'jq.sqlite'}")
    db.upgrade(engine, MIGRATIONS)
    yield db.Sessions(engine)
    engine.dispose()


def test_a_sweep_job_released_after_hours_is_not_starving_and_jumps_no_queue(sessions):
    """One GPU: a training runs from 0; the next job of a sweep (``parallel`` 1), submitted at 0
    and held, is released 7 h later. Counted from its submission it had waited 7 h, past
    ``las``'s starvation limit (6 h): it was promoted above every job and stopped the running one
    at once (until 2026-12-06). Its wait now counts from its release: it stops nothing then, and
    only reaches the limit 6 h after it."""
    add_jobs(sessions, "running", "trial-2", per_job={"trial-2": {"held": True}})
    backend = StopRecorder()
    store = SqlStore(sessions)
    coordinator = Coordinator(store, backend, make_policy("las"), OneNode(1))
    coordinator.step(0.0)
    assert [j for j, _ in backend.started] == ["running"]
    backend.events = [Started("running", 0.0)]
    coordinator.step(1.0)

    released = 7 * H
    assert store.set_held(["trial-2"], False, released) == ["trial-2"]
    coordinator.step(released + 120.0)  # past preempt_after: it would stop a job by now
    assert backend.stopped == []
    coordinator.step(released + 5 * H)
    assert backend.stopped == []
    coordinator.step(released + 6 * H + 1.0)  # 6 h after its release: starving, as any job
    assert [j for j, _ in backend.stopped] == ["running"]
    assert "trial-2" in backend.stopped[0][1]


def test_a_paused_trainings_jobs_wait_from_their_resumption(sessions):
    """Pausing a training holds its queued jobs; resuming releases them: their wait restarts then."""
    add_jobs(sessions, "a", "b")
    store = SqlStore(sessions)
    assert store.set_held(["a", "b"], True, 10.0) == ["a", "b"]
    assert len(store.queued_jobs()) == 0
    assert store.set_held(["a", "b"], False, 9 * H) == ["a", "b"]
    assert [j.queued_since for j in store.queued_jobs()] == [9 * H, 9 * H]
    assert [j.submitted_at for j in store.queued_jobs()] == [0.0, 1.0]  # the queue's order is kept


def test_the_queue_projection_reads_each_active_sweeps_places_and_held_jobs(sessions):
    """``runtime.held_sweeps``: a sweep of ``parallel`` 2 with one job running and one released
    has no free place and its held jobs by number; a paused training's held jobs are left out
    (nothing releases them but a person); ``limit`` bounds the held jobs read."""
    from flightbase_jobqueue import models
    from flightbase_jobqueue.runtime import held_sweeps

    sweep = {"sweep": {"runs": [{}, {}, {}, {}, {}], "parallel": 2}}
    with sessions.begin() as s:
        s.add(models.Training(id="sw", workspace="vision", name="sw", created_by="ann", state="active", spec=sweep))
        s.add(models.Training(id="pz", workspace="vision", name="pz", created_by="ann", state="paused", spec=sweep))
        s.flush()
        for tid in ("sw", "pz"):
            for i, (state, held) in enumerate([("running", False), ("queued", False), ("queued", True),
                                               ("queued", True), ("succeeded", False)]):
                s.add(models.Job(id=f"{tid}{i}", training_id=tid, workspace="vision", name=f"{tid}{i}", seq=i,
                                 state=state, held=held, gpus=1, submitted_at=i * 1e-6, created_by="ann"))
    (found,) = held_sweeps(sessions)
    assert found.members == {"sw0", "sw1"} and found.free == 0
    assert [j.id for j in found.held] == ["sw2", "sw3"]
    (found,) = held_sweeps(sessions, limit=1)
    assert [j.id for j in found.held] == ["sw2"]

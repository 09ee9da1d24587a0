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


def running_on_one_gpu(sessions, backend, first: str) -> tuple[SqlStore, Coordinator]:
    """The coordinator and ``las`` on one GPU over the jobs in ``sessions``: ``first`` started
    at 0 s and running from then on (at 1 s)."""
    store = SqlStore(sessions)
    coordinator = Coordinator(store, backend, make_policy("las"), OneNode(1))
    coordinator.step(0.0)
    assert [j for j, _ in backend.started] == [first]
    backend.events = [Started(first, 0.0)]
    coordinator.step(1.0)
    return store, coordinator


def test_a_sweep_job_released_after_hours_is_not_starving_and_jumps_no_queue(sessions):
    """One GPU: a training runs from 0; the next job of a sweep (``parallel`` 1), submitted at 0
    and held, is released 7 h later. Counted from its submission it had waited 7 h, past
    ``las``'s starvation limit (6 h): it was promoted above every job and stopped the running one
    at once (until 2026-12-06). Its wait now counts from its release: it stops nothing then, and
    only reaches the limit 6 h after it."""
    add_jobs(sessions, "running", "trial-2", per_job={"trial-2": {"held": True}})
    backend = StopRecorder()
    store, coordinator = running_on_one_gpu(sessions, backend, "running")

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


def test_a_sweeps_finished_job_times_the_start_estimates_of_its_next_ones(sessions):
    """A sweep of three trials run one at a time on one GPU, with no other history: the first
    trial succeeds after 121 s, the second starts, and the third is held until it ends. The
    third's start estimate is the second's start plus the first's 121 s (its sweep's jobs run
    the same program). Until 2026-12-06 the second trial, 9 s into its run, was expected on the
    no-history rule (at least 10 minutes more, drawn on a scale-free tail): session 39 saw such a
    trial shown 40 minutes late by hand. Another training's job of the same workspace learns
    nothing from this sweep, and the scheduler's own expectations do not read it."""
    from flightbase_jobqueue import models
    from flightbase_jobqueue.ports import Exited
    from flightbase_jobqueue.runtime import held_sweeps
    from flightbase_jobqueue.scheduling.insight import explain

    sweep = {"sweep": {"runs": [{}, {}, {}], "parallel": 1}}
    with sessions.begin() as s:
        s.add(models.Training(id="sw", workspace="vision", name="sw", created_by="ann", state="active", spec=sweep))
        s.add(models.Training(id="other", workspace="vision", name="other", created_by="ann", state="active",
                              spec={}))
        s.flush()
        for i in range(3):
            s.add(models.Job(id=f"sw{i}", training_id="sw", workspace="vision", name=f"sw[{i}]", seq=i,
                             state="queued", held=i > 0, gpus=1, submitted_at=i * 1e-6, created_by="ann"))
        s.add(models.Job(id="late", training_id="other", workspace="vision", name="late", seq=0,
                         state="queued", gpus=1, submitted_at=1.0, created_by="ann"))
    backend = RecordingBackend()
    store, coordinator = running_on_one_gpu(sessions, backend, "sw0")
    backend.events = [Exited("sw0", 121.0, 0)]
    assert store.set_held(["sw1"], False, 121.0) == ["sw1"]  # what the runtime's release does
    coordinator.step(122.0)
    assert [j for j, _ in backend.started][-1] == "sw1"
    backend.events = [Started("sw1", 122.0)]
    coordinator.step(123.0)

    now = 131.0
    snap = coordinator.snapshot(now)
    found = {i.job_id: i for i in explain(snap, policy=coordinator.policy, sweeps=held_sweeps(sessions))}
    truth = 122.0 + 121.0  # sw1 runs as long as sw0 did (121 s); then sw2 is released and starts
    assert found["sw2"].estimated_start == pytest.approx(truth, abs=0.25 * (truth - now))
    lo, hi = found["sw2"].estimated_range or (truth, truth)
    assert lo <= truth + 1.0 and hi >= truth - 1.0
    # The other training's job learns nothing from the sweep (one finished job of its
    # workspace is not a history: the no-history rule's hour for a job that has not run).
    est = coordinator.estimates
    late = next(j for j in snap.queue.jobs() if j.id == "late")
    assert late.training == "other" and est.remaining(late, 0.0) == pytest.approx(3600.0)
    # The scheduler's expectations (las's order) never read a training's history either.
    sw1 = next(a.job for a in snap.active if a.job.id == "sw1")
    assert est.remaining(sw1, 9.0) == pytest.approx(112.0)
    assert est.completed_remaining(sw1, 9.0) == est.completed_remaining(late, 9.0) == pytest.approx(600.0)

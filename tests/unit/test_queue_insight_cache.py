"""The queue's projection (``JobRuntime.insight``: what ``GET /queue`` and ``GET /jobs/{id}`` show)
is computed once per change of the queue's state and shared by the requests in between
(insight_cache.py); a submission, a scheduler pass or 2 s of age makes the next request recompute a
cheap one, and an expensive one is reused after those for ten times its cost.

On a real database and a real (unstarted) runtime built as the service builds it; the projection
(``insight.explain``) is the real one, only counted.  The clock of the cache is a fake one so the
2 s bound is tested without sleeping."""

from __future__ import annotations

import asyncio

import pytest

from flightbase_server import gpus
from flightbase_server.service import db
from flightbase_server.settings import PlatformSettings
from flightbase_jobqueue import models
from flightbase_jobqueue.app import MIGRATIONS
from flightbase_jobqueue.scheduling import insight

SPEC = {"entrypoint": "train.py", "args": [], "gpus": 2, "launcher": "none", "image": "training-base",
        "max_runtime": 3600.0, "priority": 0, "preemptible": True}
TRAINING = dict(id="t", workspace="vision", name="t", kind="advanced", created_by="ann", spec=SPEC, state="active")
JOB = dict(workspace="vision", kind="training", gpus=2, priority=0, preemptible=True, state="queued",
           held=False, submitted_at=0.0, attained=0.0, restarts=0, stopping=False, cancel_requested=False,
           created_by="ann")


def _job(seq: int) -> models.Job:
    return models.Job(id=f"j{seq}", training_id="t", name=f"t #{seq}", params={}, seq=seq, **JOB)


@pytest.fixture
def counted(monkeypatch):
    calls = []
    real = insight.explain

    def explain(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(insight, "explain", explain)
    return calls


def test_requests_share_one_projection_until_the_queue_changes_or_it_ages(tmp_path, counted):
    from flightbase_jobqueue.runtime import JobRuntime

    engine = db.make_engine(f"sqlite:///{tmp_path / 'jq.sqlite'}")
    db.upgrade(engine, MIGRATIONS)
    sessions = db.Sessions(engine)
    with sessions.begin() as s:
        s.add(models.Training(**TRAINING))
    with sessions.begin() as s:
        s.add_all([_job(0), _job(1)])
    (tmp_path / "data").mkdir(mode=0o755)
    settings = PlatformSettings(data_dir=tmp_path / "data", gpus=tuple(gpus.cpu_slots(2)))

    async def scenario():
        runtime = JobRuntime(settings, sessions, code_root=tmp_path / "code")
        now = [1000.0]
        runtime._insight._clock = lambda: now[0]
        with sessions() as s:  # what the runtime would have recovered: the queued rows join its queue
            runtime.submitted(s.query(models.Job).all())

        async def request():
            await asyncio.sleep(0)
            return runtime.insight()

        first = await asyncio.gather(*(request() for _ in range(20)))
        assert len(counted) == 1  # 20 requests, no change: one projection
        assert all(r is first[0] for r in first) and set(first[0]) == {"j0", "j1"}
        assert [first[0][j].position for j in ("j0", "j1")] == [1, 2]

        with sessions.begin() as s:  # a submission: the next request sees the new job
            s.add(_job(2))
        with sessions() as s:
            runtime.submitted([s.get(models.Job, "j2")])
        after = runtime.insight()
        assert len(counted) == 2 and set(after) == {"j0", "j1", "j2"}
        runtime.insight()
        assert len(counted) == 2

        runtime._stepped()  # a scheduler pass
        runtime.insight()
        assert len(counted) == 3

        now[0] += 1.9  # younger than 2 s and nothing changed: shared
        runtime.insight()
        assert len(counted) == 3
        now[0] += 0.2  # older: the estimates move with the clock
        runtime.insight()
        assert len(counted) == 4

        runtime.set_priority("j2", 5)  # a change of the queue's state
        assert runtime.insight()["j2"].position == 1 and len(counted) == 5
        runtime.hold(["j0"], True)
        runtime.insight()
        assert len(counted) == 6

    asyncio.run(scenario())
    engine.dispose()


def test_an_expensive_projection_is_reused_after_flow_for_cost_factor_times_its_cost():
    """After flow alone (passes, submissions) a projection that cost >= 20 ms of CPU is reused until
    it is COST_FACTOR (25) times its cost old, even by a reader asking for a job it lacks (a cheap
    one is made again for that reader); a change of the jobs already queued recomputes it, and so
    does age: 2 s, or COST_FACTOR times its cost for an expensive one. Fake clocks: the wall clock
    and the CPU time the computation took."""
    from flightbase_jobqueue.insight_cache import COST_FACTOR as F, SharedInsight

    now, cpu, cost = [0.0], [0.0], [0.1]
    version = {"changes": 0, "flow": 0}
    made = []

    def compute():
        cpu[0] += cost[0]
        made.append(1)
        return {"a": len(made)}

    cache = SharedInsight(compute, lambda: (version["changes"], version["flow"]),
                          clock=lambda: now[0], cpu_clock=lambda: cpu[0])
    assert cache.get() == {"a": 1}
    version["flow"] += 1  # a pass: within F x 100 ms, shared
    now[0] += F * 0.1 - 0.1
    assert cache.get() == {"a": 1} and len(made) == 1
    assert cache.get(require=["b"]) == {"a": 1}  # a job it does not have: shown without a place for now
    version["flow"] += 1
    now[0] += 0.15
    assert cache.get(require=["b"]) == {"a": 2}  # older than F x its cost after a pass: made again
    cost[0] = 0.005  # (the queue got short)
    version["changes"] += 1  # a priority, hold, cancel: always made again
    assert cache.get() == {"a": 3}
    assert cache.get(require=["b"]) == {"a": 4}  # a cheap one lacking a job: made again for it
    version["flow"] += 1  # a short queue's (5 ms): a pass always makes it again
    assert cache.get() == {"a": 5}
    version["flow"] += 1
    assert cache.get() == {"a": 6}
    now[0] += 2.01  # and nothing cheap is older than 2 s
    assert cache.get() == {"a": 7}
    cost[0] = 0.5  # a projection of 500 ms (a long queue, a loaded machine)
    version["changes"] += 1
    assert cache.get() == {"a": 8}
    now[0] += 3.0  # past 2 s, but within F x its cost: kept, flow or not
    assert cache.get() == {"a": 8}
    version["flow"] += 1
    now[0] += F * 0.5 - 3.0 - 0.1
    assert cache.get() == {"a": 8}
    now[0] += 0.2  # over F x 500 ms: made again
    assert cache.get() == {"a": 9}

"""The coordinator persists each change before telling the backend, and
handles backend events through declared transitions only."""

from flightbase_jobqueue.coordinator import Coordinator
from flightbase_jobqueue.ports import Exited, Started, Stopped
from flightbase_jobqueue.scheduling import make_policy
from flightbase_jobqueue.sim.memstore import MemStore
from flightbase_jobqueue.sim.replay import StaticInventory
from flightbase_jobqueue.states import JobState

from scheduling_factories import job, node, quota


class RecordingStore(MemStore):
    def __init__(self, log, **kw):
        super().__init__(**kw)
        self.log = log

    def transition(self, job_id, new_state, **kw):
        self.log.append(("store", job_id, new_state.value))
        return super().transition(job_id, new_state, **kw)

    def record_preemption(self, job_id, reason, at):
        self.log.append(("store", job_id, "preemption: " + reason))
        super().record_preemption(job_id, reason, at)


class FakeBackend:
    def __init__(self, log):
        self.log = log
        self.events = []

    def start(self, job, placement):
        self.log.append(("backend", job.id, f"start {dict(placement)}"))

    def stop(self, job_id, grace_seconds, reason):
        self.log.append(("backend", job_id, f"stop grace={grace_seconds}"))

    def poll_events(self):
        out, self.events = self.events, []
        return out


def make(policy="fifo", nodes=(node("n", 2),), limits=None):
    log = []
    store = RecordingStore(log, limits=limits)
    backend = FakeBackend(log)
    coord = Coordinator(store, backend, make_policy(policy), StaticInventory(list(nodes)), grace_seconds=30)
    return log, store, backend, coord


def test_start_is_persisted_before_the_backend_hears_of_it():
    log, store, backend, coord = make()
    store.submit(job("a", 2))
    coord.step(0.0)
    assert log == [("store", "a", "starting"), ("backend", "a", "start {'n': (0, 1)}")]
    backend.events = [Started("a", 1.0), Exited("a", 50.0, 0)]
    r = coord.step(50.0)
    assert r.finished == [("a", JobState.SUCCEEDED)]
    assert store.state("a") is JobState.SUCCEEDED
    assert store.jobs["a"].attained == 2 * 50.0
    assert coord.estimates._by_key  # the history estimator learned a run time


def test_reclaim_records_the_preemption_then_stops_then_requeues():
    limits = {"t": quota(0), "u": quota(2)}
    log, store, backend, coord = make(limits=limits)
    store.submit(job("t1", 2, ws="t"))
    coord.step(0.0)
    store.submit(job("u1", 2, ws="u", t=5.0))
    log.clear()
    r = coord.step(10.0)
    assert r.preempted == ["t1"]
    assert [e[2].split(":")[0] for e in log] == ["preemption", "stop grace=30"]
    assert store.preemptions[0][0] == "t1"
    coord.step(11.0)  # still stopping: no second preemption
    assert len(store.preemptions) == 1
    log.clear()
    backend.events = [Stopped("t1", 40.0)]
    r = coord.step(40.0)
    assert r.requeued == ["t1"] and r.admitted == ["u1"]
    assert log[:3] == [("store", "t1", "preempted"), ("store", "t1", "queued"), ("store", "u1", "starting")]
    t1 = store.jobs["t1"]
    assert (t1.restarts, t1.attained, t1.enqueued_at) == (1, 2 * 40.0, 40.0)


def test_repeated_events_are_ignored():
    log, store, backend, coord = make()
    store.submit(job("a", 1))
    coord.step(0.0)
    backend.events = [Exited("a", 5.0, 3), Exited("a", 5.0, 3)]
    r = coord.step(5.0)
    assert r.finished == [("a", JobState.FAILED)]


def test_cancel_a_running_job():
    log, store, backend, coord = make()
    store.submit(job("a", 1))
    coord.step(0.0)
    coord.cancel("a", 1.0)
    backend.events = [Stopped("a", 2.0)]
    assert coord.step(2.0).finished == [("a", JobState.CANCELLED)]


def test_recover_rebuilds_the_ledgers_from_the_store():
    log, store, backend, coord = make(nodes=(node("n", 2),))
    store.submit(job("a", 1))
    coord.step(0.0)
    again = Coordinator(store, backend, make_policy("fifo"), StaticInventory([node("n", 2)]))
    store.submit(job("b", 2, t=1.0))
    assert again.step(1.0).admitted == []  # GPU 0 is still held by "a"

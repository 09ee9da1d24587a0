"""Fair-share usage kept across restarts: the ledger's round trip, the SQL store's table (a real
SQLite database and a real PostgreSQL server's, migrated by the jobqueue's own Alembic
migrations), and the coordinator's batched saves, with the simulator's store and backend.
The restart of the real service is tests/platform/test_fairshare_restart.py."""

from __future__ import annotations

import math

import pytest

from flightbase_server.service import db
from flightbase_jobqueue.app import MIGRATIONS
from flightbase_jobqueue.coordinator import USAGE_SAVE_SECONDS, Coordinator
from flightbase_jobqueue.ports import Exited, Started
from flightbase_jobqueue.scheduling import make_policy
from flightbase_jobqueue.scheduling.usage import UsageLedger
from flightbase_jobqueue.sim.backend import SimBackend, VirtualClock
from flightbase_jobqueue.sim.memstore import MemStore
from flightbase_jobqueue.sim.replay import StaticInventory
from flightbase_jobqueue.store import SqlStore
from tests.helpers.databases import empty_database_url

from scheduling_factories import job, node

DAY = 86400.0


# -- the ledger -------------------------------------------------------------------------
def test_a_ledger_round_trip_keeps_every_decayed_value():
    ledger = UsageLedger(half_life=DAY)
    ledger.charge("vision", 3600.0, at=1000.0)
    ledger.charge("nlp", 500.0, at=2000.0)
    ledger.charge("vision", 7200.0, at=50_000.0)  # decays the first charge, adds the second
    saved = ledger.state()
    assert set(saved) == {"vision", "nlp"} and saved["nlp"] == (500.0, 2000.0)

    again = UsageLedger(half_life=DAY)
    again.restore(saved)
    assert not again.dirty  # nothing new to save
    for now in (50_000.0, 60_000.0, 50_000.0 + 3 * DAY):
        assert dict(again.view(now)) == pytest.approx(dict(ledger.view(now)), rel=1e-12)
    # one half-life after vision's last charge, its usage is half of what it was then
    assert again.view(50_000.0 + DAY)["vision"] == pytest.approx(saved["vision"][0] / 2)


def test_restored_usage_adds_to_what_was_charged_meanwhile():
    ledger = UsageLedger(half_life=DAY)
    ledger.charge("vision", 100.0, at=DAY)
    ledger.restore({"vision": (400.0, 0.0), "nlp": (50.0, 10.0)})
    # the saved 400 is a day old at the charge: 200, plus the 100 charged
    assert ledger.view(DAY)["vision"] == pytest.approx(300.0)
    assert ledger.view(DAY)["nlp"] == pytest.approx(50.0 * math.exp2(-(DAY - 10.0) / DAY))


def test_a_damaged_saved_row_counts_as_no_usage():
    ledger = UsageLedger()
    ledger.restore({"bad": (float("nan"), 1.0), "neg": (-5.0, 1.0), "inf": (1.0, float("inf")), "ok": (2.0, 1.0)})
    assert dict(ledger.view(1.0)) == {"ok": 2.0}


def test_a_charge_marks_the_ledger_dirty():
    ledger = UsageLedger()
    assert not ledger.dirty
    ledger.charge("w", 1.0, at=0.0)
    assert ledger.dirty


# -- the SQL store ------------------------------------------------------------------------
@pytest.fixture(params=["sqlite", "postgresql"])
def sessions(request, tmp_path):
    url = empty_database_url(request, tmp_path, request.param, "fairshare")
    engine = db.make_engine(url)
    db.upgrade(engine, MIGRATIONS)  # 0006 creates fairshare_usage
    yield db.Sessions(engine)
    engine.dispose()


def test_the_sql_store_saves_and_loads_the_ledger(sessions):
    store = SqlStore(sessions)
    assert store.load_usage() == {}
    store.save_usage({"vision": (3600.5, 1000.25), "nlp": (12.0, 999.0)})
    assert SqlStore(sessions).load_usage() == {"vision": (3600.5, 1000.25), "nlp": (12.0, 999.0)}
    store.save_usage({"vision": (4000.0, 2000.0), "audio": (1.0, 2000.0)})  # one updated, one new
    assert SqlStore(sessions).load_usage() == {"vision": (4000.0, 2000.0), "nlp": (12.0, 999.0),
                                               "audio": (1.0, 2000.0)}


def test_a_coordinator_over_the_sql_store_starts_from_the_saved_usage(sessions):
    SqlStore(sessions).save_usage({"vision": (800.0, 100.0)})
    coord = Coordinator(SqlStore(sessions), backend=None, policy=make_policy("fairshare"),
                        nodes=StaticInventory([node("n", 2)]))
    assert coord.usage.view(100.0)["vision"] == 800.0


# -- the coordinator: batched saves, and the order after a restart -------------------------
class CountingStore(MemStore):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.saves: list[dict] = []

    def save_usage(self, usage):
        self.saves.append(dict(usage))
        super().save_usage(usage)


class Events:
    """A backend whose events the test writes (start and stop do nothing)."""

    def __init__(self):
        self.events = []

    def start(self, job, placement):
        pass

    def stop(self, job_id, grace_seconds, reason):
        pass

    def poll_events(self):
        out, self.events = self.events, []
        return out


def test_saves_are_batched_and_only_when_something_was_charged():
    store = CountingStore()
    backend = Events()
    coord = Coordinator(store, backend, make_policy("fairshare"), StaticInventory([node("n", 4)]))
    for j, ws in (("a", "w1"), ("b", "w2"), ("c", "w3")):
        store.submit(job(j, 1, ws=ws))
    coord.step(0.0)
    assert store.saves == []  # nothing charged yet: nothing written
    backend.events = [Started("a", 0.0), Started("b", 0.0), Started("c", 0.0), Exited("a", 5.0, 0)]
    coord.step(5.0)
    assert store.saves == [{"w1": (5.0, 5.0)}]  # the first charge is written at once
    backend.events = [Exited("b", 8.0, 0)]
    coord.step(8.0)
    coord.step(9.0)
    assert len(store.saves) == 1  # within the interval: kept for the next write
    coord.step(5.0 + USAGE_SAVE_SECONDS)
    assert store.saves[-1] == {"w1": (5.0, 5.0), "w2": (8.0, 8.0)} and len(store.saves) == 2
    for t in range(30, 100, 5):
        coord.step(float(t))
    assert len(store.saves) == 2  # nothing charged since: no write
    backend.events = [Exited("c", 100.0, 0)]
    coord.step(100.0)
    assert len(store.saves) == 3
    assert not coord.save_usage(101.0, force=True)  # a clean stop with nothing new writes nothing
    coord.usage.charge("w3", 1.0, at=102.0)
    assert coord.save_usage(102.0, force=True)
    assert store.saves[-1]["w3"] == (pytest.approx(100.0 * math.exp2(-2.0 / (7 * DAY)) + 1.0), 102.0)


def run_heavy_then_queue_both(store: MemStore, restart: bool) -> list[str]:
    """Workspace "aaa" runs a 2-GPU job for 100 s; the coordinator is then made anew over the
    same store (a restart), and "aaa" and "zzz" each queue a 2-GPU job at once on the 2 GPUs:
    fair share admits the lighter workspace. Returns the jobs admitted by that pass."""
    clock = VirtualClock(0.0)
    backend = SimBackend({"heavy": 100.0, "a2": 10.0, "z1": 10.0}, clock)
    nodes = StaticInventory([node("n", 2)])
    coord = Coordinator(store, backend, make_policy("fairshare"), nodes)
    store.submit(job("heavy", 2, ws="aaa"))
    coord.step(0.0)
    clock.now = 100.0
    coord.step(100.0)  # heavy ends: aaa is charged 200 GPU-seconds (and it is saved)
    if restart:
        coord = Coordinator(store, backend, make_policy("fairshare"), nodes)
    clock.now = 200.0
    store.submit(job("a2", 2, ws="aaa", t=200.0))
    store.submit(job("z1", 2, ws="zzz", t=200.0))
    return coord.step(200.0).admitted


def test_after_a_restart_fair_share_orders_the_queue_by_the_saved_usage():
    assert run_heavy_then_queue_both(MemStore(), restart=False) == ["z1"]
    assert run_heavy_then_queue_both(MemStore(), restart=True) == ["z1"]


def test_without_the_saved_usage_the_order_would_differ():
    """The check above can fail: a store that forgets the usage puts "aaa" first (name order)."""

    class Forgetful(MemStore):
        def save_usage(self, usage):
            pass

    assert run_heavy_then_queue_both(Forgetful(), restart=True) == ["a2"]


def test_a_failed_write_does_not_stop_scheduling_and_is_retried():
    class Flaky(CountingStore):
        fail = True

        def save_usage(self, usage):
            if self.fail:
                self.fail = False
                raise OSError("database is locked")
            super().save_usage(usage)

    store, backend = Flaky(), Events()
    coord = Coordinator(store, backend, make_policy("fairshare"), StaticInventory([node("n", 1)]))
    store.submit(job("a", 1, ws="w1"))
    coord.step(0.0)
    backend.events = [Started("a", 0.0), Exited("a", 4.0, 0)]
    store.submit(job("b", 1, ws="w2", t=3.0))
    assert coord.step(4.0).admitted == ["b"]  # the write failed; the pass went on
    assert store.saves == [] and coord.usage.dirty
    coord.step(5.0)
    assert store.saves == [{"w1": (4.0, 4.0)}]

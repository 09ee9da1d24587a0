"""The simulated backend (backend "sim", benchmarks and tests only): its durable run log and its
recovery after a restart. Real files, fsync and the backend's own thread; the job's launch spec
comes from a small function instead of the jobqueue's database (``resolve``), which is all the
backend asks of it. A second backend on the same data directory is the restarted jobqueue."""

from __future__ import annotations

import time
from types import SimpleNamespace

from flightbase_jobqueue.backends.simulated import SimulatedBackend, audit, log_path, read_log
from flightbase_jobqueue.ports import Exited, Started, Stopped
from flightbase_jobqueue.scheduling.types import Job


def job(jid: str) -> Job:
    return Job(id=jid, workspace="w", gpus=1, submitted_at=0.0)


def resolver(seconds: dict[str, float]):
    return lambda jid: SimpleNamespace(env={"SIM_SECONDS": str(seconds[jid])} if jid in seconds else {})


def events_until(backend, n: int, timeout: float = 15.0) -> list:
    got, deadline = [], time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        got += backend.poll_events()
        time.sleep(0.01)
    return got


def test_a_job_runs_for_its_declared_duration_and_every_record_is_on_disk(tmp_path):
    b = SimulatedBackend(tmp_path, resolver({"a": 30.0, "b": 40.0}), speed=100.0)  # 0.3 s and 0.4 s
    try:
        began = time.time()
        b.start(job("a"), {"local": (0,)})
        b.start(job("b"), {"local": (1,)})
        b.start(job("a"), {"local": (0,)})  # idempotent
        got = events_until(b, 4)
        kinds = [(type(e).__name__, e.job_id) for e in got]
        assert sorted(kinds[:2]) == [("Started", "a"), ("Started", "b")]
        assert sorted(kinds[2:]) == [("Exited", "a"), ("Exited", "b")]
        ends = {e.job_id: e.at - began for e in got if isinstance(e, Exited)}
        assert 0.25 <= ends["a"] < 10 and 0.35 <= ends["b"] < 10  # not before its time (late only under load)
        lines = log_path(tmp_path).read_text().splitlines()
        assert [line.split()[:3] for line in lines if line.startswith("start")] in (
            [["start", "a", "0"], ["start", "b", "0"]], [["start", "b", "0"], ["start", "a", "0"]])
        assert audit(log_path(tmp_path), ["a", "b"])["completed_once"] == 2
    finally:
        b.close()


def test_a_stop_is_recorded_and_the_next_start_is_a_new_run(tmp_path):
    b = SimulatedBackend(tmp_path, resolver({"a": 0.3}), speed=0.01)  # 30 s
    try:
        b.start(job("a"), {"local": (0,)})
        assert isinstance(events_until(b, 1)[0], Started)
        b.stop("a", 5.0, "preempted")
        assert isinstance(events_until(b, 1)[0], Stopped)
        b.speed = 1.0
        b.start(job("a"), {"local": (0,)})
        assert [type(e) for e in events_until(b, 2)] == [Started, Exited]
    finally:
        b.close()
    j = read_log(log_path(tmp_path))["a"]
    assert (j.starts, j.stops, j.ends, j.overlaps) == (2, 1, 1, 0)
    assert audit(log_path(tmp_path), ["a"])["completed_once"] == 1


def test_after_a_restart_a_running_job_goes_on_and_ends_at_its_recorded_time(tmp_path):
    first = SimulatedBackend(tmp_path, resolver({"a": 0.8, "done": 0.0}), speed=1.0)
    first.start(job("a"), {"local": (0,)})
    first.start(job("done"), {"local": (1,)})
    events_until(first, 3)
    first.close()  # as a SIGKILL leaves it: the start of "a" is on disk, its end is not
    began = time.time()
    ends_at = read_log(log_path(tmp_path))["a"].ends_at

    second = SimulatedBackend(tmp_path, resolver({"a": 0.8}), speed=1.0)
    try:
        assert second.reattach("a") is None  # still running
        assert second.reattach("done") == "exited"  # ended before: reported again
        second.start(job("a"), {"local": (0,)})  # no second run of a running job
        got = events_until(second, 2)
        assert {(type(e), e.job_id) for e in got} == {(Exited, "a"), (Exited, "done")}
        end = next(e for e in got if e.job_id == "a")
        assert ends_at - 0.01 <= end.at < ends_at + 5 and end.at >= began  # at its recorded end (late under load)
    finally:
        second.close()
    result = audit(log_path(tmp_path), ["a", "done"])
    assert (result["completed_once"], result["lost"], result["run_twice"]) == (2, 0, 0)


def test_a_job_that_ran_to_its_end_still_has_its_log_its_end_and_its_run_count(tmp_path):
    """Of a job whose run ended the backend keeps its number of runs alone (the rest is in the
    run log): its log, a repeat of its end and the numbering of any later run come out the same."""
    b = SimulatedBackend(tmp_path, resolver({"a": 0.05, "b": 30.0}), speed=1.0)
    try:
        b.start(job("a"), {"local": (0,)})
        b.start(job("b"), {"local": (1,)})
        got = events_until(b, 3)
        assert {(type(e), e.job_id) for e in got} == {(Started, "a"), (Started, "b"), (Exited, "a")}
        log_a = b.log_tail(SimpleNamespace(job_id="a"), 4096).decode()
        assert log_a.startswith("flightbase sim: run 0 started at ") and ", ended at " in log_a
        assert ", ended at " not in b.log_tail(SimpleNamespace(job_id="b"), 4096).decode()
        assert b.log_from(SimpleNamespace(job_id="a"), 0) == log_a.encode()
        assert b.reattach("a") == "exited"
        assert [(type(e), e.job_id, e.exit_code) for e in events_until(b, 1)] == [(Exited, "a", 0)]
        b.start(job("a"), {"local": (0,)})  # started again (as after a lost end): its second run
        assert [type(e) for e in events_until(b, 2)] == [Started, Exited]
        assert b.log_tail(SimpleNamespace(job_id="a"), 4096).decode().count("started at") == 2
        b.stop("a", 5.0, "cancelled")  # a stop of a job with no run going on: nothing
        b.stop("b", 5.0, "cancelled")
        assert [(type(e), e.job_id) for e in events_until(b, 1)] == [(Stopped, "b")]
    finally:
        b.close()
    assert [line.split()[:3] for line in log_path(tmp_path).read_text().splitlines() if " a " in line] == [
        ["start", "a", "0"], ["end", "a", "0"], ["start", "a", "1"], ["end", "a", "1"]]
    again = SimulatedBackend(tmp_path, resolver({}), speed=1.0)  # the jobqueue restarted
    try:
        assert again.reattach("a") == "exited"
        assert again.log_tail(SimpleNamespace(job_id="a"), 4096).decode().count("ended at") == 2
    finally:
        again.close()


def test_a_job_whose_start_never_reached_the_disk_is_started_on_recovery(tmp_path):
    b = SimulatedBackend(tmp_path, resolver({"x": 0.05}), speed=1.0)
    try:
        assert b.reattach("x") is None
        assert [type(e) for e in events_until(b, 2)] == [Started, Exited]
        assert b.reattach("never", stopping=True) == "exited"  # asked to stop before it started
        assert [type(e) for e in events_until(b, 1)] == [Stopped]
    finally:
        b.close()


def test_the_audit_spots_lost_and_duplicated_runs_and_ignores_a_torn_line(tmp_path):
    path = log_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text("start a 0 1.0 2.0\nend a 0 2.0 0\n"           # once
                    "start b 0 1.0 2.0\nstart b 1 1.5 2.5\nend b 1 2.5 0\n"  # started while running
                    "start c 0 1.0 2.0\nend c 0 2.0 0\nstart c 1 3.0 4.0\nend c 1 4.0 0\n"  # completed twice
                    "start d 0 1.0 2.0\nstop d 0 1.5\n"             # stopped, never completed
                    "start e 0 1.0 2.0\nend e 0 2")                 # torn last line: never written whole
    result = audit(path, ["a", "b", "c", "d", "e"])
    assert result["completed_once"] == 1
    assert result["lost"] == 2 and set(result["examples"]["lost"]) == {"d", "e"}
    assert result["run_twice"] == 2 and set(result["examples"]["run_twice"]) == {"b", "c"}
    assert result["still_running"] == 1  # e


def test_speed_must_be_positive(tmp_path):
    import pytest

    with pytest.raises(ValueError, match="sim_speed"):
        SimulatedBackend(tmp_path, resolver({}), speed=0)


def test_only_the_operators_settings_choose_it(tmp_path):
    import pytest

    from flightbase_server.platform import UsageError, choose_backend, sim_speed
    from flightbase_server.settings import PlatformSettings
    from flightbase_jobqueue.backends import make_backend

    assert choose_backend({"FLIGHTBASE_BACKEND": "sim"})[0] == "sim"
    with pytest.raises(UsageError, match="FLIGHTBASE_BACKEND: 'simulated' is not a backend"):
        choose_backend({"FLIGHTBASE_BACKEND": "simulated"})
    assert sim_speed({}) == 1.0 and sim_speed({"FLIGHTBASE_SIM_SPEED": "10"}) == 10.0
    for bad in ("0", "-1", "fast", "inf", "nan"):
        with pytest.raises(UsageError, match="FLIGHTBASE_SIM_SPEED"):
            sim_speed({"FLIGHTBASE_SIM_SPEED": bad})
    settings = PlatformSettings(data_dir=tmp_path, backend="sim", sim_speed=4.0,
                                gpus=tuple({"index": i, "kind": "cpu-slot"} for i in range(3)))
    backend, inventory = make_backend(settings, resolver({}))
    try:
        assert isinstance(backend, SimulatedBackend) and backend.speed == 4.0
        assert [n.total for n in inventory.nodes()] == [3]
        assert PlatformSettings.from_env({**settings.to_env()}).sim_speed == 4.0
    finally:
        backend.close()

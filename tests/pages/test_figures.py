"""The dashboards' figures (flightbase_jobqueue.figures): pure functions, as tables."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from flightbase_jobqueue import figures
from flightbase_jobqueue.scheduling.insight import QueueInsight

TODAY = dt.date(2026, 3, 10)


def job(id="j1", state="running", gpus=1, kind="training", placement=None, started_at=100.0, finished_at=None,
        workspace="ws", user="ana", training_id="t1", priority=0, restarts=0, held=False, submitted_at=50.0, reason=None):
    return SimpleNamespace(id=id, state=state, gpus=gpus, kind=kind, placement=placement, started_at=started_at,
                           finished_at=finished_at, workspace=workspace, created_by=user, training_id=training_id,
                           name=f"{training_id}-0", priority=priority, restarts=restarts, held=held,
                           submitted_at=submitted_at, reason=reason)


def training(id="t1", name="resnet", kind="script", user="ana"):
    return SimpleNamespace(id=id, name=name, kind=kind, created_by=user)


@pytest.mark.parametrize(("jobs", "quota", "expected"), [
    ([], 4, dict(in_use=0, trainings=0, notebooks=0, borrowed=0, percent=0)),
    ([job(gpus=2), job(id="j2", gpus=1, kind="lease")], 4, dict(in_use=3, trainings=2, notebooks=1, borrowed=0, percent=75)),
    ([job(gpus=4), job(id="j2", gpus=2)], 4, dict(in_use=6, trainings=6, notebooks=0, borrowed=2, percent=150)),
    ([job(gpus=2), job(id="q", state="queued", gpus=8), job(id="e", state="succeeded", gpus=8)], 4,
     dict(in_use=2, trainings=2, notebooks=0, borrowed=0, percent=50)),
    ([job(gpus=3)], None, dict(in_use=3, trainings=3, notebooks=0, borrowed=0, percent=None)),
    ([job(gpus=1, state="starting")], 0, dict(in_use=1, trainings=1, notebooks=0, borrowed=1, percent=None)),
], ids=["idle", "training-and-notebook", "borrowing", "only-active-count", "no-quota", "quota-0"])
def test_gpu_figure(jobs, quota, expected):
    got = figures.gpu_figure(jobs, quota, cluster_total=8, cluster_free=5)
    assert got.model_dump() == {**expected, "quota": quota, "cluster_total": 8, "cluster_free": 5}


@pytest.mark.parametrize(("start", "end", "state", "days_left", "note"), [
    (None, None, "unlimited", None, None),
    (dt.date(2026, 3, 1), dt.date(2026, 3, 31), "open", 22, None),
    (None, TODAY, "open", 1, None),
    (dt.date(2026, 3, 11), None, "not-started", None, "the workspace starts on 2026-03-11"),
    (dt.date(2026, 3, 11), dt.date(2026, 3, 20), "not-started", 11, "the workspace starts on 2026-03-11"),
    (None, dt.date(2026, 3, 9), "ended", 0, "the workspace ended on 2026-03-09"),
], ids=["unlimited", "open", "last-day", "not-started", "not-started-with-end", "ended"])
def test_window_figure(start, end, state, days_left, note):
    got = figures.window_figure(start, end, TODAY)
    assert (got.state, got.days_left, got.note) == (state, days_left, note)


@pytest.mark.parametrize(("placement", "readings", "expected"), [
    ({"local": [0, 1]}, {("local", 0): {"utilisation_percent": 50}, ("local", 1): {"utilisation_percent": 91}}, 70.5),
    ({"local": [0, 1]}, {("local", 0): {"utilisation_percent": 50}}, None),  # one unread: unknown
    ({"local": [0]}, {}, None),
    ({}, {}, None),
    (None, {}, None),
])
def test_utilisation(placement, readings, expected):
    assert figures.utilisation(placement, readings) == expected


def test_running_rows_leave_out_notebooks_and_waiting_jobs():
    jobs = [job(id="late", started_at=200.0, placement={"n2": [3], "n1": [0]}, gpus=2),
            job(id="early", started_at=100.0, placement={"local": [1]}, restarts=2, priority=5),
            job(id="nb", kind="lease"), job(id="q", state="queued", started_at=None),
            job(id="starting", state="starting", started_at=None)]
    rows = figures.running_rows(jobs, {"t1": training()}, now=250.0,
                                readings={("local", 1): {"utilisation_percent": 40}})
    assert [(r.job_id, r.elapsed_seconds, r.hosts, r.utilisation_percent) for r in rows] == [
        ("early", 150.0, ["local"], 40.0), ("late", 50.0, ["n1", "n2"], None), ("starting", None, [], None)]
    assert rows[0].name == "resnet" and (rows[0].restarts, rows[0].priority) == (2, 5)


def test_queue_rows_in_queue_order_with_held_ones_last():
    insights = {"b": QueueInsight(job_id="b", position=1, workspace_position=1, estimated_start=300.0, reason="needs 2 GPUs"),
                "a": QueueInsight(job_id="a", position=3, workspace_position=2, estimated_start=None, reason="quota")}
    jobs = [job(id="a", state="queued"), job(id="b", state="preempted"), job(id="h", state="queued", held=True),
            job(id="new", state="queued", submitted_at=10.0), job(id="r")]
    rows = figures.queue_rows(jobs, insights, {})
    assert [(r.job_id, r.position, r.reason) for r in rows] == [
        ("b", 1, "needs 2 GPUs"), ("a", 3, "quota"),
        ("new", None, "waiting for the next scheduling pass"),
        ("h", None, "held: waits for earlier jobs of its sweep (or the sweep is paused)")]
    assert rows[0].estimated_start == 300.0 and rows[0].name == "t1-0"  # no training row: the job's name


def test_a_held_jobs_reason_names_its_sweeps_parallel_or_the_pause():
    """The dashboard's queue and ``GET /queue`` say why a held job waits, from its training."""
    sweep = lambda k, state="running": SimpleNamespace(  # noqa: E731
        id="t1", name="sweep", kind="script", created_by="ana", state=state, spec=SimpleNamespace(parallel=k))
    jobs = [job(id="h", state="queued", held=True)]
    assert [r.reason for r in figures.queue_rows(jobs, {}, {"t1": sweep(3)})] == [
        "held: its sweep runs 3 jobs at a time; joins the queue when one of its earlier jobs ends"]
    assert figures.held_reason(sweep(1)) == "held: its sweep runs 1 job at a time; joins the queue when one of its earlier jobs ends"
    assert figures.held_reason(sweep(3, "paused")) == "held: its training is paused; resume it to release its jobs"


@pytest.mark.parametrize(("states", "expected"), [
    ([], None), (["running"], None), (["succeeded", "queued"], None), (["succeeded"], "succeeded"),
    (["succeeded", "failed"], "failed"), (["cancelled"], "cancelled"), (["cancelled", "succeeded"], "succeeded"),
])
def test_outcome(states, expected):
    assert figures.outcome(states) == expected


def test_recent_trainings_latest_end_first_without_live_or_jupyter_ones():
    trainings = [training("t1"), training("t2", name="sweep"), training("live"), training("nb", kind="jupyter")]
    jobs_of = {"t1": [job(training_id="t1", state="failed", started_at=10.0, finished_at=40.0)],
               "t2": [job(id="a", training_id="t2", state="succeeded", started_at=5.0, finished_at=20.0),
                      job(id="b", training_id="t2", state="succeeded", started_at=30.0, finished_at=90.0)],
               "live": [job(training_id="live")], "nb": [job(training_id="nb", state="cancelled", finished_at=99.0)]}
    rows = figures.recent_trainings(trainings, jobs_of, limit=10)
    assert [(r.training_id, r.outcome, r.jobs, r.duration_seconds) for r in rows] == [
        ("t2", "succeeded", 2, 85.0), ("t1", "failed", 1, 30.0)]
    assert [r.training_id for r in figures.recent_trainings(trainings, jobs_of, limit=1)] == ["t2"]


def test_notebook_rows_idle_time():
    leases = [(job(id="l1", kind="lease", placement={"local": [2]}, started_at=100.0, reason="idle for 50 min"), "gpu"),
              (job(id="l2", kind="lease", placement={"local": [0]}, started_at=150.0), ""),
              (job(id="l3", kind="lease", state="queued", started_at=None), "later")]
    rows = figures.notebook_rows(leases, {"l1": 200.0}, now=400.0)
    assert [(r.lease_id, r.server, r.gpus, r.held_seconds, r.idle_seconds, r.note) for r in rows] == [
        ("l1", "gpu", [2], 300.0, 200.0, "idle for 50 min"), ("l2", "", [0], 250.0, None, None)]


@pytest.mark.parametrize(("storage", "expected"), [
    (None, None),
    ({"used_bytes": 250, "quota_bytes": 1000, "datasets_bytes": 200, "images_bytes": 50}, (250, 1000, 25)),
    ({"used_bytes": 10, "quota_bytes": None}, (10, None, None)),
    ({}, (0, None, None)),
])
def test_storage_figure(storage, expected):
    got = figures.storage_figure(storage)
    assert (got if got is None else (got.used_bytes, got.quota_bytes, got.percent)) == expected


def test_image_rows_own_ones_first():
    rows = figures.image_rows([{"name": "notebook", "builtin": True}, {"name": "zeta", "reference": "x:1"},
                               {"name": "alpha", "source": "upload", "size_bytes": 5}])
    assert [(r.name, r.builtin, r.source) for r in rows] == [
        ("alpha", False, "upload"), ("zeta", False, "reference"), ("notebook", True, "reference")]


def test_slot_rows_every_slot_with_its_holder():
    slots = [{"index": 0, "kind": "gpu", "name": "A100 0", "memory_bytes": 80}, {"index": 1, "kind": "gpu"},
             {"index": 2, "kind": "gpu", "name": "A100 2"}]
    jobs = [job(id="j", placement={"local": [0, 2], "other": [1]}, started_at=7.0, workspace="vision"),
            job(id="q", state="queued", placement={"local": [1]})]
    rows = figures.slot_rows("local", slots, jobs, {"t1": training()},
                             {("local", 2): {"utilisation_percent": 80, "memory_used_bytes": 3, "memory_total_bytes": 9}})
    assert [(r.index, r.name, r.holder and r.holder.job_id, r.since) for r in rows] == [
        (0, "A100 0", "j", 7.0), (1, "GPU 1", None, None), (2, "A100 2", "j", 7.0)]
    assert rows[0].holder.workspace == "vision" and rows[0].holder.name == "resnet"
    assert (rows[0].memory_total_bytes, rows[0].utilisation_percent) == (80, None)
    assert (rows[2].utilisation_percent, rows[2].memory_used_bytes, rows[2].memory_total_bytes) == (80, 3, 9)


def workspace(name, members=(), managers=(), **settings):
    s = SimpleNamespace(gpu_quota=settings.get("gpu_quota"), allow_borrowing=True, max_gpus_per_job=None,
                        start_date=None, end_date=settings.get("end_date")) if settings.get("configured", True) else None
    return SimpleNamespace(name=name, members=tuple(members), managers=tuple(managers), settings=s,
                           settings_errors=settings.get("errors", {}))


def test_workspace_and_user_rows():
    spaces = [workspace("vision", ["ana", "bo"], ["bo"], gpu_quota=2),
              workspace("nlp", ["ana"], gpu_quota=None, end_date=dt.date(2026, 3, 1)),
              workspace("raw", ["cy"], configured=False, errors={"gpu_quota": "not a number"})]
    jobs = [job(workspace="vision", gpus=3), job(id="2", workspace="vision", state="queued"),
            job(id="3", workspace="nlp", state="preempted"), job(id="4", workspace="nlp", gpus=1, kind="lease")]
    rows = {r.name: r for r in figures.workspace_rows(spaces, jobs, TODAY)}
    assert list(rows) == ["nlp", "raw", "vision"]
    assert (rows["vision"].in_use, rows["vision"].borrowed, rows["vision"].queued, rows["vision"].quota) == (3, 1, 1, 2)
    assert (rows["nlp"].in_use, rows["nlp"].borrowed, rows["nlp"].queued, rows["nlp"].window.state) == (1, 0, 1, "ended")
    assert rows["raw"].window is None and rows["raw"].settings_errors == {"gpu_quota": "not a number"}
    users = figures.user_rows(spaces)
    assert [(u.name, [(w.workspace, w.manager) for w in u.workspaces]) for u in users] == [
        ("ana", [("nlp", False), ("vision", False)]), ("bo", [("vision", True)]), ("cy", [("raw", False)])]

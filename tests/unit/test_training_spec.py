"""The typed training spec (flightbase_jobqueue.training_spec).

Every form a version of the jobqueue stored reads back as it was stored (the API's ``spec`` does not
change), bad stored data is a ``SpecError`` naming the key when the row is read, and migration 0007
reshapes the first version's rows. The forms are the ones the code history shows each version
writing (``api/trainings.py``, ``api/leases.py``, ``api/builtin.py``); the database tests run on a
real SQLite database and, where the run has one, a real PostgreSQL server, migrated as the service
migrates them, and read through the real runtime.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.exc import StatementError

from flightbase_server import gpus
from flightbase_server.service import db
from flightbase_server.settings import PlatformSettings
from flightbase_jobqueue import models
from flightbase_jobqueue.app import MIGRATIONS
from flightbase_jobqueue.schemas import SweepSpec, TrainingCreate
from flightbase_jobqueue.training_spec import DEFAULT_IMAGE, SpecError, SweepSettings, TrainingSpec
from tests.helpers.databases import engine_fixture, migrate_jobqueue

DATASET = {"name": "mnist", "version": 3, "path": "/data/datasets/vision/mnist/3"}
SWEEP = {"grid": {"lr": [0.1, 0.01], "amp": [True, False], "layers": [2, 4]}, "runs": None, "parallel": 2,
         "metric": "loss", "goal": "min"}
# What POST /trainings stored from the first version that ran jobs (2832288): the request less its
# workspace, name and description.
REQUEST = {"entrypoint": "train.py", "args": ["--epochs", "3"], "code_id": "c0ffee", "gpus": 2, "gpus_per_node": None,
           "launcher": "torchrun", "image": "training-base", "datasets": ["mnist"], "env": {"SEED": "1"},
           "max_runtime": 3600.0, "priority": 5, "preemptible": True, "gpudirect_p2p": False,
           "gpudirect_rdma": True, "sweep": SWEEP}
FORMS = {
    "empty (tests' rows)": {},
    "request only (2832288)": REQUEST,
    "with dataset versions (52fdb81)": {**REQUEST, "dataset_versions": [DATASET]},
    "built-in (29aa999)": {**REQUEST, "sweep": None, "code_id": None, "dataset_versions": [DATASET],
                           "builtin_model": "mnist-cnn",
                           "builtin": {"model": "mnist-cnn", "dataset": "mnist", "params": {"epochs": 2},
                                       "options": {"mixed_precision": False, "grad_accumulation": 1}}},
    "built-in without a dataset": {**REQUEST, "dataset_versions": [], "builtin_model": "synthetic",
                                   "builtin": {"model": "synthetic", "dataset": None, "params": {}, "options": {}}},
    "with an image reference (d73d0c1, today's)": {**REQUEST, "dataset_versions": [DATASET],
                                                   "image_reference": "127.0.0.1:5000/vision/training-base:1"},
    "a sweep of explicit runs": {**REQUEST, "sweep": {**SWEEP, "grid": None,
                                                      "runs": [{"lr": 0.1, "tag": "a"}, {"lr": 1, "tag": "b"}]}},
    "a lease (f28b06a)": {"server": "gpu", "gpus": 1, "image": "notebook", "dataset_versions": [DATASET]},
}
# The first version (35b81f2, revision 0001) stored the request's command line.
FIRST_VERSION = {"command": ["train.py", "--epochs", "3"], "gpus": 1, "launcher": "none",
                 "image": "flightbase/training-base", "env": {"A": "b"}}


@pytest.mark.parametrize("form", FORMS.values(), ids=FORMS.keys())
def test_every_stored_form_reads_back_byte_for_byte(form):
    spec = TrainingSpec.from_json(form)
    assert json.dumps(spec.to_json()) == json.dumps(form)
    assert TrainingSpec.from_json(spec.to_json()) == spec


def test_a_lease_stored_before_reads_back_with_its_keys_in_the_models_order():
    stored = {"server": "", "image": "notebook", "gpus": 1, "dataset_versions": []}  # api/leases.py until now
    out = TrainingSpec.from_json(stored).to_json()
    assert out == stored and list(out) == ["server", "gpus", "image", "dataset_versions"]


def test_what_post_trainings_stores_now_reads_back_as_stored():
    """The spec as ``create_training_from`` builds it, from a validated request."""
    body = TrainingCreate(workspace="vision", name="n", entrypoint="train.py", args=["-v"], gpus=4, gpus_per_node=2,
                          launcher="horovod", datasets=["mnist@3"], env={"A": "1"}, secret_env={"TOKEN": "s"},
                          max_runtime=60, gpudirect_p2p=True, sweep={"grid": "lr=[0.1,0.01] bs=[32]", "parallel": 3})
    body.sweep.grid = {"lr": [0.1, 0.01], "bs": [32]}  # what sweeps.grid_of makes of the text, as the API does
    stored = {**body.model_dump(exclude={"workspace", "name", "description", "secret_env"}, mode="json"),
              "dataset_versions": [DATASET], "image_reference": "ref"}
    spec = TrainingSpec.model_validate(stored)
    assert json.dumps(spec.to_json()) == json.dumps(stored)
    assert "secret_env" not in spec.to_json() and "TOKEN" not in json.dumps(spec.to_json())
    assert (spec.entrypoint, spec.args, spec.launcher, spec.parallel, spec.max_runtime) == (
        "train.py", ["-v"], "horovod", 3, 60.0)
    assert spec.dataset_versions[0].version == 3 and spec.sweep.grid == {"lr": [0.1, 0.01], "bs": [32]}


def test_the_model_holds_every_field_of_a_request():
    """A field added to TrainingCreate (or SweepSpec) must be added here, or POST /trainings fails."""
    stored_fields = set(TrainingCreate.model_fields) - {"workspace", "name", "description", "secret_env"}
    assert stored_fields <= set(TrainingSpec.model_fields)
    assert list(SweepSpec.model_fields) == list(SweepSettings.model_fields)
    # in the request's order, so that a training's spec reads back in the order it was written
    in_model = [f for f in TrainingSpec.model_fields if f in stored_fields]
    assert in_model == [f for f in TrainingCreate.model_fields if f in stored_fields]


def test_an_empty_spec_gives_what_its_readers_assumed():
    spec = TrainingSpec.from_json({})
    assert spec.to_json() == {}
    assert (spec.server, spec.entrypoint, spec.args, spec.launcher, spec.env, spec.code_id) == ("", None, [], "none",
                                                                                                  {}, None)
    assert (spec.image, spec.image_or_default, spec.image_reference) == ("", DEFAULT_IMAGE, "")
    assert (spec.dataset_versions, spec.sweep, spec.parallel, spec.builtin_model) == ([], None, 1, None)
    assert (spec.gpudirect_p2p, spec.gpudirect_rdma) == (False, False)


@pytest.mark.parametrize("stored, names", [
    ({"gpus": "2"}, "gpus: Input should be a valid integer"),
    ({"entrypoint": "t.py", "args": "--epochs 3"}, "args: Input should be a valid list"),
    ({"env": {"A": 1}}, "env.A: Input should be a valid string"),
    ({"dataset_versions": [{"name": "mnist", "path": "/d"}]}, "dataset_versions.0.version: Field required"),
    ({"dataset_versions": [{**DATASET, "version": "3"}]}, "dataset_versions.0.version: Input should be a valid integer"),
    ({"sweep": {**SWEEP, "goal": "up"}}, "sweep.goal: Input should be 'min' or 'max'"),
    ({"gpudirect_rdma": "yes"}, "gpudirect_rdma: Input should be a valid boolean"),
    (FIRST_VERSION, "command: Extra inputs are not permitted"),
    ({"colour": "red"}, "colour: Extra inputs are not permitted"),
    (["train.py"], "a JSON object is expected, not list"),
    ("train.py", "a JSON object is expected, not str"),
])
def test_bad_stored_data_is_a_spec_error_that_names_the_key(stored, names):
    with pytest.raises(SpecError) as caught:
        TrainingSpec.from_json(stored)
    assert str(caught.value).startswith("invalid training spec: ") and names in str(caught.value)


def test_a_spec_is_frozen():
    spec = TrainingSpec.from_json(FORMS["a lease (f28b06a)"])
    with pytest.raises(ValidationError, match="frozen"):
        spec.server = "other"


# -- in a database -----------------------------------------------------------------------------------------

RAW = sa.table("trainings", sa.column("id", sa.String()), sa.column("workspace", sa.String()),
               sa.column("name", sa.String()), sa.column("kind", sa.String()), sa.column("created_by", sa.String()),
               sa.column("spec", sa.JSON()), sa.column("state", sa.String()))


def raw_row(training_id: str, spec) -> dict:
    return dict(id=training_id, workspace="vision", name=training_id, kind="advanced", created_by="ann", spec=spec,
                state="active")


engine = engine_fixture("training_spec_")


def test_the_migration_reshapes_the_first_versions_rows_and_leaves_the_others(engine):
    """A database from the first version (a training with ``command``), used by every version since
    (one row of each form), upgraded to the newest revision."""
    migrate_jobqueue(engine, "0001")
    with engine.begin() as conn:
        conn.execute(RAW.insert(), [raw_row("v0", FIRST_VERSION), raw_row("v0-only-entry", {"command": ["run.sh"]}),
                                    raw_row("v0-broken", {"command": [], "gpus": 1})])
    migrate_jobqueue(engine, "0006")
    names = {f"t{i}": form for i, form in enumerate(FORMS.values())}
    with engine.begin() as conn:
        conn.execute(RAW.insert(), [raw_row(name, form) for name, form in names.items()])
    db.upgrade(engine, MIGRATIONS)

    sessions = db.Sessions(engine)
    with sessions() as s:
        v0 = s.get(models.Training, "v0").spec
        assert v0.to_json() == {"entrypoint": "train.py", "args": ["--epochs", "3"], "gpus": 1, "launcher": "none",
                                "image": "flightbase/training-base", "env": {"A": "b"}}
        assert list(v0.to_json()) == ["entrypoint", "args", "gpus", "launcher", "image", "env"]
        assert (s.get(models.Training, "v0-only-entry").spec.to_json()) == {"entrypoint": "run.sh", "args": []}
        for name, form in names.items():
            assert s.get(models.Training, name).spec.to_json() == form, name
    with engine.connect() as conn:  # a command it cannot split is left for the model to name
        assert conn.execute(sa.select(RAW.c.spec).where(RAW.c.id == "v0-broken")).scalar_one() == {"command": [],
                                                                                                   "gpus": 1}
    with sessions() as s, pytest.raises(SpecError, match="command: Extra inputs are not permitted"):
        s.get(models.Training, "v0-broken")


def test_a_bad_row_is_a_spec_error_when_read_and_a_bad_dict_is_refused_when_written(engine):
    db.upgrade(engine, MIGRATIONS)
    with engine.begin() as conn:
        conn.execute(RAW.insert(), [raw_row("bad", {"entrypoint": "t.py", "gpus": "two"})])
    sessions = db.Sessions(engine)
    with sessions() as s, pytest.raises(SpecError, match="gpus: Input should be a valid integer"):
        s.get(models.Training, "bad")
    with pytest.raises(StatementError) as caught, engine.begin() as conn:
        conn.execute(models.Training.__table__.insert(), [raw_row("worse", {"entrypoint": 3})])
    assert isinstance(caught.value.orig, SpecError) and "entrypoint" in str(caught.value.orig)
    with sessions.begin() as s:  # a dict given to the ORM is a spec at once, and stored as given
        t = models.Training(**raw_row("fine", FORMS["a lease (f28b06a)"]))
        assert isinstance(t.spec, TrainingSpec) and t.spec.server == "gpu"
        s.add(t)
    with engine.connect() as conn:
        assert conn.execute(sa.select(RAW.c.spec).where(RAW.c.id == "fine")).scalar_one() == FORMS["a lease (f28b06a)"]


def test_the_runtime_starts_a_job_from_the_spec_and_names_a_spec_that_cannot_start_one(tmp_path):
    """``JobRuntime.resolve`` (what a backend calls to start a job), on a real database; the runtime
    is built as the service builds it (local backend) but not started."""
    from flightbase_jobqueue.runtime import JobRuntime

    engine = db.make_engine(f"sqlite:///{tmp_path / 'jq.sqlite'}")
    db.upgrade(engine, MIGRATIONS)
    sessions = db.Sessions(engine)
    job = dict(workspace="vision", seq=0, kind="training", gpus=2, priority=0, preemptible=True, state="queued",
               held=False, submitted_at=0.0, attained=0.0, restarts=0, stopping=False, cancel_requested=False,
               created_by="ann")
    with sessions.begin() as s:
        s.add(models.Training(**raw_row("t", FORMS["with an image reference (d73d0c1, today's)"])))
        s.add(models.Training(**raw_row("lease", FORMS["a lease (f28b06a)"])))
    with sessions.begin() as s:
        s.add(models.Job(id="j", training_id="t", name="t #0", params={"lr": 0.1}, **job))
        s.add(models.Job(id="k", training_id="lease", name="lease", params={}, **job))
    (tmp_path / "data").mkdir(mode=0o755)
    settings = PlatformSettings(data_dir=tmp_path / "data", gpus=tuple(gpus.cpu_slots(2)))

    async def resolve():
        runtime = JobRuntime(settings, sessions, code_root=tmp_path / "code")
        return runtime.resolve("j"), runtime

    launch, runtime = asyncio.run(resolve())
    assert (launch.entrypoint, launch.launcher, launch.image, launch.image_reference) == (
        "train.py", "torchrun", "training-base", "127.0.0.1:5000/vision/training-base:1")
    assert launch.args[:2] == ("--epochs", "3") and len(launch.args) > 2  # the sweep's parameters follow
    assert launch.code_dir == tmp_path / "code" / "c0ffee" and launch.env == {"SEED": "1"}
    assert [(d.name, d.version, d.path) for d in launch.datasets] == [("mnist", 3, Path(DATASET["path"]))]
    assert (launch.gpudirect_p2p, launch.gpudirect_rdma) == (False, True)
    with pytest.raises(SpecError, match="training lease's spec has no entrypoint"):
        runtime.resolve("k")
    engine.dispose()

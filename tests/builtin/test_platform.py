"""Built-in trainings end to end: the catalogue, a dataset uploaded through the registry, two
Horovod workers on CPU slots through the real hub and jobqueue, metrics and artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flightbase.uploads import upload
from flightbase.client import Client
from tests.platform.world import logs, wait_idle, wait_job

pytestmark = pytest.mark.slow

FAST = {
    "image_classification": {"epochs": 3, "batch_size": 8, "width": 8, "image_size": 16},
    "text_classification": {"epochs": 3, "batch_size": 8, "max_length": 16, "d_model": 32, "heads": 2, "layers": 1},
    "tabular": {"epochs": 4, "batch_size": 16, "ignore_columns": "label"},
}
DATA = {"image_classification": "images", "text_classification": "text", "tabular": "tabular"}


@pytest.fixture
def uploaded(platform, world, datasets):
    with Client(platform.url, world.tokens["owner"]) as c:
        for name, path in datasets.items():
            upload(c, world.workspace, name, [path], quiet=True)
    # the world's sleeping training holds a slot that these jobs need
    platform.api("jobqueue", "POST", f"trainings/{world.training_id}/cancel", world.tokens["owner"])
    wait_idle(platform)
    return world


def create(platform, world, **body):
    return platform.api("jobqueue", "POST", "builtin-trainings", world.tokens["owner"],
                        json={"workspace": world.workspace, **body})


def test_catalogue_lists_every_model_with_its_parameters(platform, world):
    models = platform.api("jobqueue", "GET", "builtin-models", world.tokens["member"]).json()
    assert [m["name"] for m in models] == ["image_classification", "synthetic_benchmark", "tabular", "text_classification"]
    one = platform.api("jobqueue", "GET", "builtin-models/tabular", world.tokens["outsider"]).json()
    assert one["parameters"]["lr"] == {"type": "number", "default": 0.003, "minimum": 1e-06, "maximum": 1.0, "enum": None,
                                       "maxLength": None, "help": one["parameters"]["lr"]["help"]}
    missing = platform.api("jobqueue", "GET", "builtin-models/nope", world.tokens["member"])
    assert missing.status_code == 404 and "nope" in missing.json()["message"]


def test_bad_requests_are_refused_before_anything_is_queued(platform, world):
    before = len(platform.api("jobqueue", "GET", "trainings", world.tokens["owner"], params={"workspace": world.workspace}).json())
    resp = create(platform, world, name="bad", model="tabular", dataset=world.dataset,
                  params={"lr": 5, "epochs": "many", "nope": 1}, options={"grad_accumulation": 2}, gpus=9)
    assert resp.status_code == 422
    assert resp.json()["errors"] == {"params.lr": "must be at most 1", "params.epochs": "must be an integer",
                                     "params.nope": resp.json()["errors"]["params.nope"], "gpus": "tabular runs on at most 8 GPUs"}
    assert resp.json()["message"].startswith("params.lr: must be at most 1 (and 3 more)")
    assert create(platform, world, name="bad", model="resnet").json()["field"] == "model"
    assert create(platform, world, name="bad", model="tabular", options={"turbo": True}).json()["field"] == "options.turbo"
    nodata = create(platform, world, name="bad", model="tabular", dataset="absent")
    assert nodata.status_code == 422 and nodata.json()["field"] == "datasets"
    after = platform.api("jobqueue", "GET", "trainings", world.tokens["owner"], params={"workspace": world.workspace}).json()
    assert len(after) == before


@pytest.mark.parametrize("model", ["image_classification", "text_classification", "tabular"])
def test_model_trains_on_two_horovod_workers_and_its_loss_goes_down(platform, uploaded, model):
    world = uploaded
    resp = create(platform, world, name=f"b-{model}", model=model, dataset=DATA[model], params=FAST[model], gpus=2,
                  launcher="horovod", options={"mixed_precision": model == "tabular", "fp16_compression": True})
    assert resp.status_code == 201, resp.text
    t = resp.json()
    assert t["kind"] == "builtin" and t["spec"]["builtin_model"] == model and t["spec"]["launcher"] == "horovod"
    # the GPUDirect switches travel as the training's own fields; the backend turns them into
    # NCCL/UCX settings (launchers.communication_env) when it starts the job
    assert (t["spec"]["gpudirect_p2p"], t["spec"]["gpudirect_rdma"], t["spec"]["env"]) == (False, False, {})
    job = wait_job(platform, world.tokens["owner"], t["jobs"][0]["id"], timeout=150)
    out = logs(platform, world.tokens["owner"], job["id"])
    assert job["state"] == "succeeded", out
    assert f"{model}: horovod x2 on cpu" in out
    m = job["metrics"]
    assert m["loss"] < m["start_loss"], m
    assert m["throughput"] > 0 and m["epoch"] == FAST[model]["epochs"]
    if model != "tabular":
        assert "val_accuracy" in m
    artifacts = Path(platform.data_dir) / "workspaces" / world.workspace / "trainings" / t["id"] / job["id"]
    report = json.loads((artifacts / "report.json").read_text())
    assert report["workers"] == 2 and report["distribution"] == "horovod" and report["options"]["fp16_compression"]
    assert (artifacts / "model.pt").is_file() and (artifacts / f"checkpoint-epoch{FAST[model]['epochs']:05d}.pt").is_file()


def test_synthetic_benchmark_on_two_workers(platform, uploaded):
    world = uploaded
    resp = create(platform, world, name="bench", model="synthetic_benchmark", gpus=2, launcher="torchrun",
                  params={"arch": "resnet8", "width": 8, "image_size": 16, "batch_size": 8, "num_iters": 2,
                          "num_warmup_batches": 1, "num_batches_per_iter": 2, "num_classes": 10})
    assert resp.status_code == 201, resp.text
    job = wait_job(platform, world.tokens["owner"], resp.json()["jobs"][0]["id"], timeout=120)
    out = logs(platform, world.tokens["owner"], job["id"])
    assert job["state"] == "succeeded", out
    assert "total img/sec on 2 worker(s)" in out and job["metrics"]["scaling_efficiency"] > 0


def test_a_dataset_of_the_wrong_layout_fails_naming_the_file(platform, uploaded):
    world = uploaded  # the tabular CSV given to the image model
    resp = create(platform, world, name="wrong", model="image_classification", dataset="tabular", gpus=2)
    assert resp.status_code == 201, resp.text
    job = wait_job(platform, world.tokens["owner"], resp.json()["jobs"][0]["id"], timeout=120)
    out = logs(platform, world.tokens["owner"], job["id"])
    assert job["state"] == "failed"
    assert "dataset error: " in out and "datasets/tabular/data.csv: is a file at the top of the dataset; expected <class>/<image>" in out

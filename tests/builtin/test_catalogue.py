"""The manifests, parameter checks and launch fields: pure, table-tested."""

from __future__ import annotations

import copy
import json

from flightbase_jobqueue.builtin import DEFAULT_ROOT

import pytest

from flightbase_jobqueue import builtin

MODELS = DEFAULT_ROOT  # flightbase_jobqueue/builtin_models, the package data
NAMES = ["image_classification", "synthetic_benchmark", "tabular", "text_classification"]


def test_catalogue_has_every_model_and_each_manifest_fits_the_schema():
    catalogue = builtin.load_catalogue(MODELS)
    assert sorted(catalogue) == NAMES
    schema = builtin.schema(MODELS)
    for name in NAMES:
        manifest = json.loads((MODELS / name / "manifest.json").read_text())
        assert builtin.validate_manifest(manifest, schema, name) == [], name
        assert (MODELS / name / manifest["entrypoint"]).is_file()
        assert (MODELS / name / "_common" / "trainer.py").is_file(), "the shared code travels with the model's folder"


def _broken(change):
    manifest = json.loads((MODELS / "tabular" / "manifest.json").read_text())
    change(manifest)
    return manifest


@pytest.mark.parametrize(("change", "problem"), [
    (lambda m: m.pop("gpus"), "(top): 'gpus' is a required property"),
    (lambda m: m.update(task="speech"), "task: 'speech' is not one of"),
    (lambda m: m["parameters"]["lr"].update(type="float"), "parameters/lr/type: 'float' is not one of"),
    (lambda m: m["parameters"]["lr"].pop("help"), "parameters/lr: 'help' is a required property"),
    (lambda m: m["parameters"]["epochs"].update(default=1.5), "parameters/epochs/default: 1.5 is not of type 'integer'"),
    (lambda m: m["parameters"]["epochs"].update(default=0), "parameters/epochs/default: must be at least 1"),
    (lambda m: m["parameters"]["scale_lr"].update(minimum=0), "parameters/scale_lr"),
    (lambda m: m.update(launchers=["mpi"]), "launchers/0: 'mpi' is not one of"),
    (lambda m: m.update(gpu_options=["turbo"]), "gpu_options/0: 'turbo' is not one of"),
    (lambda m: m.update(extra=1), "(top): Additional properties are not allowed ('extra'"),
    (lambda m: m.update(name="other"), "name: 'other' is not the folder's name 'tabular'"),
    (lambda m: m["gpus"].update(default=9), "gpus: default is above max"),
])
def test_schema_rejects_broken_manifests(change, problem):
    problems = builtin.validate_manifest(_broken(change), builtin.schema(MODELS), "tabular")
    assert any(p.startswith(problem) for p in problems), problems


IMAGE = builtin.load_catalogue(MODELS)["image_classification"]
BENCH = builtin.load_catalogue(MODELS)["synthetic_benchmark"]


@pytest.mark.parametrize(("params", "errors"), [
    ({}, {}),
    ({"epochs": 3, "lr": 0.1, "arch": "resnet18", "scale_lr": False}, {}),
    ({"lr": 1}, {}),  # an integer is a number
    ({"epochs": 2.0}, {}),  # a whole float is an integer
    ({"epochs": 0}, {"params.epochs": "must be at least 1"}),
    ({"epochs": 1001}, {"params.epochs": "must be at most 1000"}),
    ({"epochs": 2.5}, {"params.epochs": "must be an integer"}),
    ({"epochs": "3"}, {"params.epochs": "must be an integer"}),
    ({"epochs": True}, {"params.epochs": "must be an integer"}),
    ({"lr": "fast"}, {"params.lr": "must be a number"}),
    ({"lr": float("nan")}, {"params.lr": "must be a number"}),
    ({"scale_lr": 1}, {"params.scale_lr": "must be true or false"}),
    ({"arch": "resnet50"}, {"params.arch": "must be one of resnet8, resnet10, resnet18, resnet34"}),
    ({"arch": 8}, {"params.arch": "must be a string"}),
    ({"depth": 3}, {"params.depth": "image_classification has no parameter 'depth'; it has: arch, width, image_size, "
                                    "epochs, batch_size, lr, scale_lr, optimizer, weight_decay, val_fraction, seed"}),
    ({"epochs": 0, "lr": -1}, {"params.epochs": "must be at least 1", "params.lr": "must be at least 1e-06"}),
])
def test_params_table(params, errors):
    values, found = builtin.check_params(IMAGE, params)
    assert found == errors
    if not errors:
        assert list(values) == list(IMAGE["parameters"])  # every parameter, in the manifest's order
        assert all(values[k] == v for k, v in params.items())


def test_params_fill_defaults_and_make_whole_floats_integers():
    values, errors = builtin.check_params(IMAGE, {"epochs": 2.0})
    assert errors == {} and values["epochs"] == 2 and isinstance(values["epochs"], int)
    assert values["arch"] == "resnet8" and values["lr"] == 0.05


@pytest.mark.parametrize(("manifest", "request_", "errors"), [
    (IMAGE, dict(dataset="imgs", gpus=2, launcher="horovod", options={}), {}),
    (IMAGE, dict(dataset="imgs@3", gpus=64, launcher="torchrun", options={"grad_accumulation": 4, "mixed_precision": True}), {}),
    (IMAGE, dict(dataset=None, gpus=1, launcher="horovod", options={}),
     {"dataset": "image_classification needs a dataset: " + IMAGE["dataset"]["layout"]}),
    (IMAGE, dict(dataset="imgs", gpus=65, launcher="horovod", options={}), {"gpus": "image_classification runs on at most 64 GPUs"}),
    (IMAGE, dict(dataset="imgs", gpus=1, launcher="mpi", options={}), {"launcher": "image_classification runs under horovod or torchrun"}),
    (IMAGE, dict(dataset="imgs", gpus=1, launcher="horovod", options={"grad_accumulation": 0}),
     {"options.grad_accumulation": "must be an integer from 1 to 64"}),
    (BENCH, dict(dataset="imgs", gpus=1, launcher="horovod", options={}), {"dataset": "synthetic_benchmark takes no dataset"}),
    (BENCH, dict(dataset=None, gpus=1, launcher="horovod", options={"grad_accumulation": 2}),
     {"options.grad_accumulation": "does not apply to synthetic_benchmark (it has: mixed_precision, fp16_compression, "
                                   "gpudirect_p2p, gpudirect_rdma)"}),
    (BENCH, dict(dataset=None, gpus=8, launcher="torchrun", options={"grad_accumulation": 1, "fp16_compression": True}), {}),
])
def test_request_table(manifest, request_, errors):
    assert builtin.check_request(manifest, **request_) == errors


def test_launch_fields():
    tab = builtin.load_catalogue(MODELS)["tabular"]
    params, _ = builtin.check_params(tab, {"epochs": 3, "ignore_columns": "-x,y", "lr": 0.01})
    fields = builtin.launch_fields(tab, dataset="houses@2", params=params, gpus=2, launcher="torchrun",
                                   options={"mixed_precision": True, "grad_accumulation": 2, "fp16_compression": True,
                                            "gpudirect_p2p": True})
    assert fields == {
        "entrypoint": "train.py",
        "args": ["--data", "datasets/houses", "--target=target", "--objective=auto", "--ignore-columns=-x,y",
                 "--hidden=64", "--layers=2", "--dropout=0.0", "--epochs=3", "--batch-size=64", "--lr=0.01",
                 "--scale-lr=true", "--optimizer=adamw", "--weight-decay=0.0", "--val-fraction=0.2", "--seed=0",
                 "--mixed-precision", "--grad-accumulation", "2", "--fp16-compression"],
        "launcher": "torchrun", "gpus": 2, "datasets": ["houses@2"],
        "gpudirect_p2p": True, "gpudirect_rdma": False,
    }


def test_launch_arguments_are_what_the_script_parses():
    import sys

    sys.path.insert(0, str(MODELS))
    try:
        from _common.cli import parse_args
    finally:
        sys.path.remove(str(MODELS))
    tab = builtin.load_catalogue(MODELS)["tabular"]
    params, _ = builtin.check_params(tab, {"epochs": 3, "ignore_columns": "-x,y", "scale_lr": False})
    fields = builtin.launch_fields(tab, dataset="d", params=params, gpus=1, launcher="horovod", options={"grad_accumulation": 2})
    _, args = parse_args(MODELS / "tabular", fields["args"])
    assert args.params == params and args.grad_accumulation == 2 and args.data == "datasets/d"


def test_catalogue_refuses_a_broken_folder(tmp_path):
    import shutil

    shutil.copy(MODELS / "manifest.schema.json", tmp_path)
    (tmp_path / "mm").mkdir()
    manifest = copy.deepcopy(builtin.load_catalogue(MODELS)["tabular"])
    manifest["name"] = "mm"
    (tmp_path / "mm" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(builtin.ManifestError, match="entrypoint: train.py is not in"):
        builtin.load_catalogue(tmp_path)

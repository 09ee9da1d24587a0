"""Built-in models: the catalogue, parameter checks, and what a built-in training launches.

Each model is a folder of ``builtin_models/`` with a ``manifest.json`` (checked
against ``builtin_models/manifest.schema.json``) and a training script; see
docs/builtin-models.md. Here, all pure functions of a manifest:

- :func:`load_catalogue`: every manifest of a folder, validated (:class:`ManifestError` otherwise);
- :func:`check_params`: a request's parameters -> (values with defaults, errors keyed ``params.<name>``);
- :func:`check_request`: model, dataset, GPUs, launcher and GPU options -> errors keyed by field;
- :func:`launch_fields`: the advanced-training fields (entry point, arguments, launcher, GPUs,
  NCCL environment) that run the model's script; the runtime then uses the model's folder
  as the job's code (:func:`model_dir`).
"""

from __future__ import annotations

import functools
from importlib import resources
import json
import math
import os
from pathlib import Path
from typing import Any, Mapping

# The models travel with this package as its data (flightbase_jobqueue/builtin_models/, in the
# wheel and in the jobqueue's image); an installation that keeps its own set elsewhere sets
# FLIGHTBASE_BUILTIN_MODELS_DIR.
DEFAULT_ROOT = Path(str(resources.files("flightbase_jobqueue") / "builtin_models"))
GPU_OPTIONS = ("mixed_precision", "grad_accumulation", "fp16_compression", "gpudirect_p2p", "gpudirect_rdma")
MAX_GRAD_ACCUMULATION = 64


class ManifestError(Exception):
    pass


def models_root() -> Path:
    return Path(os.environ.get("FLIGHTBASE_BUILTIN_MODELS_DIR") or DEFAULT_ROOT)


def model_dir(name: str, root: Path | None = None) -> Path:
    """The folder whose copy is a built-in training's working directory."""
    return (root or models_root()) / name


def schema(root: Path) -> dict:
    return json.loads((root / "manifest.schema.json").read_text())


def validate_manifest(manifest: Any, schema_doc: dict, folder: str | None = None) -> list[str]:
    """Every problem of one manifest (JSON-schema errors, then the rules a schema cannot say)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema_doc)
    problems = [f"{'/'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message}"
                for e in sorted(validator.iter_errors(manifest), key=lambda e: list(map(str, e.absolute_path)))]
    if problems:
        return problems
    if folder is not None and manifest["name"] != folder:
        problems.append(f"name: {manifest['name']!r} is not the folder's name {folder!r}")
    if manifest["gpus"]["default"] > manifest["gpus"]["max"]:
        problems.append("gpus: default is above max")
    for name, spec in manifest["parameters"].items():
        errors = check_value(spec, spec["default"])
        if errors:
            problems.append(f"parameters/{name}/default: {errors}")
        if "minimum" in spec and "maximum" in spec and spec["minimum"] > spec["maximum"]:
            problems.append(f"parameters/{name}: minimum is above maximum")
    return problems


@functools.lru_cache(maxsize=4)
def load_catalogue(root: Path | None = None) -> dict[str, dict]:
    """name -> manifest for every model folder (names starting with ``_`` or ``.`` are not models)."""
    root = Path(root or models_root())
    schema_doc = schema(root)
    catalogue = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))):
        path = folder / "manifest.json"
        try:
            manifest = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ManifestError(f"{path}: {exc}") from None
        problems = validate_manifest(manifest, schema_doc, folder.name)
        if not problems and not (folder / manifest["entrypoint"]).is_file():
            problems.append(f"entrypoint: {manifest['entrypoint']} is not in {folder}")
        if problems:
            raise ManifestError(f"{path}: " + "; ".join(problems))
        catalogue[manifest["name"]] = manifest
    return catalogue


# -- parameters -------------------------------------------------------------------------
def check_value(spec: Mapping[str, Any], value: Any) -> str | None:
    """Why ``value`` does not fit the parameter ``spec``, or None."""
    kind = spec["type"]
    if kind == "boolean":
        return None if isinstance(value, bool) else "must be true or false"
    if kind == "string":
        if not isinstance(value, str):
            return "must be a string"
        if "maxLength" in spec and len(value) > spec["maxLength"]:
            return f"must be at most {spec['maxLength']} characters"
    elif kind == "integer":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (isinstance(value, float) and not value.is_integer()):
            return "must be an integer"
    elif kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return "must be a number"
    if "enum" in spec and value not in spec["enum"]:
        return f"must be one of {', '.join(map(str, spec['enum']))}"
    if "minimum" in spec and value < spec["minimum"]:
        return f"must be at least {spec['minimum']:g}"
    if "maximum" in spec and value > spec["maximum"]:
        return f"must be at most {spec['maximum']:g}"
    return None


def check_params(manifest: Mapping[str, Any], params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """(every parameter's value, defaults filled in; errors as ``params.<name>`` -> reason)."""
    specs = manifest["parameters"]
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, value in params.items():
        if name not in specs:
            errors[f"params.{name}"] = f"{manifest['name']} has no parameter {name!r}; it has: {', '.join(specs)}"
            continue
        why = check_value(specs[name], value)
        if why:
            errors[f"params.{name}"] = why
        else:
            values[name] = int(value) if specs[name]["type"] == "integer" else value
    return {name: values.get(name, spec["default"]) for name, spec in specs.items()}, errors


def check_request(manifest: Mapping[str, Any], *, dataset: str | None, gpus: int, launcher: str,
                  options: Mapping[str, Any]) -> dict[str, str]:
    """Errors of everything but the parameters, keyed by the request's field."""
    errors: dict[str, str] = {}
    name = manifest["name"]
    if manifest["dataset"] is None and dataset:
        errors["dataset"] = f"{name} takes no dataset"
    elif manifest["dataset"] is not None and not dataset:
        errors["dataset"] = f"{name} needs a dataset: {manifest['dataset']['layout']}"
    if gpus > manifest["gpus"]["max"]:
        errors["gpus"] = f"{name} runs on at most {manifest['gpus']['max']} GPUs"
    if launcher not in manifest["launchers"]:
        errors["launcher"] = f"{name} runs under {' or '.join(manifest['launchers'])}"
    for option in GPU_OPTIONS:
        value = options.get(option)
        is_set = value not in (None, False, 1) if option == "grad_accumulation" else bool(value)
        if is_set and option not in manifest["gpu_options"]:
            errors[f"options.{option}"] = f"does not apply to {name} (it has: {', '.join(manifest['gpu_options']) or 'none'})"
    accumulation = options.get("grad_accumulation", 1)
    if not isinstance(accumulation, int) or isinstance(accumulation, bool) or not 1 <= accumulation <= MAX_GRAD_ACCUMULATION:
        errors["options.grad_accumulation"] = f"must be an integer from 1 to {MAX_GRAD_ACCUMULATION}"
    return errors


# -- what runs ----------------------------------------------------------------------------
def dataset_name(spec: str) -> str:
    return spec.split("@", 1)[0]


def _arg(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def launch_fields(manifest: Mapping[str, Any], *, dataset: str | None, params: Mapping[str, Any], gpus: int,
                  launcher: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The advanced-training fields that run this model (``params``: complete, from :func:`check_params`)."""
    args: list[str] = []
    if dataset:
        args += ["--data", f"datasets/{dataset_name(dataset)}"]  # where the backend links the dataset in
    for name in manifest["parameters"]:
        args.append(f"--{name.replace('_', '-')}={_arg(params[name])}")  # one word: a value may start with "-"
    if options.get("mixed_precision"):
        args.append("--mixed-precision")
    if options.get("grad_accumulation", 1) != 1:
        args += ["--grad-accumulation", str(options["grad_accumulation"])]
    if options.get("fp16_compression"):
        args.append("--fp16-compression")
    p2p, rdma = bool(options.get("gpudirect_p2p")), bool(options.get("gpudirect_rdma"))
    return {
        "entrypoint": manifest["entrypoint"],
        "args": args,
        "launcher": launcher,
        "gpus": gpus,
        "datasets": [dataset] if dataset else [],
        "gpudirect_p2p": p2p,
        "gpudirect_rdma": rdma,
    }

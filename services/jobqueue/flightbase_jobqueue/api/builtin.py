"""Built-in models: the catalogue (any authenticated user) and built-in trainings (members).

``POST /builtin-trainings`` checks the model, its parameters, the dataset,
GPUs, launcher and GPU options against the model's manifest, all at once
(one 422 naming every bad field, e.g. ``params.lr``), and only then creates
the training through the same path as ``POST /trainings``
(:func:`~flightbase_jobqueue.api.trainings.create_training_from`), with kind
``builtin`` and the model's folder as its code.
"""

from __future__ import annotations

from typing import Any, Literal

from typing import Annotated

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field, ValidationError

from flightbase_server.service.access import InWorkspace, Person, workspace_in_body
from flightbase_server.service.errors import ApiError, not_found
from flightbase_jobqueue import builtin
from flightbase_jobqueue.api.trainings import create_training_from
from flightbase_jobqueue.schemas import NAME_PATTERN, Strict, TrainingCreate, TrainingOut

router = APIRouter(tags=["builtin models"])


class ParameterOut(BaseModel):
    type: Literal["integer", "number", "string", "boolean"]
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    enum: list[Any] | None = None
    maxLength: int | None = None
    help: str


class DatasetLayoutOut(BaseModel):
    layout: str
    example: list[str]


class GpusOut(BaseModel):
    default: int
    max: int


class BuiltinModelOut(BaseModel):
    name: str
    title: str
    task: str
    description: str
    entrypoint: str
    dataset: DatasetLayoutOut | None = Field(description="The layout the model expects; null: it takes no dataset")
    parameters: dict[str, ParameterOut] = Field(description="In the order a form shows them")
    gpus: GpusOut
    launchers: list[str]
    gpu_options: list[str] = Field(description="Which of the request's options apply to this model")


class BuiltinOptions(Strict):
    mixed_precision: bool = Field(default=False, description="torch.autocast: bf16 on CPU and on GPUs that have it, else fp16")
    grad_accumulation: int = Field(default=1, ge=1, le=builtin.MAX_GRAD_ACCUMULATION,
                                   description="Micro-batches per optimizer step")
    fp16_compression: bool = Field(default=False, description="Allreduce gradients in fp16 (hvd.Compression.fp16)")
    gpudirect_p2p: bool = Field(default=False, description="NCCL peer-to-peer between GPUs of a node (NCCL_P2P_DISABLE=0)")
    gpudirect_rdma: bool = Field(default=False, description="GPUDirect RDMA over InfiniBand (NCCL_NET_GDR_LEVEL=PHB)")


class BuiltinTrainingCreate(Strict):
    workspace: str
    name: str = Field(pattern=NAME_PATTERN)
    description: str = Field(default="", max_length=2000)
    model: str = Field(description="A name from GET /builtin-models")
    dataset: str | None = Field(default=None, description="NAME or NAME@VERSION of a dataset of the workspace")
    params: dict[str, Any] = Field(default_factory=dict, description="The model's parameters; missing ones take their default")
    gpus: int | None = Field(default=None, ge=1, le=4096, description="GPUs in all (default: the model's)")
    launcher: Literal["horovod", "torchrun"] = "horovod"
    options: BuiltinOptions = Field(default_factory=BuiltinOptions)
    image: str = Field(default="training-base", max_length=512)
    max_runtime: float | None = Field(default=None, gt=0, description="Seconds; the job is stopped after this")
    priority: int = Field(default=0, ge=-100, le=100)
    preemptible: bool = True
    secret_env: dict[str, str] = Field(default_factory=dict,
                                       description="Secret environment values, as in POST /trainings (write-only)")


def _catalogue() -> dict[str, dict]:
    try:
        return builtin.load_catalogue(builtin.models_root())
    except builtin.ManifestError as exc:  # an installation problem, not the caller's
        raise ApiError(500, f"the built-in model catalogue is broken: {exc}") from None


@router.get("/builtin-models", response_model=list[BuiltinModelOut], summary="The built-in models")
async def list_models(identity: Person):
    return list(_catalogue().values())


@router.get("/builtin-models/{name}", response_model=BuiltinModelOut, summary="One built-in model, with its parameters")
async def get_model(identity: Person, name: str):
    manifest = _catalogue().get(name)
    if manifest is None:
        raise not_found(f"built-in model {name!r}")
    return manifest


@router.post("/builtin-trainings", response_model=TrainingOut, status_code=201,
             summary="Train a built-in model on a dataset of the workspace")
async def create_builtin_training(
        request: Request, response: Response,
        w: Annotated[InWorkspace, workspace_in_body(BuiltinTrainingCreate, "trainings:write")]):
    body = w.body
    manifest = _catalogue().get(body.model)
    if manifest is None:
        raise ApiError(422, f"model: no built-in model {body.model!r}; see GET /builtin-models", field="model")
    gpus = body.gpus or manifest["gpus"]["default"]
    options = body.options.model_dump()
    params, errors = builtin.check_params(manifest, body.params)
    errors.update(builtin.check_request(manifest, dataset=body.dataset, gpus=gpus, launcher=body.launcher,
                                        options=options))
    if errors:
        first = next(iter(errors))
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ApiError(422, f"{first}: {errors[first]}{more}", errors=errors)
    fields = builtin.launch_fields(manifest, dataset=body.dataset, params=params, gpus=gpus, launcher=body.launcher,
                                   options=options)
    try:
        training = TrainingCreate(workspace=body.workspace, name=body.name, description=body.description,
                                  image=body.image, max_runtime=body.max_runtime, priority=body.priority,
                                  preemptible=body.preemptible, secret_env=body.secret_env, **fields)
    except ValidationError as exc:  # e.g. a dataset name the trainings API refuses
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "body"
        raise ApiError(422, f"{field}: {err['msg']}", field=field) from None
    return await create_training_from(request, w.identity, training, w.ws, kind="builtin", response=response, spec_extra={
        "builtin_model": manifest["name"],
        "builtin": {"model": manifest["name"], "dataset": body.dataset, "params": params, "options": options},
    })

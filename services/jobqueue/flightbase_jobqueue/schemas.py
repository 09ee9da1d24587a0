"""Request and response bodies of the jobqueue API: one typed definition each.

The OpenAPI document (``/services/jobqueue/api/v1/openapi.json``) is generated
from these.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from flightbase_server.workspaces import check_workspace_name

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GpuOut(BaseModel):
    index: int
    kind: Literal["gpu", "cpu-slot"]
    name: str
    memory_bytes: int = 0


class InfoOut(BaseModel):
    version: str
    deployment: str
    gpu_kind: Literal["gpu", "cpu-slot", "none"]
    gpus: list[GpuOut]
    scheduler_policy: str
    user: str
    admin: bool


class NodeOut(BaseModel):
    name: str
    gpu_kind: Literal["gpu", "cpu-slot", "none"]
    gpus: list[GpuOut]
    schedulable: bool = True
    labels: dict[str, str] = Field(default_factory=dict)
    interconnect: dict[str, Any] | None = Field(
        default=None, description="This machine's GPU links (NVML, else nvidia-smi topo -m: NV<n>, PIX, PXB, PHB, "
                                  "NODE, SYS) and InfiniBand devices with their rate (flightbase_server.topology)")


class WorkspaceCreate(Strict):
    name: str = Field(description="Workspace (hub group) name")
    settings: dict[str, Any] = Field(default_factory=dict, description="Initial settings; see WorkspaceSettings")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        why = check_workspace_name(value)
        if why:
            raise ValueError(why)
        return value


class WorkspaceOut(BaseModel):
    name: str
    members: list[str]
    managers: list[str]
    settings: dict[str, Any] | None
    settings_errors: dict[str, str]
    permissions: list[str] = Field(description="What the caller may do here, as flightbase permissions")


class SweepSpec(Strict):
    grid: dict[str, list[str | int | float | bool]] | str | None = Field(
        default=None, description="Parameter grid: every combination becomes a job, last key varying fastest. "
                                  "As JSON ({\"lr\": [0.1, 0.01]}) or as the text the CLI and the JupyterLab "
                                  "dialog take (\"lr=[0.1,0.01] batch=[32,64]\", client/flightbase/grid.py)"
    )
    runs: list[dict[str, str | int | float | bool]] | None = Field(
        default=None, description="An explicit list of parameter sets, run in this order"
    )
    parallel: int = Field(default=1, ge=1, le=1000, description="Jobs of the sweep that may run at once")
    metric: str | None = Field(default=None, description="Reported metric that ranks the jobs (best result)")
    goal: Literal["min", "max"] = "min"


# Names the platform sets for every job: a training may not set them (plainly or as secrets).
PLATFORM_ENV = ("CUDA_VISIBLE_DEVICES", "PATH", "HOME", "USER")
MAX_SECRETS = 64
MAX_SECRET_BYTES = 32 * 1024  # one environment string; Linux allows 128 KiB (MAX_ARG_STRLEN)


def check_env_names(value: dict[str, str]) -> dict[str, str]:
    """Names a job's environment may take (``env`` and ``secret_env``): the values are not looked at."""
    for key in value:
        if not key or not key.replace("_", "a").isalnum() or not key.isascii() or key[0].isdigit():
            raise ValueError(f"{key!r} is not a valid environment variable name")
        if key.startswith("FLIGHTBASE_") or key in PLATFORM_ENV:
            raise ValueError(f"{key} is set by the platform")
    return value


class TrainingCreate(Strict):
    workspace: str
    name: str = Field(pattern=NAME_PATTERN)
    description: str = Field(default="", max_length=2000)
    entrypoint: str = Field(min_length=1, max_length=512, description="Script (*.py, run with Python) or executable, relative to the code")
    args: list[str] = Field(default_factory=list, description="Arguments after the entry point")
    code_id: str | None = Field(default=None, description="An upload from POST /code")
    gpus: int = Field(default=1, ge=1, le=4096, description="GPUs in all")
    gpus_per_node: int | None = Field(default=None, ge=1, description="Ask for nodes x GPUs per node")
    launcher: Literal["horovod", "torchrun", "mpi", "none"] = "none"
    image: str = Field(default="training-base", max_length=512)
    datasets: list[str] = Field(default_factory=list, description="Datasets mounted read-only (name or name@version)")
    env: dict[str, str] = Field(default_factory=dict, description="Environment of the job, shown to every member")
    secret_env: dict[str, str] = Field(
        default_factory=dict,
        description="Environment values kept secret: stored apart from the training's spec, passed to the job as "
                    "environment variables, never returned by the API (responses name them in secret_env_names)")
    max_runtime: float | None = Field(default=None, gt=0, description="Seconds; the job is stopped after this")
    priority: int = Field(default=0, ge=-100, le=100, description="Order within the workspace; higher first")
    preemptible: bool = True
    gpudirect_p2p: bool = Field(default=False, description="Allow NCCL peer-to-peer between GPUs of a node")
    gpudirect_rdma: bool = Field(default=False, description="Use GPUDirect RDMA over InfiniBand between nodes")
    sweep: SweepSpec | None = None

    @field_validator("entrypoint")
    @classmethod
    def _entrypoint(cls, value: str) -> str:
        if value.startswith("/") or ".." in value.split("/") or "\0" in value:
            raise ValueError("must be a relative path inside the training's code")
        return value

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str]) -> dict[str, str]:
        return check_env_names(value)

    @field_validator("secret_env")
    @classmethod
    def _secret_env(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        # The messages name the variable, never its value: a 422 may end up in a log.
        both = sorted(set(value) & set(info.data.get("env") or ()))
        if both:
            raise ValueError(f"{', '.join(both)} also in env; a name is either plain or secret")
        if len(value) > MAX_SECRETS:
            raise ValueError(f"at most {MAX_SECRETS} secret values")
        for key, secret in value.items():
            if len(secret.encode()) > MAX_SECRET_BYTES:
                raise ValueError(f"{key}: a secret value is at most {MAX_SECRET_BYTES} bytes")
            if "\0" in secret:
                raise ValueError(f"{key}: an environment value cannot hold a NUL character")
        return check_env_names(value)


class JobSummary(BaseModel):
    id: str
    seq: int
    name: str
    params: dict[str, Any]
    state: str
    held: bool
    exit_code: int | None
    metrics: dict[str, float] = Field(default_factory=dict)


class OwnersUpdate(Strict):
    owners: list[str] = Field(min_length=1)


class PriorityUpdate(Strict):
    priority: int = Field(ge=-100, le=100, description="Order within the workspace; higher first (as a training's)")


class TrainingOut(BaseModel):
    id: str
    workspace: str
    name: str
    description: str
    kind: str
    created_by: str
    created_at: dt.datetime
    owners: list[str]
    state: str = Field(description="queued, running, succeeded, failed, cancelled or paused, from its jobs")
    paused: bool
    spec: dict[str, Any] = Field(description="What the training was created with, less its secret values")
    secret_env_names: list[str] = Field(
        default_factory=list, description="Names of its secret environment values (the values are write-only)")
    progress: dict[str, int] = Field(default_factory=dict, description="Jobs per state")
    best: JobSummary | None = Field(default=None, description="The best job so far by the sweep's metric")
    jobs: list[JobSummary] = Field(default_factory=list)


class CodeOut(BaseModel):
    id: str
    workspace: str
    filename: str
    size: int
    sha256: str
    files: list[str]


class QueueInfo(BaseModel):
    position: int
    workspace_position: int
    estimated_start: float | None
    reason: str
    estimated_start_range: list[float] | None = Field(
        default=None, description="[earliest, latest] estimated start (seconds since the epoch): the "
        "projection with short (25th percentile) and long (75th percentile) runtimes; null without an "
        "estimate. docs/scheduling.md, 'Start estimates'")


class Preemption(BaseModel):
    reason: str
    at: float


class CommunicationFlag(BaseModel):
    feature: Literal["p2p", "rdma"]
    reason: str = Field(description="Why the GPUDirect feature the job asked for was not used (the likely cause)")


class CommunicationOut(BaseModel):
    """What NCCL did for the job, from its initialisation log (``flightbase_jobqueue.comms``)."""

    source: Literal["nccl", "none"] = Field(description="nccl: read from the job's NCCL logs; none: no NCCL log")
    files: int = Field(description="NCCL log files read (one per rank)")
    nccl_version: str | None = None
    ranks: int = 0
    hosts: dict[str, str] = Field(default_factory=dict, description="Rank -> host")
    network: str | list[str] | None = Field(default=None, description="NCCL's network: IB, Socket or a plugin's")
    ib_devices: list[str] = Field(default_factory=list)
    ib_missing: bool = Field(default=False, description="NCCL found no InfiniBand device")
    gdr_disabled: dict[str, str] = Field(default_factory=dict, description="HCA -> why GPUDirect RDMA was off")
    gdr_enabled: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict, description="NCCL settings NCCL said it took from the environment")
    path_intra: str | None = Field(default=None, description="NCCL's path type between GPUs of a node (NVL, PIX, SYS...)")
    path_inter: str | None = None
    channels: list[dict[str, Any]] = Field(default_factory=list, description="Each channel connection and its transport")
    summary: dict[str, int] = Field(default_factory=dict, description="Connections per transport: P2P/NVLink, SHM, "
                                                                        "NET/IB/GDRDMA, NET/Socket...")
    rings: dict[str, list[int]] = Field(default_factory=dict, description="Channel -> the ring's rank order")
    trees: dict[str, dict[str, dict[str, Any]]] = Field(default_factory=dict,
                                                        description="Channel -> rank -> children and parent")
    warnings: list[str] = Field(default_factory=list)
    requested: dict[str, bool] = Field(default_factory=dict, description="The job's switches: p2p, rdma")
    used: dict[str, bool | None] = Field(default_factory=dict, description="Whether each was used (null: cannot tell)")
    flags: list[CommunicationFlag] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


class JobOut(BaseModel):
    id: str
    training_id: str
    workspace: str
    name: str
    seq: int
    params: dict[str, Any]
    kind: str
    state: str
    held: bool
    gpus: int
    gpu_kind: str
    placement: dict[str, list[int]] | None = Field(description="Host -> GPU indices it got")
    hosts: list[str]
    submitted_at: float
    started_at: float | None
    finished_at: float | None
    exit_code: int | None
    reason: str | None
    restarts: int
    preemptible: bool
    priority: int
    created_by: str
    queue: QueueInfo | None = Field(default=None, description="Position, estimated start and why, while queued")
    preemptions: list[Preemption] = Field(default_factory=list)
    metrics: dict[str, float] = Field(default_factory=dict, description="Last reported value of each metric")
    communication: CommunicationOut | None = Field(
        default=None, description="What NCCL did (transports, rings, trees) and whether the GPUDirect switches were "
                                  "used; in one job's details (GET /jobs/{id}) only")


class LeaseCreate(Strict):
    """A Jupyter training's request for its GPU (made by the hub's spawner with the server's token)."""

    workspace: str
    server: str = Field(default="", pattern=r"^[A-Za-z0-9._~-]{0,255}$",
                        description="The hub server's name ('' for the default server)")
    gpus: int = Field(default=1, ge=1, le=1, description="GPUs of the server: a Jupyter training has exactly one")
    image: str = Field(default="notebook", max_length=512)
    datasets: list[str] = Field(default_factory=list, description="Datasets mounted read-only (name or name@version)")
    activity_token: str | None = Field(
        default=None, min_length=1, max_length=512,
        description="A hub token limited to this one server (access:servers!server=...), with which the jobqueue "
                    "reads its kernels' activity for the idle check; write-only, kept with the lease's secrets")


class LeaseOut(BaseModel):
    id: str = Field(description="The lease (a job of kind 'lease')")
    training_id: str
    workspace: str
    owner: str
    server: str
    state: str = Field(description="queued, granted, released or cancelled")
    gpu_kind: str
    gpus: list[int] = Field(description="GPU indices granted (on node `node`)")
    node: str | None
    image: str
    datasets: list[dict[str, Any]] = Field(description="[{name, version, path}] resolved at request time")
    submitted_at: float
    granted_at: float | None
    ended_at: float | None
    reason: str | None = Field(description="Why it waits, an idle warning, or why it ended")
    queue: QueueInfo | None = None


class UsageRowOut(BaseModel):
    """GPU time of one group; only the keys of ``group_by`` are present."""

    workspace: str | None = None
    user: str | None = Field(default=None, description="Who submitted the jobs (their created_by)")
    day: str | None = Field(default=None, description="A UTC day, YYYY-MM-DD")
    gpu_seconds: float
    gpu_hours: float


class UsageOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: str = Field(alias="from", description="Start of the window (ISO, UTC), included")
    to: str = Field(description="End of the window (ISO, UTC), excluded")
    now: str = Field(description="When this was computed: jobs still running count up to now")
    group_by: list[Literal["workspace", "user", "day"]]
    workspaces: list[str] = Field(
        description="The workspaces counted (an administrator's unfiltered view: every workspace, deleted "
                    "ones with usage in the window too)")
    rows: list[UsageRowOut] = Field(description="One per group with usage in the window, sorted by group")
    total_gpu_seconds: float
    total_gpu_hours: float

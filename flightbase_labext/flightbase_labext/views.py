"""What the sidebar shows, computed from the services' answers (no Jupyter imports).

The server extension fetches a workspace, its jobs, its queue and its trainings
and hands them here; these functions are tested with literal expectations.
"""

from __future__ import annotations

ACTIVE = ("starting", "running")

# the TrainingCreate fields a resubmission copies from a training's spec
TRAINING_FIELDS = (
    "entrypoint", "args", "code_id", "gpus", "gpus_per_node", "launcher", "image", "datasets", "env",
    "max_runtime", "priority", "preemptible", "gpudirect_p2p", "gpudirect_rdma", "sweep",
)


def queue_row(job: dict) -> dict:
    q = job.get("queue") or {}
    return {
        "id": job["id"], "name": job["name"], "training_id": job["training_id"], "gpus": job["gpus"],
        # a held job (a sweep's job waiting its turn: position 0) has no place in the queue yet
        "created_by": job["created_by"], "position": q.get("position") or None,
        "workspace_position": q.get("workspace_position") or None, "estimated_start": q.get("estimated_start"),
        "estimated_start_range": q.get("estimated_start_range"),
        "reason": q.get("reason") or job.get("reason") or "",
    }


def job_row(job: dict) -> dict:
    return {k: job.get(k) for k in ("id", "name", "training_id", "state", "gpus", "submitted_at", "started_at",
                                    "finished_at", "exit_code", "reason", "metrics")}


def overview(workspace: dict, jobs: list[dict], queue: list[dict], trainings: list[dict], user: str) -> dict:
    """The sidebar's state: GPUs in use / quota, the queue, and the user's trainings with their jobs."""
    settings = workspace.get("settings") or {}
    mine = [t for t in trainings if t["created_by"] == user or user in t.get("owners", ())]
    ids = {t["id"] for t in mine}
    return {
        "workspace": workspace["name"],
        "gpus_in_use": sum(j["gpus"] for j in jobs if j["state"] in ACTIVE),
        "gpu_quota": settings.get("gpu_quota"),
        "queue": [queue_row(j) for j in queue],
        "trainings": [
            {k: t.get(k) for k in ("id", "name", "kind", "state", "created_at", "progress", "spec")} for t in mine
        ],
        "jobs": [job_row(j) for j in jobs if j["training_id"] in ids],
    }


def resubmit_request(training: dict, name: str) -> tuple[str, dict]:
    """(path, body) that creates a new training with the same spec as ``training``."""
    spec = training["spec"]
    if training.get("kind") == "builtin" and spec.get("builtin"):
        b = spec["builtin"]
        body = {"workspace": training["workspace"], "name": name, "model": b["model"], "dataset": b.get("dataset"),
                "params": b.get("params", {}), "gpus": spec.get("gpus"), "launcher": spec.get("launcher", "horovod"),
                "options": b.get("options", {}), "image": spec.get("image", "training-base"),
                "max_runtime": spec.get("max_runtime"), "priority": spec.get("priority", 0),
                "preemptible": spec.get("preemptible", True)}
        return "builtin-trainings", body
    body = {"workspace": training["workspace"], "name": name,
            **{k: spec[k] for k in TRAINING_FIELDS if spec.get(k) is not None}}
    return "trainings", body


def next_name(name: str, taken: set[str]) -> str:
    """``name-2``, ``name-3``... the first not in ``taken`` (a resubmission's name)."""
    base = name
    head, _, tail = name.rpartition("-")
    if head and tail.isdigit():
        base = head
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"

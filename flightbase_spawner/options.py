"""What a Jupyter training was asked for, shared by the local and Kubernetes spawners.

Pure functions: the options form (HTML) from the workspaces' images and
datasets, the form's fields into user options, and user options (from the
form or from ``POST /hub/api/users/{name}/servers/{server}``) checked into a
:class:`JupyterOptions`. A bad value raises :class:`OptionsError` naming the
field, which the hub shows on the spawn page.

User options, as the REST API takes them::

    {"workspace": "vision", "image": "notebook", "gpus": 1, "datasets": ["cats", "dogs@2"]}
"""

from __future__ import annotations

import datetime as dt
import html
import re
from dataclasses import dataclass, field
from typing import Mapping, Sequence

DEFAULT_IMAGE = "notebook"
DATASET_SPEC = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}(@(\d+|latest))?$")


class OptionsError(ValueError):
    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field


@dataclass(frozen=True)
class JupyterOptions:
    workspace: str
    image: str = DEFAULT_IMAGE
    gpus: int = 1
    datasets: tuple[str, ...] = ()


@dataclass(frozen=True)
class WorkspaceChoices:
    """What the form offers in one workspace (read from the registry as the user)."""

    images: Sequence[str] = (DEFAULT_IMAGE,)
    datasets: Sequence[str] = ()
    gpu_kind: str = "gpu"
    note: str = ""
    references: Mapping[str, str] = field(default_factory=dict)  # image name -> full reference


def parse_options(raw: Mapping | None, workspaces: Sequence[str]) -> JupyterOptions:
    """Check user options against the workspaces the user is a member of."""
    raw = dict(raw or {})
    unknown = sorted(set(raw) - {"workspace", "image", "gpus", "datasets", "profile"})
    if unknown:
        raise OptionsError(unknown[0], "unknown option")
    workspace = raw.get("workspace")
    if not workspace:
        if len(workspaces) == 1:
            workspace = workspaces[0]
        else:
            raise OptionsError("workspace", "choose a workspace" if workspaces else
                               "you are not a member of any workspace; ask an administrator to add you to one")
    if workspace not in workspaces:
        raise OptionsError("workspace", f"you are not a member of a workspace named {workspace!r}")
    image = raw.get("image") or DEFAULT_IMAGE
    if not isinstance(image, str) or len(image) > 512 or any(c.isspace() for c in image):
        raise OptionsError("image", "must be an image name or reference without spaces")
    gpus = raw.get("gpus", 1)
    if isinstance(gpus, str) and gpus.strip().isdigit():
        gpus = int(gpus)
    if gpus not in (0, 1) or isinstance(gpus, bool):
        raise OptionsError("gpus", "a Jupyter training has 0 or 1 GPU")
    datasets = raw.get("datasets") or []
    if isinstance(datasets, str):
        datasets = [datasets]
    for d in datasets:
        if not isinstance(d, str) or not DATASET_SPEC.match(d):
            raise OptionsError("datasets", f"{d!r} is not NAME or NAME@VERSION")
    if len({d.split("@")[0] for d in datasets}) != len(datasets):
        raise OptionsError("datasets", "a dataset is named twice")
    return JupyterOptions(workspace=workspace, image=image, gpus=gpus, datasets=tuple(datasets))


def check_choices(opts: JupyterOptions, choices: WorkspaceChoices) -> None:
    """The image and datasets must be the chosen workspace's own (or built in)."""
    if opts.image not in choices.images:
        raise OptionsError("image", f"{opts.image!r} is not an image of workspace {opts.workspace!r}")
    names = set(choices.datasets)
    for d in opts.datasets:
        if d.split("@")[0] not in names:
            raise OptionsError("datasets", f"no dataset {d!r} in workspace {opts.workspace!r}")


def from_form(formdata: Mapping[str, list[str]]) -> dict:
    """The spawn form's fields (lists of strings, as the hub hands them) into user options."""
    workspace = (formdata.get("workspace") or [""])[0]
    # every workspace's image and dataset fields are posted; only the chosen one's count
    image = (formdata.get(f"image.{workspace}") or [DEFAULT_IMAGE])[0]
    return {
        "workspace": workspace,
        "image": image,
        "gpus": 1 if (formdata.get("gpu") or [""])[0] in ("1", "on", "true") else 0,
        "datasets": list(formdata.get(f"datasets.{workspace}") or []),
    }


def render_form(choices: Mapping[str, WorkspaceChoices], selected: str | None = None) -> str:
    """The options form: a workspace, then that workspace's images and datasets, and the GPU switch."""
    if not choices:
        return ("<p>You are not a member of any workspace yet: ask an administrator or a workspace "
                "manager to add you to one.</p>")
    esc = html.escape
    names = sorted(choices)
    selected = selected if selected in choices else names[0]
    parts = ['<div class="form-group"><label for="fb-workspace">Workspace</label>',
             '<select class="form-control" name="workspace" id="fb-workspace">']
    parts += [f'<option value="{esc(n)}"{" selected" if n == selected else ""}>{esc(n)}</option>' for n in names]
    parts.append("</select></div>")
    for name in names:
        c = choices[name]
        hidden = "" if name == selected else " hidden"
        parts.append(f'<fieldset class="fb-workspace" data-workspace="{esc(name)}"{hidden}>')
        parts.append(f'<div class="form-group"><label for="fb-image-{esc(name)}">Image</label>'
                     f'<select class="form-control" name="image.{esc(name)}" id="fb-image-{esc(name)}">')
        parts += [f'<option value="{esc(i)}"{" selected" if i == DEFAULT_IMAGE else ""}>{esc(i)}</option>'
                  for i in c.images]
        parts.append("</select>")
        if c.note:
            parts.append(f'<small class="form-text text-muted">{esc(c.note)}</small>')
        parts.append("</div>")
        if c.datasets:
            parts.append('<div class="form-group"><label>Datasets (read-only under datasets/)</label>')
            for d in c.datasets:
                parts.append(f'<div class="checkbox"><label><input type="checkbox" name="datasets.{esc(name)}" '
                             f'value="{esc(d)}"> {esc(d)}</label></div>')
            parts.append("</div>")
        else:
            parts.append('<p class="text-muted">This workspace has no datasets yet.</p>')
        parts.append("</fieldset>")
    gpu_kind = choices[selected].gpu_kind
    kind = "GPU" if gpu_kind == "gpu" else "GPU slot (this machine has no GPU)"
    parts.append(f'<div class="checkbox"><label><input type="checkbox" name="gpu" value="1" checked> '
                 f"One {esc(kind)} (waits in the workspace's queue when none is free)</label></div>")
    # show only the chosen workspace's images and datasets (the server checks them again)
    parts.append("<script>(function(){var s=document.getElementById('fb-workspace');"
                 "function show(){document.querySelectorAll('fieldset.fb-workspace').forEach(function(f){"
                 "f.hidden=f.dataset.workspace!==s.value;});}s.addEventListener('change',show);show();})();"
                 "</script>")
    return "\n".join(parts)


def queue_message(lease: Mapping) -> str:
    """The progress page's line while a lease waits."""
    q = lease.get("queue") or {}
    where = f"position {q['position']} in the queue" if q.get("position") else "queued"
    if q.get("workspace_position"):
        where += f" ({_ordinal(q['workspace_position'])} in workspace {lease.get('workspace')})"
    parts = [f"Waiting for a GPU: {where}"]
    reason = q.get("reason") or lease.get("reason") or ""
    if q.get("estimated_start") and "estimated start" not in reason:
        start = dt.datetime.fromtimestamp(q["estimated_start"], dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        parts.append(f"estimated start {start}")
    if reason:
        parts.append(reason)
    return "; ".join(parts)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def local_environment(opts: JupyterOptions, lease: Mapping | None, *, public_url: str,
                      datasets_dir: str | None) -> dict[str, str]:
    """The server's environment on one machine: its GPU (or slot) and the Flightbase client's settings."""
    env = {"FLIGHTBASE_WORKSPACE": opts.workspace, "FLIGHTBASE_URL": public_url, "FLIGHTBASE_IMAGE": opts.image}
    gpus = [str(g) for g in (lease or {}).get("gpus", [])]
    kind = (lease or {}).get("gpu_kind", "gpu")
    env["FLIGHTBASE_NUM_GPUS"] = str(len(gpus))
    env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus) if kind == "gpu" else ""
    if lease:
        env["FLIGHTBASE_LEASE_ID"] = lease["id"]
        env["FLIGHTBASE_GPU_KIND"] = kind
        if kind == "cpu-slot":
            env["FLIGHTBASE_CPU_SLOTS"] = ",".join(gpus)
    if datasets_dir:
        env["FLIGHTBASE_DATASETS_DIR"] = datasets_dir
    return env


"""What a Jupyter training's container gets on one machine, as pure functions (no engine, no hub).

The docker spawner (``docker.py``) resolves the person's options, account,
lease and workspace settings into a :class:`NotebookContainer`, applies the
DockerSpawner trait values :func:`spawn_overrides` returns, and lets
DockerSpawner create and start the container. Tested with literal output in
tests/containers/test_notebook_options.py.

- :func:`spawn_overrides`: the image, the mounts, the memory limit, the
  account, the labels and the security options (docs/security.md);
- :func:`container_environment`: what the server's Flightbase client and
  CUDA need to know, as seen from inside the container;
- :func:`image_source`: where an image comes from, and whether its workspace
  may take it from there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from flightbase_spawner import options as fbopts

LABEL = "flightbase"
GB = 1 << 30  # memory_gb_per_gpu counts in GiB, as the jobs' containers do
PIDS_LIMIT = 4096
SHM_BYTES = 1 << 30
DATASETS = "/datasets"


@dataclass(frozen=True)
class NotebookContainer:
    """One Jupyter training's server, resolved: who runs it, in which image, with which lease."""

    user: str  # the hub user
    server: str  # the named server ("" for the default one)
    workspace: str
    image: str  # the name the person chose
    reference: str  # what the engine runs (the registry's reference of that name)
    uid: int
    gid: int
    groups: Sequence[int]  # the workspace's system group (empty without root)
    home: str  # the person's home on the host: an entry of a root-owned folder
    memory_gb_per_gpu: float
    cores: int  # CPU slot i runs on core i mod cores
    lease: Mapping | None = None  # the granted lease (None: a server without GPU)


def home_in_container(user: str) -> str:
    return f"/home/{user}"


def notebook_dir(n: NotebookContainer) -> str:
    """Where the server opens: ``~/<workspace>`` (prepared on the host, as the person, before the start)."""
    return f"{home_in_container(n.user)}/{n.workspace}"


def memory_bytes(memory_gb_per_gpu: float, gpus: int) -> int:
    """The container's memory limit: the workspace's setting per GPU held; no GPU counts as one."""
    return int(memory_gb_per_gpu * max(1, gpus) * GB)


def cpuset(slots: Sequence[int], cores: int) -> str:
    """The cores a server on CPU slots may use: slot i runs on core i mod the number of cores."""
    return ",".join(str(c) for c in sorted({int(s) % cores for s in slots}))


def spawn_overrides(n: NotebookContainer) -> dict:
    """DockerSpawner trait values for one server (the spawner sets each on itself before DockerSpawner's start).

    - ``mounts``: the home itself (never a path inside it: the engine resolves a
      mount source as root, following links, and the person may swap anything
      in their home), writable, at ``/home/<user>``; each dataset version of the
      lease read-only at ``/datasets/<name>``. Bind mounts (not ``volumes``'
      binds), so a missing source is an error rather than a folder the engine
      makes as root.
    - ``extra_create_kwargs``: the person's uid:gid, the labels, the notebook's
      folder as the working directory.
    - ``extra_host_config``: the workspace's group as the only extra group, no
      capability, ``no-new-privileges``, a pids limit, no swap beyond the memory
      limit, no core dumps, an init process, the host's network (the hub and
      the services listen on loopback), and exactly its GPU: a device request
      for the lease's GPU, or the core of its CPU slot.
    """
    lease = n.lease or {}
    gpus = [int(g) for g in lease.get("gpus") or ()]
    memory = memory_bytes(n.memory_gb_per_gpu, len(gpus))
    labels = {f"{LABEL}.user": n.user, f"{LABEL}.server": n.server, f"{LABEL}.workspace": n.workspace}
    if lease.get("id"):
        labels[f"{LABEL}.lease"] = str(lease["id"])
    mounts = [{"type": "bind", "source": n.home, "target": home_in_container(n.user), "read_only": False}]
    mounts += [{"type": "bind", "source": d["path"], "target": f"{DATASETS}/{d['name']}", "read_only": True}
               for d in sorted(lease.get("datasets") or (), key=lambda d: d["name"])]
    host_config = {
        "group_add": [str(g) for g in n.groups],
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "pids_limit": PIDS_LIMIT,
        "memswap_limit": memory,
        "shm_size": min(SHM_BYTES, memory // 2),
        "ulimits": [{"Name": "core", "Soft": 0, "Hard": 0}],
        "init": True,
        "network_mode": "host",
        # a server that dies stays (stopped) until the hub's poll has read its exit code and its
        # stop removes it (DockerSpawner's ``remove``), rather than vanishing with its reason
        "auto_remove": False,
    }
    if gpus and lease.get("gpu_kind", "gpu") == "gpu":
        host_config["device_requests"] = [{"Driver": "", "Count": 0, "DeviceIDs": [str(g) for g in gpus],
                                           "Capabilities": [["gpu"]], "Options": {}}]
    elif gpus:
        host_config["cpuset_cpus"] = cpuset(gpus, n.cores)
    return {
        # the image the options named (DockerSpawner resolves user_options' image through
        # allowed_images; a request that named none gets the default, resolved here)
        "image": n.reference,
        "allowed_images": {n.image: n.reference},
        "notebook_dir": notebook_dir(n),
        "mounts": mounts,
        "mem_limit": memory,
        "extra_create_kwargs": {"user": f"{n.uid}:{n.gid}", "labels": labels, "working_dir": notebook_dir(n)},
        "extra_host_config": host_config,
    }


def container_environment(n: NotebookContainer, opts: fbopts.JupyterOptions, *, public_url: str) -> dict[str, str]:
    """The server's environment as the local spawner's (:func:`~flightbase_spawner.options.local_environment`),
    seen from inside its container: the datasets at ``/datasets``, the GPU numbered from 0, its own home."""
    lease = n.lease
    env = fbopts.local_environment(opts, lease, public_url=public_url,
                                   datasets_dir=DATASETS if lease and lease.get("datasets") else None)
    gpus = (lease or {}).get("gpus") or []
    if (lease or {}).get("gpu_kind", "gpu") == "gpu" and gpus:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in range(len(gpus)))  # the container sees its own only
        env["NVIDIA_VISIBLE_DEVICES"] = ",".join(str(g) for g in gpus)
    else:
        # where the NVIDIA runtime is the engine's default, an image's NVIDIA_VISIBLE_DEVICES=all
        # (CUDA's base images set it) would hand every GPU to a server that holds none
        env["NVIDIA_VISIBLE_DEVICES"] = "void"
    env.update({"HOME": home_in_container(n.user), "USER": n.user, "LOGNAME": n.user})
    return env


class ImageRefused(ValueError):
    """An image the server may not (or cannot) take from where its reference points."""


@dataclass(frozen=True)
class ImageSource:
    repository: str
    tag: str  # a tag, or a digest (sha256:...)
    registry: str  # the reference's registry host; "" for a name of the local engine
    platform_registry: bool  # the platform's OCI registry: pulled with the services' account


def image_source(reference: str, workspace: str, platform_registry: str) -> ImageSource:
    """Where ``reference`` comes from (Docker's rule: a first component with a '.' or ':', or
    ``localhost``, names a registry). From the platform's registry (``host:port``), only an
    image under ``<host>/<workspace>/``: another workspace's uploads are not this server's."""
    if not reference or any(c.isspace() for c in reference):
        raise ImageRefused(f"image: {reference!r} is not an image reference")
    first, _, rest = reference.partition("/")
    registry = first if rest and ("." in first or ":" in first or first == "localhost") else ""
    name, _, digest = reference.partition("@")
    repository, tag = name.rsplit(":", 1) if ":" in name.rsplit("/", 1)[-1] else (name, "latest")
    if digest:  # pinned: the digest is what is pulled (an upload's reference is <repository>:<tag>@<digest>)
        tag = digest
    ours = bool(platform_registry) and registry == platform_registry
    if ours and not repository.startswith(f"{registry}/{workspace}/"):
        raise ImageRefused(f"image: {reference!r} is not one of workspace {workspace!r}")
    return ImageSource(repository=repository, tag=tag, registry=registry, platform_registry=ours)

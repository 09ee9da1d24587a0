"""The Kubernetes execution backend.

- :mod:`.settings`: :class:`KubernetesSettings` (``FLIGHTBASE_K8S_*``).
- :mod:`.objects`: pure builders of each job's objects (Job, indexed Job +
  Service, MPIJob) and the communication settings.
- :mod:`.client`: the one API interface (:class:`KubeClient`) and its
  implementation over the official client.
- :mod:`.backend`: :class:`KubernetesBackend` (ports.Backend): create, watch,
  reconcile, stop, re-adopt.
- :mod:`.nodes`: :class:`KubernetesNodes` (ports.NodeInventory).

:func:`make_kubernetes_backend` is the composition root's entry point.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from flightbase_jobqueue.backends.spec import LaunchSpec

from .backend import KubernetesBackend
from .client import ApiKubeClient, KubeClient, KubeError
from .nodes import KubernetesNodes
from .objects import KubeLaunchSpec
from .settings import KubernetesSettings

__all__ = [
    "ApiKubeClient", "KubeClient", "KubeError", "KubeLaunchSpec", "KubernetesBackend",
    "KubernetesNodes", "KubernetesSettings", "make_kubernetes_backend",
]


def make_kubernetes_backend(settings: KubernetesSettings | None, resolve: Callable[[str], LaunchSpec], *,
                            client: KubeClient | None = None, watch: bool = True, data_dir: Path | None = None
                            ) -> tuple[KubernetesBackend, KubernetesNodes]:
    """The backend and the node inventory, sharing one API client.

    ``settings``: None reads ``FLIGHTBASE_K8S_*``.  ``resolve(job_id)`` returns the
    job's :class:`LaunchSpec` (the backend adds its part, :class:`KubeLaunchSpec`).
    ``data_dir``: the jobqueue's data folder (``KubernetesBackend``).  The backend
    re-adopts the objects it finds by label before it returns, then (``watch``)
    follows pods in a thread.
    """
    settings = settings or KubernetesSettings.from_env()
    client = client or ApiKubeClient(settings.namespace)
    backend = KubernetesBackend(client, resolve, settings, data_dir=data_dir)
    backend.adopt()
    if watch:
        backend.start_watching()
    return backend, KubernetesNodes(client, settings)

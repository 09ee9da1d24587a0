"""Execution backends behind the coordinator's :class:`~flightbase_jobqueue.ports.Backend` port.

:func:`make_backend` is the composition root's one choice of backend (the
``backend`` platform setting, ``FLIGHTBASE_BACKEND``): ``docker`` runs jobs as
containers on this machine, ``local`` as processes on this machine,
``kubernetes`` as objects in a cluster; ``sim`` runs nothing (benchmarks and
tests only: :mod:`~flightbase_jobqueue.backends.simulated`).  Each
comes with its node inventory.  Besides the port, both backends offer what
the API reads: ``launch_spec``, ``missing_tool``, ``rank_prefix``,
``log_tail``, ``log_from`` and ``metric_records`` (``backends.spec.JobRef``).
"""

from __future__ import annotations

from typing import Callable

BACKENDS = ("docker", "local", "kubernetes", "sim")


class UnknownBackend(ValueError):
    def __init__(self, name: str):
        super().__init__(f"unknown execution backend {name!r}; known backends: {', '.join(BACKENDS)}")


def make_backend(settings, resolve: Callable, *, kube_settings=None, kube_client=None, watch: bool = True,
                 resolve_many: Callable | None = None):
    """``(backend, inventory)`` for ``settings.backend`` (a :class:`~flightbase_server.settings.PlatformSettings`).

    ``resolve(job_id)`` returns the job's shared ``LaunchSpec`` (``resolve_many``, when given, many
    at once: ``{job_id: LaunchSpec or the error}``, for the simulated backend).  Kubernetes:
    ``kube_settings`` (None: ``FLIGHTBASE_K8S_*``), ``kube_client`` (None: the
    in-cluster or kubeconfig API client), ``watch`` (follow pods in a thread).
    An unknown name is a configuration error, not a fallback."""
    if settings.backend in ("local", "docker"):
        from flightbase_server.accounts import AccountPolicy
        from flightbase_jobqueue.backends.local import LocalBackend, LocalNodes

        gpu_kind = settings.gpus[0]["kind"] if settings.gpus else "gpu"
        accounts = AccountPolicy(home_root=str(settings.data_dir / "home"), single_user_dev=settings.single_user_dev)
        if settings.backend == "docker":
            from flightbase_jobqueue.backends.docker import DockerBackend

            backend = DockerBackend(settings.data_dir, resolve, gpu_kind=gpu_kind, accounts=accounts,
                                    oci_registry_url=settings.oci_registry_url)
        else:
            backend = LocalBackend(settings.data_dir, resolve, gpu_kind=gpu_kind, accounts=accounts)
        return backend, LocalNodes(settings.gpus)
    if settings.backend == "sim":  # benchmarking and testing only; chosen by the operator's settings alone
        from flightbase_jobqueue.backends.simulated import SimNodes, SimulatedBackend

        gpu_kind = settings.gpus[0]["kind"] if settings.gpus else "gpu"
        return (SimulatedBackend(settings.data_dir, resolve, speed=settings.sim_speed, gpu_kind=gpu_kind,
                                 resolve_many=resolve_many),
                SimNodes(settings.gpus))
    if settings.backend == "kubernetes":
        from flightbase_jobqueue.backends.kubernetes import make_kubernetes_backend

        return make_kubernetes_backend(kube_settings, resolve, client=kube_client, watch=watch,
                                       data_dir=settings.data_dir)
    raise UnknownBackend(settings.backend)

"""How the Kubernetes spawner tests build a notebook's pod: ``FlightbaseKubeSpawner`` made as the
hub makes it, kubespawner's own ``get_pod_manifest()``, and the stub API server's kubeconfig (a
mock: no cluster runs here; KubeSpawner loads a client configuration when it is made, and
building the manifest sends it no request). Used by test_kube_spawner_manifest.py and
test_server_token_in_pod.py."""

from __future__ import annotations

import asyncio
import os

import pytest

from flightbase_spawner.objects import GpuType, NotebookOptions, spawn_overrides

from .stubapi import StubApi

TOKEN = "hub-token-of-the-server-0123456789"
H100 = {"h100": GpuType(node_selector={"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"})}


@pytest.fixture(scope="module")
def kubeconfig(tmp_path_factory):
    with StubApi() as stub:
        path = stub.kubeconfig(tmp_path_factory.mktemp("kube") / "kubeconfig")
        before = os.environ.get("KUBECONFIG")
        os.environ["KUBECONFIG"] = str(path)
        try:
            yield path
        finally:
            if before is None:
                os.environ.pop("KUBECONFIG", None)
            else:
                os.environ["KUBECONFIG"] = before


def manifest(options: NotebookOptions) -> dict:
    from kubernetes_asyncio.client import ApiClient

    from flightbase_spawner.kube import FlightbaseKubeSpawner

    async def build() -> dict:
        spawner = FlightbaseKubeSpawner(_mock=True, namespace="flightbase")
        spawner.user.name = options.owner
        spawner.api_token = TOKEN
        overrides = spawn_overrides(options, gpu_resource="nvidia.com/gpu", gpu_types=H100, workspaces_pvc="ws",
                                    datasets_pvc="ds", shm_size="8Gi")
        for trait, value in overrides.items():
            setattr(spawner, trait, value)
        return ApiClient().sanitize_for_serialization(await spawner.get_pod_manifest())

    return asyncio.run(build())

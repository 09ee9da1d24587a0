"""The jobqueue's Kubernetes client over the official ``kubernetes`` package, against an API server.

Real: ``kubernetes`` as installed (37 changed ``ApiClient.call_api``; the jobqueue failed at
start-up with it), its configuration loaded from a kubeconfig, HTTP. Not real: the API server,
tests/kubernetes/stubapi.py (no cluster can run here), which answers what it was given."""

from __future__ import annotations

import pytest

from flightbase_jobqueue.backends.kubernetes import ApiKubeClient, KubeError

from .stubapi import StubApi

PODS = "/api/v1/namespaces/flightbase/pods"


@pytest.fixture
def cluster(tmp_path):
    from kubernetes import config

    pod_list = {"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "42"},
                "items": [{"kind": "Pod", "metadata": {"name": "p1", "labels": {"flightbase.io/job": "j1"}}}]}
    with StubApi(existing={PODS: pod_list, f"{PODS}/p1/log": {"line": "hello"}}) as stub:
        api_client = config.new_client_from_config(config_file=str(stub.kubeconfig(tmp_path / "kubeconfig")))
        yield stub, ApiKubeClient("flightbase", api_client=api_client)


def test_create_sends_the_object_and_answers_the_servers(cluster):
    stub, client = cluster
    created = client.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p2"},
                             "spec": {"containers": [{"name": "c", "image": "i"}]}})
    assert created["metadata"]["name"] == "p2" and created["metadata"]["uid"].startswith("uid-")
    assert stub.created[-1]["spec"]["containers"][0]["image"] == "i"
    assert ("POST", PODS) in stub.requests


def test_list_answers_the_items_and_the_resource_version(cluster):
    _, client = cluster
    items, version = client.list("Pod", "flightbase.io/job=j1")
    assert [i["metadata"]["name"] for i in items] == ["p1"] and version == "42"


def test_an_error_status_is_a_kube_error_with_its_status(cluster):
    _, client = cluster
    with pytest.raises(KubeError) as caught:
        client._call("GET", f"{PODS}/nothing")
    assert caught.value.status == 404
    client.delete("Pod", "nothing")  # a 404 on delete: already gone, not an error


def test_a_pods_log_comes_back_as_bytes(cluster):
    _, client = cluster
    assert client.pod_log("p1", "main") == b'{"line": "hello"}'

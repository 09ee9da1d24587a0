"""The stateful stub API server of the deployment test (``stubapi.ClusterStub``), driven by the
jobqueue's real client (``ApiKubeClient`` over the official ``kubernetes`` package) as a pod
drives it: ``load_incluster_config`` (the Service's address in the environment, the service
account's token and CA as files), TLS, the token checked. What the deployment test relies on:
create and its conflict, list by label, watch from a version, a delete that takes a Job's pods
with it, pod logs, and a wrong token refused. Needs no Docker engine."""

from __future__ import annotations

import threading

import pytest

from flightbase_jobqueue.backends.kubernetes import ApiKubeClient, KubeError

from .stubapi import ClusterStub

SELECTOR = "app.kubernetes.io/managed-by=flightbase-jobqueue"


def incluster_client(tmp_path, stub: ClusterStub, token: str, monkeypatch) -> ApiKubeClient:
    from kubernetes import client
    from kubernetes.config import incluster_config

    account = tmp_path / "serviceaccount"
    account.mkdir(exist_ok=True)
    (account / "token").write_text(token)
    (account / "ca.crt").write_bytes(stub.ca.read_bytes())
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", stub.host)
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(stub.port))
    # what config.load_incluster_config does, with the account's files here instead of
    # /var/run/secrets/kubernetes.io/serviceaccount
    configuration = client.Configuration()
    incluster_config.InClusterConfigLoader(token_filename=str(account / "token"),
                                           cert_filename=str(account / "ca.crt")).load_and_set(configuration)
    return ApiKubeClient("flightbase", api_client=client.ApiClient(configuration))


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    with ClusterStub("127.0.0.1", "secret-token", tmp_path, bind="127.0.0.1") as stub:
        yield stub, incluster_client(tmp_path, stub, "secret-token", monkeypatch)


def job(name: str) -> dict:
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": "flightbase", "labels": {"app.kubernetes.io/managed-by": "flightbase-jobqueue"}},
            "spec": {"template": {"spec": {"containers": [{"name": "training", "image": "i"}]}}}}


def test_create_list_conflict_and_delete_with_the_jobs_pods(cluster):
    stub, client = cluster
    created = client.create(job("j1"))
    assert created["metadata"]["uid"] and created["metadata"]["resourceVersion"]
    with pytest.raises(KubeError) as conflict:
        client.create(job("j1"))
    assert conflict.value.status == 409
    client.create({**job("other"), "metadata": {"name": "other", "namespace": "flightbase", "labels": {}}})
    items, version = client.list("Job", SELECTOR)
    assert [o["metadata"]["name"] for o in items] == ["j1"] and int(version) >= 2
    # the Job controller's pod, owned by the Job: the garbage collector's part goes with the Job
    stub.create("v1", "pods", {"metadata": {"name": "j1-abc", "namespace": "flightbase", "labels": {
        "app.kubernetes.io/managed-by": "flightbase-jobqueue"}, "ownerReferences": [
        {"kind": "Job", "name": "j1", "uid": created["metadata"]["uid"]}]}, "spec": {}})
    assert [p["metadata"]["name"] for p in client.list("Pod", SELECTOR)[0]] == ["j1-abc"]
    client.delete("Job", "j1")
    assert client.list("Job", SELECTOR)[0] == [] and client.list("Pod", SELECTOR)[0] == []
    client.delete("Job", "j1")  # a missing object is not an error for the client


def test_watch_replays_changes_after_a_version_in_order(cluster):
    stub, client = cluster
    _, version = client.list("Pod", SELECTOR)
    pod = {"metadata": {"name": "p", "namespace": "flightbase", "labels": {"app.kubernetes.io/managed-by": "flightbase-jobqueue"}},
           "spec": {}, "status": {"phase": "Pending"}}

    def kubelet():
        stub.create("v1", "pods", pod)
        stub.set_status("v1", "pods", "flightbase", "p", {"phase": "Running"})
        stub.delete("v1", "pods", "flightbase", "p")

    threading.Timer(0.3, kubelet).start()
    events = []
    for kind, obj in client.watch("Pod", SELECTOR, version, 2):
        events.append((kind, obj.get("status", {}).get("phase")))
        if kind == "DELETED":
            break
    assert events == [("ADDED", "Pending"), ("MODIFIED", "Running"), ("DELETED", "Running")]


def test_pod_logs_come_from_the_kubelet_and_a_waiting_container_is_400(cluster):
    stub, client = cluster
    stub.create("v1", "pods", {"metadata": {"name": "p", "namespace": "flightbase"}, "spec": {}})
    with pytest.raises(KubeError) as waiting:
        client.pod_log("p", "training")
    assert waiting.value.status == 400
    stub.logs = lambda namespace, pod, container: f"{namespace}/{pod}/{container}\n".encode()
    assert client.pod_log("p", "training") == b"flightbase/p/training\n"
    with pytest.raises(KubeError) as missing:
        client.pod_log("nope", "training")
    assert missing.value.status == 404


def test_a_wrong_token_is_refused(tmp_path, monkeypatch):
    with ClusterStub("127.0.0.1", "right", tmp_path, bind="127.0.0.1") as stub:
        client = incluster_client(tmp_path, stub, "wrong", monkeypatch)
        with pytest.raises(KubeError) as refused:
            client.list("Node", "")
        assert refused.value.status == 401

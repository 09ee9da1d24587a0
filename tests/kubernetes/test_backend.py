"""The Kubernetes backend's reconcile logic, against an in-memory fake API.

No cluster can run here (no Kubernetes, no container engine), so these tests
drive :class:`KubernetesBackend` through ``fakekube.FakeKube``, where the test
plays the controllers and the kubelet by setting pod phases.  What a real API
adds (admission, the MPI Operator's pods) is covered by the schema checks in
test_objects.py, not here.
"""

from __future__ import annotations

import pytest

from flightbase_jobqueue.backends.kubernetes import KubeLaunchSpec, KubernetesBackend, KubernetesNodes, KubernetesSettings
from flightbase_jobqueue.backends.kubernetes.objects import object_name
from flightbase_jobqueue.ports import Exited, Started, Stopped
from flightbase_jobqueue.scheduling.types import Job, Node

from .fakekube import FakeKube

SETTINGS = KubernetesSettings(namespace="fb", resync_seconds=5, backoff_max_seconds=1)
NOW = 1000.0


def spec_for(job_id: str, launcher: str = "horovod") -> KubeLaunchSpec:
    return KubeLaunchSpec(job_id=job_id, training_id="t1", workspace="vision", user="alice", launcher=launcher,
                          entrypoint="train.py", image="registry.example/training-base:1")


def make(kube: FakeKube, launchers: dict[str, str] | None = None) -> KubernetesBackend:
    launchers = launchers or {}
    return KubernetesBackend(kube, lambda job_id: spec_for(job_id, launchers.get(job_id, "horovod")), SETTINGS,
                             clock=lambda: NOW)


def job(job_id: str, gpus: int = 4) -> Job:
    return Job(id=job_id, workspace="vision", gpus=gpus)


def labels(job_id: str, role: str) -> dict:
    return {"app.kubernetes.io/managed-by": "flightbase-jobqueue", "flightbase.io/job": job_id, "flightbase.io/role": role}


def mpi_pods(kube: FakeKube, job_id: str, phase: str, *, launcher_phase: str | None = None, exit_code=None, record=True):
    name = object_name(job_id)
    for i in range(2):
        kube.set_pod(f"{name}-worker-{i}", labels(job_id, "worker"), phase, record=record)
    kube.set_pod(f"{name}-launcher", labels(job_id, "launcher"), launcher_phase or phase, exit_code=exit_code, record=record)


PLACEMENT = {"gpu-a": (0, 1), "gpu-b": (2, 3)}


def test_start_creates_the_mpijob_pinned_to_the_placed_nodes():
    kube = FakeKube()
    backend = make(kube)
    backend.start(job("j1"), PLACEMENT)
    (key,) = kube.objects
    assert key == ("MPIJob", "fb-j1")
    mpijob = kube.objects[key]
    worker = mpijob["spec"]["mpiReplicaSpecs"]["Worker"]
    assert worker["replicas"] == 2 and mpijob["spec"]["slotsPerWorker"] == 2
    terms = worker["template"]["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms == {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["gpu-a", "gpu-b"]}]}]}
    assert backend.poll_events() == []
    backend.start(job("j1"), PLACEMENT)  # idempotent
    assert len(kube.objects) == 1


def test_running_pods_start_the_job_and_the_launchers_exit_code_ends_it():
    kube = FakeKube()
    backend = make(kube)
    backend.start(job("j1"), PLACEMENT)
    version = backend.resync()
    mpi_pods(kube, "j1", "Pending")
    mpi_pods(kube, "j1", "Running")
    for kind, pod in kube.watch("Pod", "", version, 5):
        backend.apply(kind, pod)
    assert backend.poll_events() == [Started("j1", NOW)]
    kube.set_pod("fb-j1-launcher", labels("j1", "launcher"), "Failed", exit_code=3)
    backend.apply("MODIFIED", kube.objects[("Pod", "fb-j1-launcher")])
    assert backend.poll_events() == [Exited("j1", NOW, 3)]
    assert ("MPIJob", "fb-j1", None) in kube.deleted  # a finished job's objects go


def test_success_of_every_torchrun_node_is_exit_code_zero():
    kube = FakeKube()
    backend = make(kube, {"j2": "torchrun"})
    backend.start(job("j2"), PLACEMENT)
    assert sorted(kube.objects) == [("Job", "fb-j2"), ("Service", "fb-j2")]
    kube.set_pod("fb-j2-0", labels("j2", "node"), "Succeeded", exit_code=0)
    backend.resync()
    assert backend.poll_events() == []  # one of two nodes
    kube.set_pod("fb-j2-1", labels("j2", "node"), "Succeeded", exit_code=0)
    backend.resync()
    assert backend.poll_events() == [Started("j2", NOW), Exited("j2", NOW, 0)]


def test_stop_deletes_pods_with_the_grace_period_then_reports_stopped():
    kube = FakeKube()
    backend = make(kube)
    backend.start(job("j1"), PLACEMENT)
    mpi_pods(kube, "j1", "Running")
    backend.resync()
    assert backend.poll_events() == [Started("j1", NOW)]
    backend.stop("j1", 30, "preempted")
    assert sorted(kube.deleted) == [
        ("MPIJob", "fb-j1", None),
        ("Pod", "fb-j1-launcher", 30), ("Pod", "fb-j1-worker-0", 30), ("Pod", "fb-j1-worker-1", 30),
    ]
    backend.resync()  # the fake deletes at once; a cluster would after the grace period
    assert backend.poll_events() == [Stopped("j1", NOW)]
    backend.stop("j1", 30, "again")  # idempotent, and a no-op for unknown jobs
    backend.stop("nobody", 30, "unknown")
    assert backend.poll_events() == []


def test_a_dead_watch_does_not_freeze_state_the_resync_catches_up():
    kube = FakeKube()
    backend = make(kube)
    backend.start(job("j1"), PLACEMENT)
    mpi_pods(kube, "j1", "Running", record=False)  # changes the broken watch never delivers
    kube.break_watch = True
    with pytest.raises(Exception):
        backend.watch_once()  # the resync at the top of the cycle already saw them
    assert backend.poll_events() == [Started("j1", NOW)]
    mpi_pods(kube, "j1", "Running", launcher_phase="Succeeded", exit_code=0, record=False)
    backend.watch_once()  # the next cycle (after the backoff) lists again
    assert backend.poll_events() == [Exited("j1", NOW, 0)]


def test_watch_forever_backs_off_and_resyncs_after_an_error():
    kube = FakeKube()
    backend = make(kube)
    backend.start(job("j1"), PLACEMENT)
    mpi_pods(kube, "j1", "Running", record=False)
    kube.down = True
    backend.start_watching()
    try:
        kube.down = False  # the first list failed or not: either way a later cycle lists
        import time
        deadline = time.monotonic() + 5
        events = []
        while not events and time.monotonic() < deadline:
            events = backend.poll_events()
            time.sleep(0.05)
    finally:
        backend.close()
    assert events == [Started("j1", NOW)]


def test_after_a_restart_the_backend_adopts_its_objects_by_label():
    kube = FakeKube()
    make(kube).start(job("j1"), PLACEMENT)
    mpi_pods(kube, "j1", "Running")
    kube.objects[("Job", "someone-elses")] = {"kind": "Job", "metadata": {"name": "someone-elses", "labels": {}}}
    restarted = make(kube)
    assert restarted.adopt() == ["j1"]
    assert restarted.reattach("j1") is None
    assert restarted.poll_events() == [Started("j1", NOW)]
    assert restarted.reattach("gone") == "lost"
    assert restarted.poll_events() == [Exited("gone", NOW, 255)]
    mpi_pods(kube, "j1", "Running", launcher_phase="Succeeded", exit_code=0)
    restarted.resync()
    assert restarted.poll_events() == [Exited("j1", NOW, 0)]


def test_a_failure_part_way_deletes_what_was_created():
    kube = FakeKube()
    kube.fail_create.add("fb-j2")  # the Service goes through, the Job does not... both are named fb-j2
    backend = make(kube, {"j2": "torchrun"})
    original_create = kube.create
    calls = []

    def create(obj):
        calls.append(obj["kind"])
        if obj["kind"] == "Job":
            return original_create(obj)
        kube.fail_create.discard("fb-j2")
        result = original_create(obj)
        kube.fail_create.add("fb-j2")
        return result

    kube.create = create
    backend.start(job("j2"), PLACEMENT)
    assert calls == ["Service", "Job"]
    assert kube.objects == {}
    assert kube.deleted == [("Service", "fb-j2", None)]
    assert backend.poll_events() == [Exited("j2", NOW, 127)]


def test_an_image_that_cannot_be_used_fails_the_job_instead_of_waiting():
    kube = FakeKube()
    backend = make(kube, {"j3": "none"})
    backend.start(job("j3", gpus=1), {"gpu-a": (0,)})
    kube.set_pod("fb-j3-abcde", labels("j3", "main"), "Pending", waiting="InvalidImageName")
    backend.resync()
    assert backend.poll_events() == [Started("j3", NOW), Exited("j3", NOW, 127)]


def test_a_job_whose_objects_vanished_is_lost():
    kube = FakeKube()
    backend = make(kube, {"j3": "none"})
    backend.start(job("j3", gpus=1), {"gpu-a": (0,)})
    kube.objects.clear()
    backend.resync()
    assert backend.poll_events() == [Started("j3", NOW), Exited("j3", NOW, 255)]


def test_a_placement_the_launcher_cannot_express_fails_the_job():
    kube = FakeKube()
    backend = make(kube)
    backend.start(job("j4", gpus=3), {"gpu-a": (0, 1), "gpu-b": (0,)})
    assert kube.objects == {}
    assert backend.poll_events() == [Exited("j4", NOW, 127)]


def api_node(name, gpus, *, ready="True", cordoned=False, labels=None, rdma=None):
    allocatable = {"cpu": "64"}
    if gpus is not None:
        allocatable["nvidia.com/gpu"] = str(gpus)
    if rdma:
        allocatable["rdma/hca"] = str(rdma)
    return {"kind": "Node", "metadata": {"name": name, "labels": labels or {}},
            "spec": {"unschedulable": True} if cordoned else {},
            "status": {"allocatable": allocatable, "conditions": [{"type": "Ready", "status": ready}]}}


def test_node_inventory_from_the_api():
    kube = FakeKube()
    gfd = {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3", "nvidia.com/gpu.count": "8",
           "topology.kubernetes.io/zone": "z1", "unrelated": "x"}
    for n in (api_node("gpu-a", 8, labels=gfd, rdma=1), api_node("gpu-b", 4, cordoned=True),
              api_node("gpu-c", 2, ready="False"), api_node("cpu-1", None), api_node("cpu-2", 0)):
        kube.objects[("Node", n["metadata"]["name"])] = n
    assert KubernetesNodes(kube, SETTINGS).nodes() == (
        Node("gpu-a", 8, tuple(range(8)), {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3", "nvidia.com/gpu.count": "8",
                                           "topology.kubernetes.io/zone": "z1", "flightbase.io/rdma": "1"}),
        Node("gpu-b", 4, (0, 1, 2, 3), {}, schedulable=False),
        Node("gpu-c", 2, (0, 1), {}, schedulable=False),
    )


def test_node_inventory_keeps_the_last_answer_when_the_api_fails():
    kube = FakeKube()
    kube.objects[("Node", "gpu-a")] = api_node("gpu-a", 2)
    clock = [0.0]
    inventory = KubernetesNodes(kube, SETTINGS, ttl=10, clock=lambda: clock[0])
    first = inventory.nodes()
    kube.down = True
    clock[0] = 60
    assert inventory.nodes() == first

"""The Kubernetes backend's reconcile logic, against an in-memory fake API.

No cluster can run here (no Kubernetes, no container engine), so these tests
drive :class:`KubernetesBackend` through ``fakekube.FakeKube`` (a mock of the
one client interface, ``KubeClient``), where the test plays the controllers
and the kubelet by setting pod phases and pod logs.  What a real API
adds (admission, the MPI Operator's pods) is covered by the schema checks in
test_objects.py, not here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flightbase_jobqueue.backends.kubernetes import KubeLaunchSpec, KubernetesBackend, KubernetesNodes, KubernetesSettings
from flightbase_jobqueue.backends.spec import DatasetVersion, JobRef, LaunchSpec
from flightbase_jobqueue.backends.kubernetes.client import KubeError
from flightbase_jobqueue.backends.kubernetes.objects import object_name
from flightbase_jobqueue.ports import Exited, Started, Stopped
from flightbase_jobqueue.scheduling.types import Job, Node

from .fakekube import FakeKube

SETTINGS = KubernetesSettings(namespace="fb", resync_seconds=5, backoff_max_seconds=1)
NOW = 1000.0


def spec_for(job_id: str, launcher: str = "horovod") -> KubeLaunchSpec:
    return KubeLaunchSpec(job_id=job_id, training_id="t1", workspace="vision", user="alice", launcher=launcher,
                          entrypoint="train.py", image="registry.example/training-base:1")


def make(kube: FakeKube, launchers: dict[str, str] | None = None, **kw) -> KubernetesBackend:
    launchers = launchers or {}
    return KubernetesBackend(kube, lambda job_id: spec_for(job_id, launchers.get(job_id, "horovod")), SETTINGS,
                             clock=lambda: NOW, **kw)


def job(job_id: str, gpus: int = 4, restarts: int = 0) -> Job:
    return Job(id=job_id, workspace="vision", gpus=gpus, restarts=restarts)


def labels(job_id: str, role: str, run: int = 0) -> dict:
    return {"app.kubernetes.io/managed-by": "flightbase-jobqueue", "flightbase.io/job": job_id, "flightbase.io/role": role,
            "flightbase.io/run": str(run)}


def mpi_pods(kube: FakeKube, job_id: str, phase: str, *, launcher_phase: str | None = None, exit_code=None, record=True,
             run: int = 0):
    name = object_name(job_id, run)
    for i in range(2):
        kube.set_pod(f"{name}-worker-{i}", labels(job_id, "worker", run), phase, record=record)
    kube.set_pod(f"{name}-launcher", labels(job_id, "launcher", run), launcher_phase or phase, exit_code=exit_code,
                 record=record)


PLACEMENT = {"gpu-a": (0, 1), "gpu-b": (2, 3)}


def running_mpijob(**kw) -> tuple[FakeKube, KubernetesBackend]:
    """A backend whose MPIJob "j1" runs (its Started already taken)."""
    kube = FakeKube()
    backend = make(kube, **kw)
    backend.start(job("j1"), PLACEMENT)
    mpi_pods(kube, "j1", "Running")
    backend.resync()
    assert backend.poll_events() == [Started("j1", NOW)]
    return kube, backend


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
    kube, backend = running_mpijob()
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
    backend = make(kube, {"j4": "none"})  # one process cannot span two nodes
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


# -- runs of a restarted job ------------------------------------------------------------------
def test_a_restarted_job_gets_objects_of_its_own_while_the_old_run_is_still_there():
    """Run 0 was stopped (preempted) but its MPIJob could not be deleted yet (an API
    error) and a pod of it still terminates: run 1 is created under its own name, and
    the old pod does not count for the new run."""
    kube, backend = running_mpijob()
    original_delete = kube.delete
    kube.delete = lambda kind, name, **kw: None  # the API accepts nothing: everything stays
    backend.stop("j1", 30, "preempted")
    for pod in kube.pods_of("j1"):  # the grace period ran out; the pods are gone, the MPIJob is not
        kube.objects.pop(("Pod", pod["metadata"]["name"]))
    backend.resync()
    assert backend.poll_events() == [Stopped("j1", NOW)]
    kube.delete = original_delete
    kube.set_pod("fb-j1-launcher", labels("j1", "launcher"), "Failed", exit_code=143)  # a straggler of run 0

    backend.start(job("j1", restarts=1), PLACEMENT)
    assert sorted(kube.objects) == [("MPIJob", "fb-j1"), ("MPIJob", "fb-j1-r1"), ("Pod", "fb-j1-launcher")]
    run1 = kube.objects[("MPIJob", "fb-j1-r1")]
    assert run1["metadata"]["labels"]["flightbase.io/run"] == "1"
    template = run1["spec"]["mpiReplicaSpecs"]["Worker"]["template"]
    assert template["metadata"]["labels"]["flightbase.io/run"] == "1"
    env = {e["name"]: e.get("value") for e in template["spec"]["containers"][0]["env"]}
    assert env["FLIGHTBASE_RESTARTS"] == "1"
    backend.resync()
    assert backend.poll_events() == []  # run 0's failed launcher is not run 1's
    mpi_pods(kube, "j1", "Running", run=1)
    backend.resync()
    assert backend.poll_events() == [Started("j1", NOW)]


def test_after_a_restart_the_latest_run_is_adopted_and_older_runs_deleted():
    kube = FakeKube()
    first = make(kube)
    first.start(job("j1"), PLACEMENT)
    KubernetesBackend(kube, lambda job_id: spec_for(job_id), SETTINGS, clock=lambda: NOW).start(
        job("j1", restarts=1), PLACEMENT)  # both runs' objects exist, as after a crash mid-restart
    mpi_pods(kube, "j1", "Running", run=1)
    restarted = make(kube)
    assert restarted.adopt() == ["j1"]
    assert ("MPIJob", "fb-j1", None) in kube.deleted and ("MPIJob", "fb-j1-r1") in kube.objects
    assert restarted.poll_events() == [Started("j1", NOW)]


# -- output: logs and metrics ---------------------------------------------------------------------
def ref(job_id: str) -> JobRef:
    return JobRef(job_id, "vision", "t1")


def test_logs_are_read_live_from_the_pods_and_kept_when_the_run_ends(tmp_path):
    kube, backend = running_mpijob(data_dir=tmp_path)
    kube.logs["fb-j1-launcher"] = b"[1,0]<stdout>:loss=0.5\n[1,1]<stdout>:hello\n"
    kube.logs["fb-j1-worker-0"] = b"sshd noise\n"  # workers' own output is not the job's
    assert backend.log_tail(ref("j1"), 1 << 20) == b"[1,0]<stdout>:loss=0.5\n[1,1]<stdout>:hello\n"
    assert backend.log_tail(ref("j1"), 6) == b"hello\n"
    assert backend.log_from(ref("j1"), len(b"[1,0]<stdout>:")) == b"loss=0.5\n[1,1]<stdout>:hello\n"
    kube.logs["fb-j1-launcher"] += b"[1,0]<stdout>:loss=0.25\n"
    mpi_pods(kube, "j1", "Running", launcher_phase="Succeeded", exit_code=0)
    backend.resync()
    assert backend.poll_events() == [Exited("j1", NOW, 0)]
    assert ("MPIJob", "fb-j1", None) in kube.deleted
    kube.objects.clear()  # the operator removed the pods with the MPIJob
    kept = b"[1,0]<stdout>:loss=0.5\n[1,1]<stdout>:hello\n[1,0]<stdout>:loss=0.25\n"
    assert (tmp_path / "jobs" / "j1" / "output.log").read_bytes() == kept
    assert backend.log_tail(ref("j1"), 1 << 20) == kept
    assert backend.rank_prefix("horovod") == r"^\[\d+,(?P<rank>\d+)\]<(?:stdout|stderr)>:"  # mpirun --tag-output
    assert backend.rank_prefix("torchrun") == r"^\[default(?P<rank>\d+)\]:"
    assert backend.rank_prefix("none") is None

    metrics_file = tmp_path / "workspaces" / "vision" / "trainings" / "t1" / "j1" / "metrics.jsonl"
    metrics_file.parent.mkdir(parents=True)
    metrics_file.write_text('{"step": 1, "acc": 0.9}\n')
    lines = backend.log_tail(ref("j1"), 1 << 20).decode().splitlines()
    assert backend.metric_records(ref("j1"), lines) == [{"step": 1.0, "acc": 0.9}, {"loss": 0.5}, {"loss": 0.25}]


def test_a_stopped_run_keeps_the_output_it_printed_before_the_stop(tmp_path):
    kube, backend = running_mpijob(data_dir=tmp_path)
    kube.logs["fb-j1-launcher"] = b"epoch 1\n"
    backend.stop("j1", 30, "preempted")
    assert (tmp_path / "jobs" / "j1" / "output.log").read_bytes() == b"epoch 1\n"


def test_code_is_staged_on_the_workspaces_volume_once_per_training(tmp_path):
    code = tmp_path / "upload"
    code.mkdir()
    (code / "train.py").write_text("print('hi')\n")
    kube = FakeKube()
    backend = KubernetesBackend(kube, lambda job_id: LaunchSpec(
        job_id=job_id, training_id="t1", workspace="vision", user="alice", launcher="none", entrypoint="train.py",
        code_dir=code), SETTINGS, data_dir=tmp_path / "data", clock=lambda: NOW)
    backend.start(job("j5", gpus=1), {"gpu-a": (0,)})
    staged = tmp_path / "data" / "workspaces" / "vision" / "trainings" / "t1" / "code" / "train.py"
    assert staged.read_text() == "print('hi')\n"
    (code / "train.py").write_text("changed\n")
    backend.start(job("j6", gpus=1), {"gpu-a": (0,)})
    assert staged.read_text() == "print('hi')\n"  # a training's jobs all run the code it was submitted with


def test_the_shared_spec_gets_the_clusters_image_reference_and_pull_secret():
    settings = KubernetesSettings(image_prefix="registry.example/fb/", image_pull_secret="regcred", mpi_operator=False)
    backend = KubernetesBackend(FakeKube(), lambda job_id: None, settings)
    base = LaunchSpec(job_id="j", training_id="t", workspace="w", user="u", launcher="none", entrypoint="a.py",
                      image="training-base:1", datasets=(DatasetVersion("cifar", 3, Path("/data/datasets/w/cifar/3")),))
    spec = backend.launch_spec(base)
    assert isinstance(spec, KubeLaunchSpec)
    assert (spec.image, spec.image_pull_secret, spec.datasets) == ("registry.example/fb/training-base:1", "regcred",
                                                                  base.datasets)
    assert backend.launch_spec(LaunchSpec(**{**base.common(), "image": "ghcr.io/x/y:2"})).image == "ghcr.io/x/y:2"
    # the built-in images (the registry names them flightbase/<name>:<tag>) come from the chart's images.registry
    builtin = LaunchSpec(**{**base.common(), "image": "flightbase/training-base:0.1.0"})
    assert backend.launch_spec(builtin).image == "flightbase/training-base:0.1.0"  # not set: as named
    in_cluster = KubernetesBackend(FakeKube(), lambda job_id: None,
                                   KubernetesSettings(image_prefix="registry.example/fb/",
                                                      builtin_image_registry="ghcr.io/flightbase/"))
    assert in_cluster.launch_spec(builtin).image == "ghcr.io/flightbase/training-base:0.1.0"
    assert in_cluster.launch_spec(base).image == "registry.example/fb/training-base:1"
    for other in ("flightbase/a/b:1", "reg.example/flightbase/x:1", "ghcr.io/x/y:2"):
        assert in_cluster.launch_spec(LaunchSpec(**{**base.common(), "image": other})).image == other
    assert backend.missing_tool("horovod") == ("horovod trainings need the MPI Operator, which this cluster does not "
                                               "have (gpu.mpiOperator)")
    assert backend.missing_tool("torchrun") is None


# -- choosing the backend ----------------------------------------------------------------------------
def test_make_backend_chooses_by_the_backend_setting(tmp_path):
    from flightbase_server.settings import PlatformSettings
    from flightbase_jobqueue.backends import UnknownBackend, make_backend
    from flightbase_jobqueue.backends.local import LocalBackend, LocalNodes

    gpus = ({"index": 0, "kind": "cpu-slot", "name": "slot 0"},)
    local = PlatformSettings.from_env({"FLIGHTBASE_DATA_DIR": str(tmp_path), "FLIGHTBASE_GPUS": json.dumps(gpus)})
    assert local.backend == "local"
    backend, inventory = make_backend(local, lambda job_id: None)
    assert isinstance(backend, LocalBackend) and backend.gpu_kind == "cpu-slot"
    assert isinstance(inventory, LocalNodes) and [n.name for n in inventory.nodes()] == ["local"]

    kube = FakeKube()
    kube.objects[("Node", "gpu-a")] = api_node("gpu-a", 8)
    cluster = PlatformSettings.from_env({"FLIGHTBASE_DATA_DIR": str(tmp_path), "FLIGHTBASE_BACKEND": "kubernetes"})
    backend, inventory = make_backend(cluster, lambda job_id: None, kube_settings=SETTINGS, kube_client=kube, watch=False)
    assert isinstance(backend, KubernetesBackend) and backend.data_dir == tmp_path
    assert [(n.name, n.total) for n in inventory.nodes()] == [("gpu-a", 8)]

    with pytest.raises(UnknownBackend, match="unknown execution backend 'slurm'; known backends: docker, local, kubernetes"):
        make_backend(PlatformSettings(data_dir=tmp_path, backend="slurm"), lambda job_id: None)


def test_kubernetes_settings_from_the_environment():
    settings = KubernetesSettings.from_env({"FLIGHTBASE_K8S_MPI_OPERATOR": "false", "FLIGHTBASE_K8S_RDMA_PER_POD": "2",
                                            "FLIGHTBASE_K8S_IMAGE_PREFIX": "reg/fb"})
    assert (settings.mpi_operator, settings.rdma_per_pod, settings.image_prefix) == (False, 2, "reg/fb")
    with pytest.raises(ValueError, match="FLIGHTBASE_K8S_MPI_OPERATOR: 'maybe' is not true or false"):
        KubernetesSettings.from_env({"FLIGHTBASE_K8S_MPI_OPERATOR": "maybe"})


# -- secret values (finding 9) -------------------------------------------------------------
def secret_spec(job_id: str) -> KubeLaunchSpec:
    return KubeLaunchSpec(job_id=job_id, training_id="t1", workspace="vision", user="alice", launcher="none",
                          entrypoint="train.py", image="registry.example/training-base:1",
                          secret_env={"API_TOKEN": "s3cr3t"})


def test_a_runs_secret_is_created_first_and_deleted_with_its_other_objects():
    kube = FakeKube()
    created = []
    original_create = kube.create
    kube.create = lambda obj: created.append(obj["kind"]) or original_create(obj)
    backend = KubernetesBackend(kube, secret_spec, SETTINGS, clock=lambda: NOW)
    backend.start(job("j5", gpus=1), {"gpu-a": (0,)})
    assert created == ["Secret", "Job"]  # the pods never start without the Secret they refer to
    assert kube.objects[("Secret", "fb-j5")]["stringData"] == {"API_TOKEN": "s3cr3t"}
    assert "s3cr3t" not in json.dumps(kube.objects[("Job", "fb-j5")])
    kube.set_pod("fb-j5-x1", labels("j5", "main"), "Succeeded", exit_code=0)
    backend.resync()
    assert backend.poll_events() == [Started("j5", NOW), Exited("j5", NOW, 0)]
    assert ("Secret", "fb-j5", None) in kube.deleted and ("Job", "fb-j5", None) in kube.deleted
    assert ("Secret", "fb-j5") not in kube.objects


def test_a_failed_create_deletes_the_secret_too():
    kube = FakeKube()
    original_create = kube.create

    def create(obj):
        if obj["kind"] == "Job":
            raise KubeError("admission webhook denied the Job", 403)
        return original_create(obj)

    kube.create = create
    backend = KubernetesBackend(kube, secret_spec, SETTINGS, clock=lambda: NOW)
    backend.start(job("j6", gpus=1), {"gpu-a": (0,)})
    assert kube.objects == {} and kube.deleted == [("Secret", "fb-j6", None)]
    assert backend.poll_events() == [Exited("j6", NOW, 127)]


def test_after_a_restart_a_runs_secret_is_adopted_with_it_and_a_lone_secret_means_lost():
    kube = FakeKube()
    KubernetesBackend(kube, secret_spec, SETTINGS, clock=lambda: NOW).start(job("j7", gpus=1), {"gpu-a": (0,)})
    kube.set_pod("fb-j7-x1", labels("j7", "main"), "Running")
    restarted = KubernetesBackend(kube, secret_spec, SETTINGS, clock=lambda: NOW)
    assert restarted.adopt() == ["j7"]
    assert restarted.poll_events() == [Started("j7", NOW)]
    # the Job and its pod vanish (deleted by hand): the Secret left over does not keep the run alive
    kube.objects.pop(("Job", "fb-j7"))
    kube.objects.pop(("Pod", "fb-j7-x1"))
    restarted.resync()
    assert restarted.poll_events() == [Exited("j7", NOW, 255)]
    assert ("Secret", "fb-j7") not in kube.objects


# -- NCCL's log (issue #20) -------------------------------------------------------------------------
NCCL_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "nccl"


def claim_layout(tmp_path: Path) -> tuple[Path, Path]:
    """(the workspaces claim, the jobqueue's data_dir) as the chart mounts them: the claim's
    ``.flightbase/jobs`` is the jobqueue's ``<data_dir>/jobs`` (a link on the claim's side stands in
    for the jobqueue pod's sub-path mount of the one claim: the jobqueue's own paths stay real)."""
    claim, data = tmp_path / "claim", tmp_path / "data"
    (data / "jobs").mkdir(parents=True)
    (claim / ".flightbase").mkdir(parents=True)
    (claim / ".flightbase" / "jobs").symlink_to(data / "jobs")
    return claim, data


def kubelet_mounts(kube: FakeKube, claim: Path, mount_path: str) -> list[Path]:
    """Where on the claim each created pod template's ``mount_path`` lies (what the kubelet binds)."""
    out = []
    for obj in kube.objects.values():
        templates = [obj["spec"]["template"]] if obj["kind"] == "Job" else [
            r["template"] for r in obj["spec"].get("mpiReplicaSpecs", {}).values()]
        for template in templates:
            volumes = {v["name"]: v for v in template["spec"]["volumes"]}
            for mount in template["spec"]["containers"][0]["volumeMounts"]:
                if mount["mountPath"] == mount_path:
                    assert volumes[mount["name"]]["persistentVolumeClaim"]["claimName"] == "flightbase-workspaces"
                    out.append(claim / mount["subPath"])
    return out


def test_the_nccl_logs_the_pods_write_on_the_claim_become_the_jobs_communication_record(tmp_path):
    """A 2-node torchrun job that asked for GPUDirect RDMA: the backend makes the run's folder before
    the pods exist, each pod's ranks write NCCL's log there through the rendered sub-path mount (the
    test plays the kubelet and NCCL: fixtures written from NCCL's formats, two pods without an
    InfiniBand device), and the jobqueue reads them back into the record the API shows, flagged."""
    from flightbase_jobqueue import comms

    claim, data = claim_layout(tmp_path)
    kube = FakeKube()
    backend = KubernetesBackend(kube, lambda job_id: KubeLaunchSpec(
        job_id=job_id, training_id="t1", workspace="vision", user="alice", launcher="torchrun",
        entrypoint="train.py", image="registry.example/training-base:1", gpudirect_rdma=True),
        SETTINGS, data_dir=data, clock=lambda: NOW)
    backend.start(job("j7", gpus=2), {"gpu-a": (0,), "gpu-b": (0,)})
    (folder,) = set(kubelet_mounts(kube, claim, "/flightbase/nccl"))
    assert folder == claim / ".flightbase" / "jobs" / "j7" / "nccl" / "0"
    assert folder.is_dir() and folder.stat().st_mode & 0o777 == 0o700  # made by the jobqueue, before any pod
    assert backend.nccl_logs(ref("j7")) == {}  # no rank has initialised NCCL yet

    fixtures = sorted((NCCL_FIXTURES / "socket_no_ib").iterdir())
    for pod, fixture in zip(("fb-j7-0", "fb-j7-1"), fixtures):  # NCCL_DEBUG_FILE=/flightbase/nccl/%h.%p.log
        (folder / f"{pod}.31.log").write_bytes(fixture.read_bytes())
    (data / "jobs" / "j7" / "output.log").write_text("the job's output, not for its pods\n")
    (folder / "planted.log").symlink_to(data / "jobs" / "j7" / "output.log")  # a pod's link is never followed
    logs = backend.nccl_logs(ref("j7"))
    assert logs == {"fb-j7-0.31.log": fixtures[0].read_text(), "fb-j7-1.31.log": fixtures[1].read_text()}

    record = comms.record_for(logs, p2p=False, rdma=True, gpu_kind=backend.gpu_kind, gpus=2, hosts=2)
    assert (record["source"], record["summary"], record["network"]) == ("nccl", {"NET/Socket": 8}, "Socket")
    assert record["used"]["rdma"] is False
    assert any("no InfiniBand device in the container" in flag["reason"] for flag in record["flags"]), record["flags"]


def test_a_restarted_run_writes_and_shows_its_own_nccl_logs(tmp_path):
    claim, data = claim_layout(tmp_path)
    kube = FakeKube()
    backend = make(kube, {"j8": "none"}, data_dir=data)
    backend.start(job("j8", gpus=1), {"gpu-a": (0,)})
    (run0,) = kubelet_mounts(kube, claim, "/flightbase/nccl")
    (run0 / "fb-j8.7.log").write_text("gpu-a:7:7 [0] NCCL INFO Using network Socket\n")
    assert list(backend.nccl_logs(ref("j8"))) == ["fb-j8.7.log"]
    kube.set_pod("fb-j8", labels("j8", "main"), "Failed", exit_code=137)
    backend.resync()
    kube.objects.clear()
    backend.resync()
    backend.start(job("j8", gpus=1, restarts=1), {"gpu-a": (0,)})
    (run1,) = kubelet_mounts(kube, claim, "/flightbase/nccl")
    assert run1 == claim / ".flightbase" / "jobs" / "j8" / "nccl" / "1" and run1.is_dir()
    assert backend.nccl_logs(ref("j8")) == {}  # the new run has not initialised NCCL: the old run's lines are not its
    (run1 / "fb-j8-r1.9.log").write_text("gpu-a:9:9 [0] NCCL INFO Using network Socket\n")
    assert list(backend.nccl_logs(ref("j8"))) == ["fb-j8-r1.9.log"]


def test_without_a_data_dir_there_are_no_nccl_logs():
    kube, backend = running_mpijob()
    assert backend.nccl_logs(ref("j1")) == {}


def test_a_job_whose_nccl_folder_cannot_be_made_still_runs(tmp_path, caplog):
    """The record is worth less than the training: the objects are created, a warning says why."""
    kube = FakeKube()
    backend = make(kube, {"j9": "none"}, data_dir=tmp_path)
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "j9").write_text("not a folder")
    backend.start(job("j9", gpus=1), {"gpu-a": (0,)})
    assert ("Job", "fb-j9") in kube.objects and backend.poll_events() == []
    assert "no folder for NCCL's log" in caplog.text
    assert backend.nccl_logs(ref("j9")) == {}

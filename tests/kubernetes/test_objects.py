"""The Kubernetes backend's object builders: literal output, and every object
validated against the official Kubernetes schemas (kubernetes-validate, strict)
and the MPIJob against the MPI Operator's v2beta1 schema (fixtures/)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest

from flightbase_jobqueue.backends.kubernetes.objects import (
    KubeLaunchSpec, PlacementError, Shape, communication_env, label_value, make_objects, object_name, worker_shape,
)
from flightbase_jobqueue.backends.spec import DatasetVersion
from flightbase_jobqueue.backends.kubernetes.settings import KubernetesSettings

K8S_VERSION = "1.33.0"
MPIJOB_SCHEMA = json.loads((Path(__file__).parent / "fixtures" / "mpijob-v2beta1-schema.json").read_text())
SETTINGS = KubernetesSettings()
RDMA = KubernetesSettings(nccl_ib_hca="mlx5_0,mlx5_1")


def spec(launcher: str = "none", **kw) -> KubeLaunchSpec:
    base = dict(job_id="0123abcd4567ef89", training_id="t1", workspace="vision", user="alice", launcher=launcher,
                entrypoint="train.py", image="reg/tb:1", args=("--lr", "0.1"))
    base.update(kw)
    return KubeLaunchSpec(**base)


def validate(obj: dict) -> None:
    """Official schemas for core kinds; for an MPIJob its own schema plus each pod template."""
    if obj["kind"] == "MPIJob":
        jsonschema.validate(obj, MPIJOB_SCHEMA)
        for replica in obj["spec"]["mpiReplicaSpecs"].values():
            kubernetes_validate.validate({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"},
                                          "template": replica["template"]}, K8S_VERSION, strict=True)
    else:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


ENV_COMMON = [
    {"name": "FLIGHTBASE_JOB_ID", "value": "0123abcd4567ef89"},
    {"name": "FLIGHTBASE_TRAINING_ID", "value": "t1"},
    {"name": "FLIGHTBASE_WORKSPACE", "value": "vision"},
    {"name": "FLIGHTBASE_GPU_KIND", "value": "gpu"},
]


def test_single_process_job_literal():
    objs = make_objects(spec(image_pull_secret="pull", datasets=(DatasetVersion("cifar", 3),),
                             params={"lr": 0.1}, gpudirect_p2p=True), SETTINGS, {"gpu-a": (0, 1)})
    job_meta = {
        "labels": {"app.kubernetes.io/managed-by": "flightbase-jobqueue", "flightbase.io/workspace": "vision",
                   "flightbase.io/training": "t1", "flightbase.io/job": "0123abcd4567ef89", "flightbase.io/owner": "alice",
                   "flightbase.io/run": "0"},
        "annotations": {"flightbase.io/job-id": "0123abcd4567ef89", "flightbase.io/workspace": "vision",
                        "flightbase.io/training-id": "t1", "flightbase.io/owner": "alice",
                        "flightbase.io/placement": "gpu-a:0,1"},
    }
    artifacts = "/workspace/trainings/t1/0123abcd4567ef89"
    assert objs == [{
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "fb-0123abcd4567ef89",
            "namespace": "flightbase",
            "labels": {**job_meta["labels"], "flightbase.io/kind": "job"},
            "annotations": {**job_meta["annotations"], "flightbase.io/expected-pods": "1"},
        },
        "spec": {
            "backoffLimit": 0, "completions": 1, "parallelism": 1,
            "template": {
                "metadata": {"labels": {**job_meta["labels"], "flightbase.io/role": "main"},
                             "annotations": job_meta["annotations"]},
                "spec": {
                    "restartPolicy": "Never",
                    "enableServiceLinks": False,
                    "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": 60,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "training",
                        "image": "reg/tb:1",
                        "command": ["python", "-u", "train.py", "--lr", "0.1"],
                        "workingDir": "/workspace/trainings/t1/code",
                        "env": ENV_COMMON + [
                            {"name": "FLIGHTBASE_NUM_GPUS", "value": "2"},
                            {"name": "FLIGHTBASE_ARTIFACTS_DIR", "value": artifacts},
                            {"name": "FLIGHTBASE_CHECKPOINT_DIR", "value": artifacts},
                            {"name": "FLIGHTBASE_METRICS_FILE", "value": f"{artifacts}/metrics.jsonl"},
                            {"name": "FLIGHTBASE_RESTARTS", "value": "0"},
                            {"name": "PYTHONUNBUFFERED", "value": "1"},
                            {"name": "FLIGHTBASE_DATASETS_DIR", "value": "/datasets"},
                            {"name": "NCCL_DEBUG", "value": "INFO"},
                            {"name": "NCCL_DEBUG_SUBSYS", "value": "GRAPH,INIT,NET"},
                            {"name": "NCCL_DEBUG_FILE", "value": "/flightbase/nccl/%h.%p.log"},
                            {"name": "FLIGHTBASE_PARAM_LR", "value": "0.1"},
                            {"name": "NCCL_P2P_DISABLE", "value": "0"},
                            {"name": "NCCL_IB_DISABLE", "value": "1"},
                            {"name": "UCX_TLS", "value": "tcp,sm,self"},
                        ],
                        "resources": {"limits": {"nvidia.com/gpu": "2"}},
                        "volumeMounts": [
                            {"name": "workspace", "mountPath": "/workspace", "subPath": "vision"},
                            {"name": "datasets", "mountPath": "/datasets/cifar", "subPath": "vision/cifar/3", "readOnly": True},
                            {"name": "shm", "mountPath": "/dev/shm"},
                            {"name": "workspace", "mountPath": "/flightbase/nccl",
                             "subPath": ".flightbase/jobs/0123abcd4567ef89/nccl/0"},
                        ],
                        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                    }],
                    "volumes": [
                        {"name": "workspace", "persistentVolumeClaim": {"claimName": "flightbase-workspaces"}},
                        {"name": "datasets", "persistentVolumeClaim": {"claimName": "flightbase-datasets", "readOnly": True}},
                        {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}},
                    ],
                    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["gpu-a"]}]}]}}},
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                    "imagePullSecrets": [{"name": "pull"}],
                },
            },
        },
    }]
    validate(objs[0])


@pytest.mark.parametrize(("p2p", "rdma", "expected"), [
    (False, False, {"NCCL_P2P_DISABLE": "1", "NCCL_IB_DISABLE": "1", "UCX_TLS": "tcp,sm,self"}),
    (True, False, {"NCCL_P2P_DISABLE": "0", "NCCL_IB_DISABLE": "1", "UCX_TLS": "tcp,sm,self"}),
    (True, True, {"NCCL_P2P_DISABLE": "0", "NCCL_IB_DISABLE": "0", "NCCL_IB_HCA": "mlx5_0,mlx5_1",
                  "NCCL_NET_GDR_LEVEL": "PHB", "UCX_TLS": "rc,sm,cuda_copy,cuda_ipc,gdr_copy"}),
])
def test_communication_switches(p2p, rdma, expected):
    assert communication_env(p2p, rdma, RDMA) == expected


def test_mpijob_for_horovod_on_two_nodes_with_rdma():
    (mpijob,) = make_objects(spec("horovod", gpudirect_p2p=True, gpudirect_rdma=True), RDMA,
                             {"gpu-b": (0, 1), "gpu-a": (2, 3)})
    validate(mpijob)
    s = mpijob["spec"]
    assert (mpijob["apiVersion"], s["slotsPerWorker"], s["mpiImplementation"], s["sshAuthMountPath"]) == (
        "kubeflow.org/v2beta1", 2, "OpenMPI", "/home/flightbase/.ssh")
    launcher = s["mpiReplicaSpecs"]["Launcher"]["template"]["spec"]
    worker = s["mpiReplicaSpecs"]["Worker"]
    assert worker["replicas"] == 2
    wc = worker["template"]["spec"]["containers"][0]
    assert wc["resources"] == {"limits": {"nvidia.com/gpu": "2", "rdma/hca": "1"}}
    assert wc["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["IPC_LOCK"]}
    assert wc["command"] == ["/usr/sbin/sshd", "-De", "-f", "/home/flightbase/.sshd_config"]
    assert worker["template"]["spec"]["affinity"]["podAntiAffinity"] == {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"flightbase.io/job": "0123abcd4567ef89", "flightbase.io/run": "0",
                                           "flightbase.io/role": "worker"}},
         "topologyKey": "kubernetes.io/hostname"}]}
    lc = launcher["containers"][0]
    assert "affinity" not in launcher and "tolerations" not in launcher
    assert lc["resources"] == {"limits": {"memory": "512Mi"}, "requests": {"cpu": "500m", "memory": "512Mi"}}
    assert lc["command"][:15] == ["mpirun", "-np", "4", "--bind-to", "none", "--map-by", "slot", "--tag-output",
                                  "--wdir", "/workspace/trainings/t1/code", "--mca", "pml", "ucx", "--mca", "btl"]
    assert lc["command"][-4:] == ["python", "-u", "train.py", "--lr", "0.1"][-4:]
    assert ["-x", "NCCL_IB_HCA"] == lc["command"][lc["command"].index("NCCL_IB_HCA") - 1:][:2]


def test_torchrun_indexed_job_and_headless_service():
    service, job = make_objects(spec("torchrun"), SETTINGS, {"gpu-a": (0, 1, 2, 3), "gpu-b": (0, 1, 2, 3)})
    validate(service)
    validate(job)
    assert service["spec"] == {"clusterIP": "None", "publishNotReadyAddresses": True,
                               "selector": {"flightbase.io/job": "0123abcd4567ef89", "flightbase.io/run": "0",
                                            "flightbase.io/role": "node"},
                               "ports": [{"name": "rendezvous", "port": 29500, "targetPort": 29500}]}
    js = job["spec"]
    assert (js["completionMode"], js["completions"], js["parallelism"], js["backoffLimit"]) == ("Indexed", 2, 2, 0)
    pod = js["template"]["spec"]
    assert pod["subdomain"] == "fb-0123abcd4567ef89"
    assert pod["containers"][0]["command"] == [
        "torchrun", "--nnodes", "2", "--nproc-per-node", "4", "--node-rank", "$(FLIGHTBASE_NODE_RANK)",
        "--master-addr", "fb-0123abcd4567ef89-0.fb-0123abcd4567ef89", "--master-port", "29500", "--tee", "3",
        "train.py", "--lr", "0.1"]
    assert pod["containers"][0]["env"][0] == {"name": "FLIGHTBASE_NODE_RANK", "valueFrom": {"fieldRef": {
        "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}}


def test_placements_a_launcher_cannot_express_are_refused():
    with pytest.raises(PlacementError, match="one node"):
        make_objects(spec("none"), SETTINGS, {"a": (0,), "b": (0,)})
    with pytest.raises(ValueError, match="unknown launcher 'slurm'"):
        make_objects(spec("slurm"), SETTINGS, {"a": (0,)})


@pytest.mark.parametrize(("raw", "name", "label"), [
    ("0123abcd4567ef89", "fb-0123abcd4567ef89", "0123abcd4567ef89"),
    ("Job_X", "fb-job-x-d2c1b1ef", "Job_X"),
    ("alice@example.org", "fb-alice-example-org-2bcbd8b9", "alice_example.org-2bcbd8b9"),
])
def test_names_and_label_values_are_valid(raw, name, label):
    assert object_name(raw).startswith(name[: name.rfind("-") if name != "fb-0123abcd4567ef89" else None])
    assert label_value(raw).startswith(label.split("-")[0])
    kubernetes_validate.validate({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": object_name(raw), "labels": {"x": label_value(raw)}}}, K8S_VERSION, strict=True)


@pytest.mark.parametrize(("placement", "shape"), [
    ({"a": (0, 1, 2, 3)}, Shape(1, 4, True)),
    ({"a": (0, 1), "b": (0, 1)}, Shape(2, 2, True)),
    ({"a": (0, 1, 2, 3), "b": (0, 1)}, Shape(3, 2, False)),
    ({"a": (0, 1, 2), "b": (0, 1), "c": (0,)}, Shape(6, 1, False)),
    ({"a": (0, 1, 2, 3, 4, 5), "b": (0, 1, 2)}, Shape(3, 3, False)),
])
def test_worker_shape(placement, shape):
    assert worker_shape(placement) == shape


def test_uneven_placement_mpijob_literal():
    """{a: 4, b: 2} -> 3 workers of 2 GPUs (slotsPerWorker 2), free to share a node, on a and b only."""
    (mpijob,) = make_objects(spec("horovod"), SETTINGS, {"gpu-a": (0, 1, 2, 3), "gpu-b": (4, 5)})
    validate(mpijob)
    s = mpijob["spec"]
    worker = s["mpiReplicaSpecs"]["Worker"]
    assert (s["slotsPerWorker"], worker["replicas"], mpijob["metadata"]["annotations"]["flightbase.io/expected-pods"]) == (
        2, 3, "4")
    assert worker["template"]["spec"]["affinity"] == {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["gpu-a", "gpu-b"]}]}]}}}
    assert worker["template"]["spec"]["containers"][0]["resources"] == {"limits": {"nvidia.com/gpu": "2"}}
    assert worker["template"]["metadata"]["annotations"]["flightbase.io/placement"] == "gpu-a:0,1,2,3;gpu-b:4,5"
    launcher = s["mpiReplicaSpecs"]["Launcher"]["template"]["spec"]["containers"][0]
    assert launcher["command"][:3] == ["mpirun", "-np", "6"]
    assert {"name": "FLIGHTBASE_NUM_GPUS", "value": "6"} in launcher["env"]


def test_uneven_placement_torchrun_literal():
    service, job = make_objects(spec("torchrun"), SETTINGS, {"gpu-a": (0, 1, 2), "gpu-b": (0,), "gpu-c": (0, 1)})
    validate(service)
    validate(job)
    js = job["spec"]
    assert (js["completions"], js["parallelism"], job["metadata"]["annotations"]["flightbase.io/expected-pods"]) == (
        6, 6, "6")
    pod = js["template"]["spec"]
    assert "podAntiAffinity" not in pod["affinity"]
    assert pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"] == [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["gpu-a", "gpu-b", "gpu-c"]}]}]
    container = pod["containers"][0]
    assert container["resources"] == {"limits": {"nvidia.com/gpu": "1"}}
    assert container["command"][:6] == ["torchrun", "--nnodes", "6", "--nproc-per-node", "1", "--node-rank"]
    assert {"name": "TORCHELASTIC_LOG_LINE_PREFIX_TEMPLATE", "value": "[default${rank}]:"} in container["env"]


def test_a_restarted_job_has_objects_named_after_its_run():
    service, job = make_objects(spec("torchrun", restarts=2), SETTINGS, {"gpu-a": (0, 1)})
    assert (service["metadata"]["name"], job["metadata"]["name"]) == ("fb-0123abcd4567ef89-r2",) * 2
    assert job["metadata"]["labels"]["flightbase.io/run"] == "2"
    pod = job["spec"]["template"]
    assert pod["spec"]["subdomain"] == "fb-0123abcd4567ef89-r2"
    assert "--master-addr" in pod["spec"]["containers"][0]["command"]
    assert "fb-0123abcd4567ef89-r2-0.fb-0123abcd4567ef89-r2" in pod["spec"]["containers"][0]["command"]
    assert service["spec"]["selector"] == {"flightbase.io/job": "0123abcd4567ef89", "flightbase.io/run": "2",
                                           "flightbase.io/role": "node"}
    assert object_name("Job_X", 3).endswith("-r3")
    validate(service)
    validate(job)


# -- secret values (finding 9) ----------------------------------------------------------------
SECRET = "s3cr3t-value-ab12"


@pytest.mark.parametrize(("launcher", "placement"), [
    ("none", {"gpu-a": (0,)}),
    ("torchrun", {"gpu-a": (0, 1), "gpu-b": (0, 1)}),
    ("horovod", {"gpu-a": (0, 1), "gpu-b": (0, 1)}),
])
def test_secret_values_are_in_a_secret_and_referenced_never_inline(launcher, placement):
    objs = make_objects(spec(launcher, env={"PLAIN": "shown"}, secret_env={"API_TOKEN": SECRET, "DB_PASS": "pw-9"}),
                        SETTINGS, placement)
    secret, *rest = objs
    assert secret == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "fb-0123abcd4567ef89",
            "namespace": "flightbase",
            "labels": {"app.kubernetes.io/managed-by": "flightbase-jobqueue", "flightbase.io/workspace": "vision",
                       "flightbase.io/training": "t1", "flightbase.io/job": "0123abcd4567ef89",
                       "flightbase.io/owner": "alice", "flightbase.io/run": "0", "flightbase.io/kind": "secret"},
            "annotations": {"flightbase.io/job-id": "0123abcd4567ef89", "flightbase.io/workspace": "vision",
                            "flightbase.io/training-id": "t1", "flightbase.io/owner": "alice",
                            "flightbase.io/placement": ";".join(f"{n}:{','.join(map(str, g))}"
                                                                for n, g in sorted(placement.items()))},
        },
        "type": "Opaque",
        "immutable": True,
        "stringData": {"API_TOKEN": SECRET, "DB_PASS": "pw-9"},
    }
    for obj in objs:
        validate(obj)
    for obj in rest:  # the workload objects (and so their pods) hold no value, only references
        assert SECRET not in json.dumps(obj) and "pw-9" not in json.dumps(obj)
    templates = [o["spec"]["template"] for o in rest if o["kind"] == "Job"] + [
        r["template"] for o in rest if o["kind"] == "MPIJob" for r in o["spec"]["mpiReplicaSpecs"].values()]
    assert templates
    for template in templates:
        env = template["spec"]["containers"][0]["env"]
        assert {"name": "PLAIN", "value": "shown"} in env
        assert [e for e in env if "valueFrom" in e and "secretKeyRef" in e["valueFrom"]] == [
            {"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "fb-0123abcd4567ef89", "key": "API_TOKEN"}}},
            {"name": "DB_PASS", "valueFrom": {"secretKeyRef": {"name": "fb-0123abcd4567ef89", "key": "DB_PASS"}}},
        ]
    if launcher == "horovod":  # mpirun forwards them to the ranks by name (-x NAME), never NAME=VALUE
        command = rest[0]["spec"]["mpiReplicaSpecs"]["Launcher"]["template"]["spec"]["containers"][0]["command"]
        assert ["-x", "API_TOKEN"] == command[command.index("API_TOKEN") - 1:][:2]
        assert ["-x", "DB_PASS"] == command[command.index("DB_PASS") - 1:][:2]


def test_a_job_without_secret_values_has_no_secret():
    assert [o["kind"] for o in make_objects(spec("none"), SETTINGS, {"gpu-a": (0,)})] == ["Job"]


def test_a_restarted_run_has_a_secret_of_its_own():
    secret, job = make_objects(spec("none", restarts=2, secret_env={"K": "v"}), SETTINGS, {"gpu-a": (0,)})
    assert secret["metadata"]["name"] == "fb-0123abcd4567ef89-r2"
    env = job["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "K", "valueFrom": {"secretKeyRef": {"name": "fb-0123abcd4567ef89-r2", "key": "K"}}} in env


def test_the_launch_spec_never_shows_secret_values():
    assert SECRET not in repr(spec("none", secret_env={"API_TOKEN": SECRET}))


# -- NCCL's log (issue #20) -------------------------------------------------------------------------
NCCL_ENV = {"NCCL_DEBUG": "INFO", "NCCL_DEBUG_SUBSYS": "GRAPH,INIT,NET", "NCCL_DEBUG_FILE": "/flightbase/nccl/%h.%p.log"}


def pod_templates(objs: list[dict]) -> dict[str, dict]:
    """{role: pod template} of a job's workload objects."""
    out = {}
    for obj in objs:
        if obj["kind"] == "Job":
            out[obj["spec"]["template"]["metadata"]["labels"]["flightbase.io/role"]] = obj["spec"]["template"]
        elif obj["kind"] == "MPIJob":
            for replica in obj["spec"]["mpiReplicaSpecs"].values():
                out[replica["template"]["metadata"]["labels"]["flightbase.io/role"]] = replica["template"]
    return out


@pytest.mark.parametrize(("launcher", "placement", "restarts", "rank_roles"), [
    ("none", {"gpu-a": (0, 1)}, 0, ["main"]),
    ("torchrun", {"gpu-a": (0, 1), "gpu-b": (0, 1)}, 0, ["node"]),
    ("torchrun", {"gpu-a": (0, 1, 2), "gpu-b": (0,)}, 3, ["node"]),  # uneven, a restarted run
    ("horovod", {"gpu-a": (0, 1), "gpu-b": (0, 1)}, 1, ["worker"]),
    ("mpi", {"gpu-a": (0, 1, 2, 3), "gpu-b": (4, 5)}, 0, ["worker"]),
])
def test_every_pod_that_runs_ranks_logs_nccl_into_the_runs_folder_on_the_claim(launcher, placement, restarts,
                                                                             rank_roles):
    objs = make_objects(spec(launcher, restarts=restarts), SETTINGS, placement)
    for obj in objs:
        validate(obj)
    templates = pod_templates(objs)
    for role, template in templates.items():
        container = template["spec"]["containers"][0]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert {k: env.get(k) for k in NCCL_ENV} == NCCL_ENV, role  # the launcher's too: mpirun forwards it
        nccl_mounts = [m for m in container["volumeMounts"] if m["mountPath"] == "/flightbase/nccl"]
        if role in rank_roles:
            # the workspaces claim (the pod's "workspace" volume), at the jobqueue's jobs/<id>/nccl/<run>
            assert nccl_mounts == [{"name": "workspace", "mountPath": "/flightbase/nccl",
                                    "subPath": f".flightbase/jobs/0123abcd4567ef89/nccl/{restarts}"}], role
            assert {"name": "workspace", "persistentVolumeClaim": {"claimName": "flightbase-workspaces"}} in (
                template["spec"]["volumes"])
        else:  # the MPI launcher runs mpirun only: no NCCL, no mount
            assert nccl_mounts == [], role
    if launcher in ("horovod", "mpi"):
        command = templates["launcher"]["spec"]["containers"][0]["command"]
        for name in NCCL_ENV:  # the ranks (started by sshd on the workers) get the variables from mpirun
            assert ["-x", name] == command[command.index(name) - 1:][:2]


def test_a_job_keeps_the_nccl_logging_it_asked_for_but_never_chooses_the_file():
    (job,) = make_objects(spec(env={"NCCL_DEBUG": "TRACE", "NCCL_DEBUG_SUBSYS": "COLL",
                                    "NCCL_DEBUG_FILE": "/workspace/mine.log"}), SETTINGS, {"gpu-a": (0,)})
    env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert (env["NCCL_DEBUG"], env["NCCL_DEBUG_SUBSYS"], env["NCCL_DEBUG_FILE"]) == (
        "TRACE", "COLL,GRAPH,INIT,NET", "/flightbase/nccl/%h.%p.log")


@pytest.mark.parametrize("job_id", ["../etc", "a/b", "-x", ""])
def test_a_job_id_that_cannot_name_a_folder_is_refused(job_id):
    with pytest.raises(ValueError, match="cannot name a folder"):
        make_objects(spec(job_id=job_id), SETTINGS, {"gpu-a": (0,)})

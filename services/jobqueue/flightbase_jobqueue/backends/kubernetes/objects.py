"""The Kubernetes objects of one training job, as pure functions returning plain dicts.

Model: kubespawner's ``objects.py``: no API calls, no clock, no globals; the
tests compare the output with literal expected dicts and validate it against
the official schemas (``tests/kubernetes/test_objects.py``).

What each launcher becomes (:func:`make_objects`):

- ``none`` (one process): a ``batch/v1`` Job with one pod.
- ``horovod`` and ``mpi``: a Kubeflow MPI Operator ``MPIJob``
  (``kubeflow.org/v2beta1``): one launcher pod running ``mpirun`` and one
  worker pod per node with ``slotsPerWorker`` = GPUs per node; the operator
  makes the SSH keys and the hostfile.
- ``torchrun``: an indexed Job (one pod per node) and a headless Service that
  gives pod 0 the stable name the others rendezvous with.

The scheduler's placement (``{node: (gpu indices)}``) becomes a *required*
node affinity on the node names, and pods of a multi-node job repel each other
per host, so the cluster runs exactly what the scheduler admitted (an uneven
placement is cut into equal pods instead: :func:`worker_shape`).  Objects of
a restarted job are named and labelled with its run (:func:`object_name`).  Which GPU
indices a pod gets is the NVIDIA device plugin's choice: the count per node is
what the scheduler accounted; the indices are recorded in an annotation.

:func:`communication_env` maps the per-job switches (GPUDirect P2P, GPUDirect
RDMA) to NCCL and UCX settings; docs/kubernetes.md explains each one.

Every pod runs with NCCL's initialisation logging on (``comms.nccl_environment``:
``NCCL_DEBUG=INFO``, ``NCCL_DEBUG_SUBSYS=GRAPH,INIT,NET``,
``NCCL_DEBUG_FILE=/flightbase/nccl/%h.%p.log``), and each pod that runs ranks
mounts ``/flightbase/nccl`` from the workspaces claim at the run's folder of the
jobqueue's ``jobs/`` (:func:`nccl_sub_path`: ``.flightbase/jobs/<job>/nccl/<run>``,
which the jobqueue sees at ``<data_dir>/jobs/<job>/nccl/<run>``, the local
backends' layout), so the ranks' NCCL lines stay out of the job's output and the
jobqueue reads them back (``KubernetesBackend.nccl_logs``).

A training's secret values (``LaunchSpec.secret_env``) never appear in a pod
spec, which anyone allowed to read pods (or the Job, or the MPIJob) reads:
they go into a ``Secret`` of the run (:func:`make_secret`, created first and
deleted with the run's other objects) and every container names them with
``env[].valueFrom.secretKeyRef`` (:func:`secret_env_refs`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from math import gcd
from typing import Mapping

from flightbase_jobqueue import comms
from flightbase_jobqueue.backends import launchers
from flightbase_jobqueue.backends.spec import LaunchSpec, artifacts_sub_path, code_sub_path
from flightbase_jobqueue.scheduling.types import Placement

from .settings import KubernetesSettings

LABEL_PREFIX = "flightbase.io/"
MANAGED_BY = {"app.kubernetes.io/managed-by": "flightbase-jobqueue"}
SELECTOR = "app.kubernetes.io/managed-by=flightbase-jobqueue"
JOB_LABEL = LABEL_PREFIX + "job"
ROLE_LABEL = LABEL_PREFIX + "role"
KIND_LABEL = LABEL_PREFIX + "kind"
RUN_LABEL = LABEL_PREFIX + "run"  # the job's restart count: each run has its own objects and pods
EXPECTED_PODS = LABEL_PREFIX + "expected-pods"
CONTAINER = "training"
WORKSPACE_DIR = "/workspace"
DATASETS_DIR = "/datasets"
SSH_HOME = "/home/flightbase"  # the training image's user (images/training-base/Dockerfile)
NCCL_LOGS_DIR = "/flightbase/nccl"  # where a pod's ranks write NCCL's log (as in the docker backend)
# The jobqueue's jobs/ folder on the workspaces claim: the chart mounts this sub-path at
# <data_dir>/jobs (templates/jobqueue/deployment.yaml; no workspace can be named ".flightbase").
JOBS_SUB_PATH = ".flightbase/jobs"
_PATH_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class PlacementError(ValueError):
    """The placement cannot be expressed for this launcher."""


@dataclass(frozen=True)
class KubeLaunchSpec(LaunchSpec):
    """The shared :class:`~flightbase_jobqueue.backends.spec.LaunchSpec` plus what only a
    cluster needs: the full image reference (``image``, resolved by the backend)
    and its pull secret, and where the training's code lies inside the
    workspace's folder of the workspaces PVC (default: ``trainings/<id>/code``,
    where the backend stages it).  Datasets mount from the datasets PVC at
    :meth:`DatasetVersion.sub_path`."""

    image_pull_secret: str | None = None
    code_sub_path: str | None = None


# -- names and labels ------------------------------------------------------------------
def object_name(job_id: str, run: int = 0) -> str:
    """A DNS-1123 name for the objects of one run of the job (pods append ``-launcher``,
    ``-worker-3``...).  A restarted job's run ``n`` gets ``-r<n>``: the objects of the run
    before may still be going away (a pod's grace period, an interrupted delete), and a
    create under their name would fail with a conflict."""
    clean = re.sub(r"[^a-z0-9-]+", "-", job_id.lower()).strip("-")
    name = f"fb-{clean}"
    if len(name) > 40 or clean != job_id:
        name = f"fb-{clean[:24].strip('-')}-{hashlib.sha256(job_id.encode()).hexdigest()[:8]}"
    return f"{name}-r{run}" if run else name


def label_value(value: str) -> str:
    """A valid label value (63 characters of ``[A-Za-z0-9._-]``, alphanumeric at both ends).

    The raw value is kept in an annotation; values that had to change get a hash
    suffix so that two different names never share a label."""
    clean = re.sub(r"[^A-Za-z0-9._-]+", "_", value).strip("._-")
    if clean == value and len(value) <= 63:
        return value
    return f"{clean[:54].strip('._-')}-{hashlib.sha256(value.encode()).hexdigest()[:8]}".strip("-")


def job_labels(spec: KubeLaunchSpec) -> dict[str, str]:
    return {
        **MANAGED_BY,
        LABEL_PREFIX + "workspace": label_value(spec.workspace),
        LABEL_PREFIX + "training": label_value(spec.training_id),
        JOB_LABEL: label_value(spec.job_id),
        LABEL_PREFIX + "owner": label_value(spec.user),
        RUN_LABEL: str(spec.restarts),
    }


def job_annotations(spec: KubeLaunchSpec, placement: Placement) -> dict[str, str]:
    return {
        LABEL_PREFIX + "job-id": spec.job_id,
        LABEL_PREFIX + "workspace": spec.workspace,
        LABEL_PREFIX + "training-id": spec.training_id,
        LABEL_PREFIX + "owner": spec.user,
        LABEL_PREFIX + "placement": ";".join(f"{n}:{','.join(map(str, g))}" for n, g in sorted(placement.items())),
    }


# -- communication -----------------------------------------------------------------------
def communication_env(p2p: bool, rdma: bool, settings: KubernetesSettings) -> dict[str, str]:
    """NCCL/UCX settings for the two switches (see docs/kubernetes.md, "Communication")."""
    env = launchers.communication_env(p2p, rdma, ib_hca=settings.nccl_ib_hca, gdr_level=settings.nccl_net_gdr_level,
                                      ucx_tls=settings.ucx_tls_rdma)
    if rdma:
        env["NCCL_IB_HCA"] = settings.nccl_ib_hca  # named even when empty: the cluster's choice is explicit
    return env


def mpi_transport_args(rdma: bool) -> list[str]:
    """OpenMPI's point-to-point layer: UCX over InfiniBand, or ob1 over TCP."""
    if rdma:
        return ["--mca", "pml", "ucx", "--mca", "btl", "^openib,tcp"]
    return ["--mca", "pml", "ob1", "--mca", "btl", "self,vader,tcp"]


def nccl_sub_path(job_id: str, run: int) -> str:
    """The run's NCCL log folder on the workspaces claim (``<data_dir>/jobs/<job>/nccl/<run>`` for the
    jobqueue).  A pod sees this folder only: it cannot reach the job's ``output.log`` or another run."""
    if not _PATH_PART.fullmatch(job_id) or ".." in job_id:
        raise ValueError(f"job id {job_id!r} cannot name a folder")
    return f"{JOBS_SUB_PATH}/{job_id}/nccl/{int(run)}"


# -- pods ----------------------------------------------------------------------------------
def program_argv(spec: KubeLaunchSpec) -> list[str]:
    return launchers.Program(spec.entrypoint, tuple(spec.args)).argv("python")


def workdir(spec: KubeLaunchSpec) -> str:
    return f"{WORKSPACE_DIR}/{spec.code_sub_path or code_sub_path(spec.training_id)}"


def job_env(spec: KubeLaunchSpec, settings: KubernetesSettings, total_gpus: int) -> dict[str, str]:
    artifacts = f"{WORKSPACE_DIR}/{artifacts_sub_path(spec.training_id, spec.job_id)}"
    env = {k: str(v) for k, v in spec.env.items()}
    env.update({
        "FLIGHTBASE_JOB_ID": spec.job_id,
        "FLIGHTBASE_TRAINING_ID": spec.training_id,
        "FLIGHTBASE_WORKSPACE": spec.workspace,
        "FLIGHTBASE_GPU_KIND": "gpu",
        "FLIGHTBASE_NUM_GPUS": str(total_gpus),
        "FLIGHTBASE_ARTIFACTS_DIR": artifacts,
        "FLIGHTBASE_CHECKPOINT_DIR": artifacts,
        "FLIGHTBASE_METRICS_FILE": f"{artifacts}/metrics.jsonl",
        "FLIGHTBASE_RESTARTS": str(spec.restarts),
        "PYTHONUNBUFFERED": "1",
    })
    if spec.datasets:
        env["FLIGHTBASE_DATASETS_DIR"] = DATASETS_DIR
    env.update(comms.nccl_environment(NCCL_LOGS_DIR, spec.env))  # the same variables as the local backends
    for key, value in spec.params.items():
        env[f"FLIGHTBASE_PARAM_{key.upper()}"] = str(value)
    env.update(communication_env(spec.gpudirect_p2p, spec.gpudirect_rdma, settings))
    return env


def secret_env_refs(spec: KubeLaunchSpec) -> list[dict]:
    """The container's secret variables, by reference to the run's Secret (never inline)."""
    name = object_name(spec.job_id, spec.restarts)
    return [{"name": key, "valueFrom": {"secretKeyRef": {"name": name, "key": key}}} for key in sorted(spec.secret_env)]


def make_secret(spec: KubeLaunchSpec, settings: KubernetesSettings, placement: Placement) -> dict:
    """The run's secret values (named like its other objects; immutable: nothing changes them)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": object_name(spec.job_id, spec.restarts),
            "namespace": settings.namespace,
            "labels": {**job_labels(spec), KIND_LABEL: "secret"},
            "annotations": job_annotations(spec, placement),
        },
        "type": "Opaque",
        "immutable": True,
        "stringData": {key: str(value) for key, value in sorted(spec.secret_env.items())},
    }


def node_affinity(nodes: list[str]) -> dict:
    """Required affinity to exactly these nodes.  ``matchFields`` on ``metadata.name``
    (as the DaemonSet controller does) because the ``kubernetes.io/hostname`` label may
    differ from the node name, and the scheduler's placement uses node names."""
    return {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": sorted(nodes)}]}
            ]
        }
    }


def run_selector(spec: KubeLaunchSpec, role: str) -> dict[str, str]:
    """The pods of one role in this run of the job (a run before may still be terminating)."""
    return {JOB_LABEL: label_value(spec.job_id), RUN_LABEL: str(spec.restarts), ROLE_LABEL: role}


def one_per_node(spec: KubeLaunchSpec, role: str) -> dict:
    """Pods of the same role of one run never share a node (one worker per placed node)."""
    return {
        "requiredDuringSchedulingIgnoredDuringExecution": [
            {
                "labelSelector": {"matchLabels": run_selector(spec, role)},
                "topologyKey": "kubernetes.io/hostname",
            }
        ]
    }


def pod_template(spec: KubeLaunchSpec, settings: KubernetesSettings, placement: Placement, *, role: str,
                 command: list[str], gpus: int, env: Mapping[str, str], spread: bool = False,
                 pinned: bool = True, extra_spec: Mapping | None = None) -> dict:
    """A PodTemplateSpec for one pod of the job (``gpus``: the GPUs this pod asks for)."""
    limits: dict[str, str] = {}
    requests: dict[str, str] = {}
    if gpus:
        limits[settings.gpu_resource] = str(gpus)
        if spec.gpudirect_rdma:
            limits[settings.rdma_resource] = str(settings.rdma_per_pod)
    else:  # the MPI launcher: a small, fixed share
        requests = {"cpu": settings.launcher_cpu, "memory": settings.launcher_memory}
        limits = {"memory": settings.launcher_memory}
    capabilities: dict = {"drop": ["ALL"]}
    if gpus and spec.gpudirect_rdma:
        capabilities["add"] = ["IPC_LOCK"]  # pin memory for RDMA registration
    mounts = [{"name": "workspace", "mountPath": WORKSPACE_DIR, "subPath": spec.workspace}]
    mounts += [
        {"name": "datasets", "mountPath": f"{DATASETS_DIR}/{d.name}", "subPath": d.sub_path(spec.workspace),
         "readOnly": True}
        for d in spec.datasets
    ]
    mounts.append({"name": "shm", "mountPath": "/dev/shm"})
    if gpus:  # a pod that runs ranks (not the MPI launcher): NCCL's log into the run's folder
        mounts.append({"name": "workspace", "mountPath": NCCL_LOGS_DIR,
                       "subPath": nccl_sub_path(spec.job_id, spec.restarts)})
    volumes = [{"name": "workspace", "persistentVolumeClaim": {"claimName": settings.workspaces_pvc}}]
    if spec.datasets:
        volumes.append({"name": "datasets", "persistentVolumeClaim": {"claimName": settings.datasets_pvc, "readOnly": True}})
    volumes.append({"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": settings.shm_size}})
    container = {
        "name": CONTAINER,
        "image": spec.image,
        "command": command,
        "workingDir": workdir(spec),
        "env": [{"name": k, "value": v} for k, v in env.items()] + secret_env_refs(spec),
        "resources": {"limits": limits, **({"requests": requests} if requests else {})},
        "volumeMounts": mounts,
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": capabilities},
    }
    affinity: dict = {}
    if pinned:
        affinity["nodeAffinity"] = node_affinity(list(placement))
    if spread:
        affinity["podAntiAffinity"] = one_per_node(spec, role)
    pod_spec: dict = {
        "restartPolicy": "Never",
        "enableServiceLinks": False,
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": settings.termination_grace_seconds,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": settings.run_as_user,
            "runAsGroup": settings.run_as_group,
            "fsGroup": settings.run_as_group,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": volumes,
    }
    if affinity:
        pod_spec["affinity"] = affinity
    if gpus:  # GPU nodes are commonly tainted so that only GPU pods land there
        pod_spec["tolerations"] = [{"key": settings.gpu_resource, "operator": "Exists", "effect": "NoSchedule"}]
    if spec.image_pull_secret:
        pod_spec["imagePullSecrets"] = [{"name": spec.image_pull_secret}]
    pod_spec.update(extra_spec or {})
    return {
        "metadata": {"labels": {**job_labels(spec), ROLE_LABEL: role}, "annotations": job_annotations(spec, placement)},
        "spec": pod_spec,
    }


def _metadata(spec: KubeLaunchSpec, settings: KubernetesSettings, placement: Placement, kind: str,
              pods: int, name: str | None = None) -> dict:
    return {
        "name": name or object_name(spec.job_id, spec.restarts),
        "namespace": settings.namespace,
        "labels": {**job_labels(spec), KIND_LABEL: kind},
        "annotations": {**job_annotations(spec, placement), EXPECTED_PODS: str(pods)},
    }


@dataclass(frozen=True)
class Shape:
    """How a multi-process job's GPUs are cut into pods."""

    workers: int  # pods with GPUs
    gpus_per_worker: int
    one_per_node: bool  # exactly one pod on each placed node (pods repel each other per host)


def worker_shape(placement: Placement) -> Shape:
    """One pod per node when every node has the same number of GPUs.

    An uneven placement (e.g. ``{a: 4, b: 2}``) cannot be one pod per node:
    an MPIJob has one worker template (one GPU count, ``slotsPerWorker``) and
    an indexed Job one pod template.  It becomes pods of the greatest common
    divisor of the counts (``{a: 4, b: 2}`` -> 3 pods of 2 GPUs), all allowed
    on the placed nodes only; which node takes how many of them is the
    Kubernetes scheduler's choice there (docs/kubernetes.md, "Uneven placements")."""
    counts = [len(g) for g in placement.values()]
    if len(set(counts)) == 1:
        return Shape(len(counts), counts[0], True)
    per_worker = 0
    for count in counts:
        per_worker = gcd(per_worker, count)
    return Shape(sum(counts) // per_worker, per_worker, False)


# -- the kinds -----------------------------------------------------------------------------
def make_single_job(spec: KubeLaunchSpec, settings: KubernetesSettings, placement: Placement) -> list[dict]:
    """One process on one node: a batch/v1 Job with one pod and no retries."""
    if len(placement) != 1:
        raise PlacementError(f"job {spec.job_id}: launcher 'none' runs one process on one node, "
                             f"but it was placed on {len(placement)} nodes")
    gpus = sum(len(g) for g in placement.values())
    template = pod_template(spec, settings, placement, role="main", command=program_argv(spec), gpus=gpus,
                            env=job_env(spec, settings, gpus))
    return [{
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _metadata(spec, settings, placement, "job", 1),
        "spec": {"backoffLimit": 0, "completions": 1, "parallelism": 1, "template": template},
    }]


def make_torchrun(spec: KubeLaunchSpec, settings: KubernetesSettings, placement: Placement) -> list[dict]:
    """torchrun on N nodes: an indexed Job (pod i has node rank i) and a headless Service.

    Pod 0 is reachable as ``<name>-0.<name>`` (an indexed Job's pods get the
    hostname ``<job>-<index>``, and the Service is their subdomain); the Service
    publishes not-ready addresses so that rendezvous works before readiness."""
    name = object_name(spec.job_id, spec.restarts)
    shape = worker_shape(placement)
    per_node, nnodes = shape.gpus_per_worker, shape.workers
    env = job_env(spec, settings, per_node * nnodes)
    # output lines tagged with the global rank, as the local backend's are ([default<rank>]:);
    # the default tag is the rank inside the pod (torch.distributed.elastic's local_elastic_agent)
    env["TORCHELASTIC_LOG_LINE_PREFIX_TEMPLATE"] = "[default${rank}]:"
    target = [spec.entrypoint, *spec.args] if spec.entrypoint.endswith(".py") else ["--no-python", *program_argv(spec)]
    command = [
        "torchrun", "--nnodes", str(nnodes), "--nproc-per-node", str(per_node),
        "--node-rank", "$(FLIGHTBASE_NODE_RANK)", "--master-addr", f"{name}-0.{name}",
        "--master-port", str(settings.rendezvous_port), "--tee", "3", *target,
    ]
    template = pod_template(spec, settings, placement, role="node", command=command, gpus=per_node, env=env,
                            spread=shape.one_per_node and nnodes > 1, extra_spec={"subdomain": name})
    # the node rank is the pod's completion index (an annotation the Job controller sets)
    template["spec"]["containers"][0]["env"].insert(0, {
        "name": "FLIGHTBASE_NODE_RANK",
        "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}},
    })
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(spec, settings, placement, "rendezvous", 0),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": run_selector(spec, "node"),
            "ports": [{"name": "rendezvous", "port": settings.rendezvous_port, "targetPort": settings.rendezvous_port}],
        },
    }
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _metadata(spec, settings, placement, "indexed-job", nnodes),
        "spec": {
            "completionMode": "Indexed",
            "completions": nnodes,
            "parallelism": nnodes,
            "backoffLimit": 0,
            "template": template,
        },
    }
    return [service, job]


def make_mpijob(spec: KubeLaunchSpec, settings: KubernetesSettings, placement: Placement) -> list[dict]:
    """Horovod or plain MPI: an MPIJob with one worker per node and one slot per GPU
    (an uneven placement: see :func:`worker_shape`).

    The launcher runs ``mpirun`` on no GPU and on any node; it forwards the
    job's environment to every rank with ``-x`` (ranks are started by sshd on
    the workers and would not inherit the container's environment) and tags
    every output line with the rank (``--tag-output``: ``[1,<rank>]<stdout>:``)."""
    shape = worker_shape(placement)
    per_node, nnodes = shape.gpus_per_worker, shape.workers
    total = per_node * nnodes
    env = job_env(spec, settings, total)
    forward: list[str] = []  # names only: -x takes each value from the launcher's environment
    for key in ("PATH", "LD_LIBRARY_PATH", *env, *sorted(spec.secret_env)):
        forward += ["-x", key]
    command = ["mpirun", "-np", str(total), "--bind-to", "none", "--map-by", "slot", "--tag-output",
               "--wdir", workdir(spec), *mpi_transport_args(spec.gpudirect_rdma), *forward, *program_argv(spec)]
    launcher = pod_template(spec, settings, placement, role="launcher", command=command, gpus=0, env=env, pinned=False)
    worker = pod_template(spec, settings, placement, role="worker",
                          command=["/usr/sbin/sshd", "-De", "-f", f"{SSH_HOME}/.sshd_config"],
                          gpus=per_node, env=env, spread=shape.one_per_node and nnodes > 1)
    return [{
        "apiVersion": "kubeflow.org/v2beta1",
        "kind": "MPIJob",
        "metadata": _metadata(spec, settings, placement, "mpijob", nnodes + 1),
        "spec": {
            "slotsPerWorker": per_node,
            "runPolicy": {"cleanPodPolicy": "Running", "backoffLimit": 0},
            "mpiImplementation": "OpenMPI",
            "sshAuthMountPath": f"{SSH_HOME}/.ssh",
            "launcherCreationPolicy": "WaitForWorkersReady",
            "mpiReplicaSpecs": {
                "Launcher": {"replicas": 1, "restartPolicy": "Never", "template": launcher},
                "Worker": {"replicas": nnodes, "restartPolicy": "Never", "template": worker},
            },
        },
    }]


BUILDERS = {"none": make_single_job, "torchrun": make_torchrun, "horovod": make_mpijob, "mpi": make_mpijob}


def make_objects(spec: KubeLaunchSpec, settings: KubernetesSettings, placement: Placement) -> list[dict]:
    """All objects of one job, in creation order (the Secret and a Service before the pods that use them)."""
    try:
        builder = BUILDERS[spec.launcher]
    except KeyError:
        raise ValueError(f"unknown launcher {spec.launcher!r}; known launchers: {', '.join(BUILDERS)}") from None
    if not placement or any(not g for g in placement.values()):
        raise PlacementError(f"job {spec.job_id}: empty placement {dict(placement)}")
    objects = builder(spec, settings, placement)
    return [make_secret(spec, settings, placement), *objects] if spec.secret_env else objects
